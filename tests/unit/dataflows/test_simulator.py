"""Unit tests of the transaction simulator, its history files and rate limiter."""

from __future__ import annotations

from collections import Counter, defaultdict
from datetime import UTC, datetime, timedelta
from itertools import islice
from pathlib import Path

import polars as pl
import pytest
from typer.testing import CliRunner

from dataflows.errors import BrokerUnavailable
from dataflows.schema import decode, encode, luhn_valid
from dataflows.simulator import (
    PATTERNS,
    SPECS,
    TransactionSimulator,
    write_history,
)
from dataflows.simulator.catalog import COUNTRY_CODES
from dataflows.simulator.cli import app
from dataflows.simulator.generator import ms_from_utc
from dataflows.simulator.plot import hourly_counts
from dataflows.simulator.producer import TransactionProducer
from dataflows.simulator.rate import UNTHROTTLED_GRANT, RateLimiter


def take(simulator: TransactionSimulator, count: int) -> list:
    return list(islice(simulator.stream(), count))


@pytest.fixture(scope="module")
def sample() -> list:
    """A few days of 2,000 accounts, shared by the read-only tests."""
    return take(TransactionSimulator(seed=11, accounts=2_000), 60_000)


@pytest.fixture(scope="module")
def large_sample() -> tuple[TransactionSimulator, Counter]:
    """Pattern counts over 400,000 transactions of 10,000 accounts."""
    simulator = TransactionSimulator(seed=5, accounts=10_000)
    counts: Counter[str] = Counter()
    for batch in simulator.batches():
        counts.update(batch.pattern)
        if counts.total() >= 400_000:
            return simulator, counts
    raise AssertionError("unreachable: batches() is endless")


def test_same_seed_gives_the_same_stream() -> None:
    first = take(TransactionSimulator(seed=3, accounts=500), 5_000)
    second = take(TransactionSimulator(seed=3, accounts=500), 5_000)

    assert [encode(txn) for txn, _ in first] == [encode(txn) for txn, _ in second]
    assert [label for _, label in first] == [label for _, label in second]


def test_another_seed_gives_another_stream() -> None:
    first = take(TransactionSimulator(seed=3, accounts=500), 1_000)
    other = take(TransactionSimulator(seed=4, accounts=500), 1_000)

    assert [txn.pan for txn, _ in first] != [txn.pan for txn, _ in other]


def test_every_transaction_survives_encode_and_decode(sample: list) -> None:
    now = sample[-1][0].event_time + timedelta(minutes=1)

    for txn, _ in sample:
        assert decode(encode(txn), now=now) == txn


def test_labels_match_transactions_one_to_one(sample: list) -> None:
    for txn, label in sample:
        assert (label.txn_id, label.account_id) == (txn.txn_id, txn.account_id)
        assert label.event_time == txn.event_time
        assert label.is_fraud == (label.pattern != "legit")
    assert len({txn.txn_id for txn, _ in sample}) == len(sample)


def test_event_times_never_go_backwards(sample: list) -> None:
    times = [txn.event_ms for txn, _ in sample]
    last_by_account: dict[str, int] = {}

    assert times == sorted(times)
    for txn, _ in sample:
        assert txn.event_ms >= last_by_account.get(txn.account_id, 0)
        last_by_account[txn.account_id] = txn.event_ms


def test_each_account_makes_5_to_20_transactions_a_day(sample: list) -> None:
    first, last = sample[0][0].event_time, sample[-1][0].event_time
    days = (last - first) / timedelta(days=1)
    per_account = Counter(txn.account_id for txn, label in sample if not label.is_fraud)

    assert 5 <= len(sample) / 2_000 / days <= 20
    assert len(per_account) == 2_000


def test_accounts_keep_their_card_email_and_mostly_home_currency(
    sample: list,
) -> None:
    pans: dict[str, set[str]] = defaultdict(set)
    emails: dict[str, set[str]] = defaultdict(set)
    currencies: dict[str, Counter[str]] = defaultdict(Counter)
    for txn, label in sample:
        pans[txn.account_id].add(txn.pan)
        emails[txn.account_id].add(txn.email)
        if not label.is_fraud:
            currencies[txn.account_id][txn.currency] += 1

    assert all(luhn_valid(pan) for cards in pans.values() for pan in cards)
    assert all(len(addresses) == 1 for addresses in emails.values())
    assert sum(len(cards) == 1 for cards in pans.values()) > 0.95 * len(pans)
    top = sum(counts.most_common(1)[0][1] for counts in currencies.values())
    assert top / sum(counts.total() for counts in currencies.values()) > 0.85


def test_legit_traffic_mixes_every_channel(sample: list) -> None:
    channels = Counter(txn.channel for txn, label in sample if not label.is_fraud)
    total = channels.total()

    assert set(channels) == {"card_present", "contactless", "ecommerce", "moto", "atm"}
    assert all(count / total < 0.5 for count in channels.values())


def test_pattern_rates_stay_within_bounds(large_sample: tuple) -> None:
    _, counts = large_sample
    total = counts.total()

    assert 0.97 <= counts["legit"] / total <= 0.99
    for name, spec in SPECS.items():
        expected = 0.02 * spec.share
        assert 0.5 * expected <= counts[name] / total <= 1.5 * expected, name


def by_pattern(sample: list) -> dict[str, list]:
    grouped = defaultdict(list)
    for txn, label in sample:
        grouped[label.pattern].append(txn)
    return grouped


def test_card_testing_is_tiny_web_payments_at_many_merchants(sample: list) -> None:
    card_testing = by_pattern(sample)["card_testing"]

    assert card_testing
    assert all(txn.amount_minor < 300 for txn in card_testing)
    assert {txn.channel for txn in card_testing} == {"ecommerce"}
    assert len({txn.merchant_id for txn in card_testing}) > 0.8 * len(card_testing)


def test_account_takeover_comes_from_a_new_device_abroad(sample: list) -> None:
    simulator = TransactionSimulator(seed=11, accounts=2_000)
    known_devices = set(simulator.accounts.devices.ravel())
    home = dict(
        zip(
            simulator.accounts.ids,
            COUNTRY_CODES[simulator.accounts.home],
            strict=True,
        )
    )
    takeovers = by_pattern(sample)["account_takeover"]

    assert takeovers
    for txn in takeovers:
        assert txn.device_id not in known_devices
        assert txn.merchant_country != home[txn.account_id]


def test_category_anomaly_is_gambling_or_crypto(sample: list) -> None:
    anomalies = by_pattern(sample)["category_anomaly"]

    assert anomalies
    assert {txn.mcc for txn in anomalies} <= {"7995", "6051"}


def test_high_velocity_packs_many_spends_into_minutes(sample: list) -> None:
    times: dict[str, list[int]] = defaultdict(list)
    for txn in by_pattern(sample)["high_velocity"]:
        times[txn.account_id].append(txn.event_ms)
    spans = [max(ms) - min(ms) for ms in times.values() if len(ms) >= 10]

    assert spans
    assert sorted(spans)[len(spans) // 2] < 30 * 60_000


def test_live_mode_stamps_the_wall_clock() -> None:
    before = datetime.now(UTC) - timedelta(milliseconds=1)
    txn, label = next(TransactionSimulator(accounts=50).stream(live=True))
    after = datetime.now(UTC) + timedelta(milliseconds=1)

    assert before <= txn.event_time <= after
    assert label.event_time == txn.event_time


def test_simulated_time_starts_at_the_given_start() -> None:
    start = datetime(2025, 3, 4, 5, 6, tzinfo=UTC)
    txn, _ = next(TransactionSimulator(accounts=200, start=start).stream())

    assert start <= txn.event_time < start + timedelta(hours=1)


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ({"accounts": 0}, "accounts: expected at least 1, got 0"),
        ({"start": datetime(2026, 1, 1)}, "start: expected an aware datetime"),
        ({"fraud_rate": 0.7}, "fraud_rate: expected 0 <= rate < 0.5, got 0.7"),
    ],
)
def test_bad_arguments_are_refused_by_name(arguments: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        TransactionSimulator(**arguments)


def test_history_files_have_the_agreed_columns_and_order(tmp_path: Path) -> None:
    transactions_path, labels_path = write_history(
        tmp_path, days=2, accounts=300, seed=9
    )
    transactions = pl.read_parquet(transactions_path)
    labels = pl.read_parquet(labels_path)

    assert transactions.columns == [
        "txn_id", "account_id", "pan", "amount_minor", "currency", "merchant_id",
        "mcc", "merchant_country", "channel", "device_id", "ip", "email",
        "event_time", "schema_version",
    ]  # fmt: skip
    assert transactions.schema["event_time"] == pl.Datetime("ms", "UTC")
    assert transactions.schema["amount_minor"] == pl.Int64
    assert labels.columns == [
        "txn_id",
        "account_id",
        "is_fraud",
        "pattern",
        "event_time",
    ]
    assert transactions["event_time"].is_sorted()
    assert labels["event_time"].is_sorted()


def test_history_covers_the_days_and_labels_join_one_to_one(tmp_path: Path) -> None:
    start = datetime(2026, 6, 1, tzinfo=UTC)
    paths = write_history(tmp_path, days=2, accounts=300, seed=9, start=start)
    transactions, labels = (pl.read_parquet(path) for path in paths)
    joined = transactions.join(labels, on="txn_id", how="inner", suffix="_label")

    assert len(joined) == len(transactions) == len(labels)
    assert (joined["account_id"] == joined["account_id_label"]).all()
    assert (joined["event_time"] == joined["event_time_label"]).all()
    assert transactions["event_time"].min() >= start
    assert transactions["event_time"].max() < start + timedelta(days=2)
    assert transactions["event_time"].max() > start + timedelta(days=1, hours=23)
    assert set(labels["pattern"]) <= set(PATTERNS)


def test_history_matches_the_stream_of_the_same_seed(tmp_path: Path) -> None:
    paths = write_history(tmp_path, days=1, accounts=100, seed=4)
    transactions = pl.read_parquet(paths[0])
    streamed = take(TransactionSimulator(seed=4, accounts=100), 50)

    assert transactions["txn_id"].head(50).to_list() == [t.txn_id for t, _ in streamed]
    assert transactions["pan"].head(50).to_list() == [t.pan for t, _ in streamed]
    assert [ms_from_utc(t.event_time) for t, _ in streamed] == [
        ms_from_utc(moment) for moment in transactions["event_time"].head(50)
    ]


def test_the_command_line_writes_history_and_its_plot(tmp_path: Path) -> None:
    arguments = ["--history", str(tmp_path), "--days", "1", "--accounts", "50"]
    result = CliRunner().invoke(app, arguments)

    assert result.exit_code == 0, result.output
    assert (tmp_path / "transactions.parquet").stat().st_size > 0
    assert (tmp_path / "labels.parquet").stat().st_size > 0
    assert (tmp_path / "history.png").read_bytes().startswith(b"\x89PNG")


def test_hourly_counts_put_each_pattern_in_its_column() -> None:
    hour = datetime(2026, 11, 1, 5, tzinfo=UTC)
    labels = pl.DataFrame(
        {
            "event_time": [
                hour,
                hour + timedelta(minutes=59),
                hour + timedelta(hours=1),
            ],
            "pattern": ["legit", "card_testing", "legit"],
        }
    )

    hourly = hourly_counts(labels)

    assert hourly.columns == ["event_time", *PATTERNS]
    assert hourly["legit"].to_list() == [1, 1]
    assert hourly["card_testing"].to_list() == [1, 0]
    assert hourly["high_velocity"].to_list() == [0, 0]


def test_the_command_line_refuses_a_burst_longer_than_its_period() -> None:
    arguments = ["--burst-every", "1", "--burst-seconds", "2", "--count", "5"]
    result = CliRunner().invoke(app, arguments)

    assert result.exit_code == 2
    assert "burst_seconds: expected 0 < length < period" in result.output


class FakeClock:
    """A clock that only moves when the limiter sleeps or the test says so."""

    def __init__(self) -> None:
        self.now = 100.0
        self.sleeps = 0

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        assert seconds >= 0
        self.sleeps += 1
        self.now += seconds


def drain(limiter: RateLimiter, clock: FakeClock, until: float) -> list[int]:
    """Acquire grants as an infinitely fast producer would, until ``until``."""
    grants = []
    start = clock.now
    while clock.now - start < until:
        grants.append(limiter.acquire())
    return grants


@pytest.mark.parametrize("rate", [1_000, 5_000, 20_000])
def test_rate_limiter_grants_the_rate_over_time(rate: int) -> None:
    clock = FakeClock()
    limiter = RateLimiter(rate, clock=clock, sleep=clock.sleep)

    grants = drain(limiter, clock, until=10.0)

    assert abs(sum(grants) - rate * 10) <= rate * 0.005 + 1
    assert min(grants) >= rate * 0.005 * 0.5


def test_rate_limiter_hands_out_slices_not_single_messages() -> None:
    clock = FakeClock()
    limiter = RateLimiter(20_000, slice_s=0.005, clock=clock, sleep=clock.sleep)

    grants = drain(limiter, clock, until=1.0)

    assert sum(grants) / len(grants) >= 90
    assert clock.sleeps <= 2 * len(grants)


def test_rate_limiter_bursts_multiply_the_rate_for_their_length() -> None:
    clock = FakeClock()
    limiter = RateLimiter(
        1_000, burst_every=10, burst_factor=4, burst_seconds=2, clock=clock,
        sleep=clock.sleep,
    )  # fmt: skip
    rates = []
    for length in (8.0, 2.0, 8.0):
        started = clock.now
        granted = sum(drain(limiter, clock, until=length))
        rates.append(granted / (clock.now - started))

    quiet, burst, after = rates
    assert quiet == pytest.approx(1_000, rel=0.01)
    assert burst == pytest.approx(4_000, rel=0.02)
    assert after == pytest.approx(1_000, rel=0.01)


def test_rate_limiter_forgives_a_long_stall() -> None:
    clock = FakeClock()
    limiter = RateLimiter(1_000, catch_up_s=0.1, clock=clock, sleep=clock.sleep)
    limiter.acquire()

    clock.now += 30.0
    grant = limiter.acquire()

    assert grant <= 1_000 * 0.1 + 1
    assert grant >= 1_000 * 0.1 - 10


def test_unthrottled_limiter_never_sleeps() -> None:
    clock = FakeClock()
    limiter = RateLimiter(0, clock=clock, sleep=clock.sleep)

    grants = [limiter.acquire() for _ in range(100)]

    assert grants == [UNTHROTTLED_GRANT] * 100
    assert clock.sleeps == 0


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ({"rate": -1}, "rate: expected >= 0"),
        ({"rate": 10, "burst_factor": 0}, "factor > 0"),
        ({"rate": 10, "burst_every": 1, "burst_seconds": 1}, "0 < length < period"),
    ],
)
def test_rate_limiter_refuses_impossible_schedules(
    arguments: dict, message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        RateLimiter(**arguments)


def test_a_producer_with_no_broker_is_not_ready() -> None:
    producer = TransactionProducer("127.0.0.1:9", "transactions", "labels")
    with pytest.raises(BrokerUnavailable, match="no broker answered"):
        producer.wait_ready(timeout=0.5)
