"""A seeded, endless stream of labelled card transactions in event-time order.

Time advances in slices of at most one hour. Within a slice every account's
activity is constant, so the slice's transactions form a Poisson process:
their number is one Poisson draw, their times sorted uniform draws, and their
accounts a weighted draw by each account's rate at that UTC hour. Everyday
purchases are then filled in for the whole slice at once with numpy; fraud
episodes, a few percent of traffic, are built row by row and merged in by
time. The output of a slice is a :class:`Batch` of plain Python columns.

Example:
    >>> simulator = TransactionSimulator(seed=1, accounts=100)
    >>> txn, label = next(simulator.stream())
    >>> txn.txn_id == label.txn_id
    True
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Final

import numpy as np

from dataflows.schema import CHANNELS, MAX_AMOUNT_MINOR, Transaction
from dataflows.simulator import catalog
from dataflows.simulator.accounts import FAVOURITE_SHARE, FAVOURITES, Accounts
from dataflows.simulator.fraud import (
    ECOMMERCE,
    LEGIT,
    PATTERNS,
    EpisodeMaker,
    Label,
    Row,
)

#: Where simulated time starts unless told otherwise; fixed so that the same
#: seed always gives the same stream.
DEFAULT_START: Final = datetime(2026, 11, 1, tzinfo=UTC)
DEFAULT_FRAUD_RATE: Final = 0.02

HOUR_MS: Final = 3_600_000
DAY_MS: Final = 24 * HOUR_MS
_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)

ATM: Final = CHANNELS.index("atm")
#: Share of web purchases made at shops abroad.
CROSS_BORDER_SHARE: Final = 0.15
#: Share of purchases made on a holder's second device, if they have one.
SECOND_DEVICE_SHARE: Final = 0.3
#: A cash withdrawal is this many times a holder's typical purchase.
ATM_SPEND: Final = 3.0


def utc_from_ms(event_ms: int) -> datetime:
    """Return the aware UTC datetime of epoch milliseconds, exactly."""
    return _EPOCH + timedelta(milliseconds=event_ms)


def ms_from_utc(moment: datetime) -> int:
    """Return epoch milliseconds of an aware datetime."""
    return (moment - _EPOCH) // timedelta(milliseconds=1)


def wall_clock_ms() -> int:
    """Return the current time in epoch milliseconds."""
    return time.time_ns() // 1_000_000


@dataclass(slots=True)
class Batch:
    """Transactions of one time slice, column by column, in event-time order.

    Columns are plain lists so that turning rows into messages or data frames
    costs no numpy scalar conversions. ``pattern`` holds the label's pattern
    name; ``is_fraud`` is true for every pattern but ``legit``.
    """

    event_ms: list[int]
    txn_id: list[str]
    account_id: list[str]
    pan: list[str]
    amount_minor: list[int]
    currency: list[str]
    merchant_id: list[str]
    mcc: list[str]
    merchant_country: list[str]
    channel: list[str]
    device_id: list[str]
    ip: list[str]
    email: list[str]
    pattern: list[str]
    is_fraud: list[bool] = field(default_factory=list)

    def __len__(self) -> int:
        """Return the number of transactions."""
        return len(self.txn_id)

    def pairs(
        self, clock_ms: Callable[[], int] | None = None
    ) -> Iterator[tuple[Transaction, Label]]:
        """Yield each transaction with its label.

        Args:
            clock_ms: In live mode, the clock that stamps each transaction as
                it is yielded (epoch ms); ``None`` keeps the simulated times.
        """
        rows = zip(
            self.txn_id, self.account_id, self.pan, self.amount_minor,
            self.currency, self.merchant_id, self.mcc, self.merchant_country,
            self.channel, self.device_id, self.ip, self.email,
            self.event_ms, self.pattern, self.is_fraud,
            strict=True,
        )  # fmt: skip
        for (
            txn_id, account_id, pan, amount_minor, currency, merchant_id, mcc,
            merchant_country, channel, device_id, ip, email,
            event_ms, pattern, is_fraud,
        ) in rows:  # fmt: skip
            event_time = utc_from_ms(clock_ms() if clock_ms else event_ms)
            txn = Transaction(
                txn_id, account_id, pan, amount_minor, currency, merchant_id, mcc,
                merchant_country, channel, device_id, ip, email, event_time,
            )  # fmt: skip
            yield txn, Label(txn_id, account_id, is_fraud, pattern, event_time)


class TransactionSimulator:
    """Seeded generator of labelled card transactions for many accounts.

    The same seed and arguments give the same stream, transaction for
    transaction. Account ids do not depend on the seed; account habits do.

    Args:
        seed: Seed of every random draw.
        accounts: Number of card holders.
        start: Simulated time of the first slice (aware); defaults to
            :data:`DEFAULT_START`.
        fraud_rate: Expected fraction of fraudulent transactions, split over
            the patterns in :data:`dataflows.simulator.fraud.SPECS`.
        id_prefix: Prefix of transaction ids; defaults to ``s<seed>-``. Give
            each live run its own prefix so idempotent sinks do not take its
            transactions for replays of an earlier run.

    Raises:
        ValueError: for a naive ``start``, no accounts or a fraud rate outside
            ``[0, 0.5)``.
    """

    def __init__(
        self,
        seed: int = 7,
        accounts: int = 10_000,
        start: datetime | None = None,
        fraud_rate: float = DEFAULT_FRAUD_RATE,
        id_prefix: str | None = None,
    ) -> None:
        """Build the world: merchants, account profiles, hourly rates."""
        _check_arguments(accounts, start, fraud_rate)
        self._rng = np.random.default_rng(seed)
        self._merchants = catalog.build_catalog(self._rng)
        self._accounts = Accounts(self._rng, self._merchants, accounts)
        self._episodes = EpisodeMaker(self._rng, self._accounts, self._merchants)
        self._fraud_odds = fraud_rate / (1 - fraud_rate)
        self._prefix = id_prefix if id_prefix is not None else f"s{seed}-"
        self._start_ms = ms_from_utc(start or DEFAULT_START)

        per_second = self._accounts.hourly_weight * self._accounts.daily_rate / 86_400
        self._hour_cdf = np.cumsum(per_second, axis=1)
        self._next_id = 0

    @property
    def start_ms(self) -> int:
        """Start of simulated time, epoch milliseconds."""
        return self._start_ms

    @property
    def accounts(self) -> Accounts:
        """The simulated card holders."""
        return self._accounts

    def stream(self, live: bool = False) -> Iterator[tuple[Transaction, Label]]:
        """Yield ``(transaction, label)`` pairs forever, in event-time order.

        Args:
            live: Stamp each transaction with the wall clock at the moment it
                is yielded instead of its simulated time.
        """
        clock = wall_clock_ms if live else None
        for batch in self.batches():
            yield from batch.pairs(clock)

    def batches(self) -> Iterator[Batch]:
        """Yield one :class:`Batch` per time slice of at most an hour, forever."""
        pending: list[Row] = []
        slice_start = self._start_ms
        day = -1
        while True:
            if slice_start // DAY_MS != day:
                day = slice_start // DAY_MS
                self._accounts.new_day(day)
            slice_end = (slice_start // HOUR_MS + 1) * HOUR_MS
            batch, pending = self._slice(slice_start, slice_end, pending)
            slice_start = slice_end
            if len(batch):
                yield batch

    def _slice(
        self, start_ms: int, end_ms: int, pending: list[Row]
    ) -> tuple[Batch, list[Row]]:
        """Return the batch of ``[start_ms, end_ms)`` and fraud rows still due."""
        cdf = self._hour_cdf[(start_ms // HOUR_MS) % 24]
        count = int(self._rng.poisson(cdf[-1] * (end_ms - start_ms) / 1000))
        event_ms = np.sort(self._rng.integers(start_ms, end_ms, count))
        chosen = np.searchsorted(cdf, self._rng.random(count) * cdf[-1], side="right")
        legit = self._everyday(event_ms, np.minimum(chosen, len(cdf) - 1))

        expected_fraud = count * self._fraud_odds
        pending = pending + self._episodes.episodes(start_ms, end_ms, expected_fraud)
        due = [row for row in pending if row.event_ms < end_ms]
        later = [row for row in pending if row.event_ms >= end_ms]
        return self._assemble(legit, due), later

    def _everyday(self, event_ms: np.ndarray, account: np.ndarray) -> dict:
        """Fill in ordinary purchases for the given accounts and times."""
        rng, accounts, merchants = self._rng, self._accounts, self._merchants
        count = len(account)
        trip = accounts.trip[account]
        abroad = trip >= 0
        country = np.where(abroad, trip, accounts.home[account])
        channel = accounts.channel_of(account, rng.random(count))

        merchant = self._merchant_in(country, count)
        favourite = accounts.favourites[account, rng.integers(0, FAVOURITES, count)]
        loyal = ~abroad & (rng.random(count) < FAVOURITE_SHARE)
        merchant = np.where(loyal, favourite, merchant)
        online = channel == ECOMMERCE
        hub = catalog.HUB_INDEX[rng.integers(0, len(catalog.HUB_INDEX), count)]
        abroad_shop = online & (rng.random(count) < CROSS_BORDER_SHARE)
        merchant = np.where(abroad_shop, self._merchant_in(hub, count), merchant)
        atm = channel == ATM
        cash_point = merchants.atm_start[country] + rng.integers(
            0, catalog.ATMS_PER_COUNTRY, count
        )
        merchant = np.where(atm, cash_point, merchant)

        # Web shops charge in the holder's currency; shops and ATMs in their own.
        currency_country = np.where(online, accounts.home[account], country)
        amount = self._amount(account, merchant, currency_country, atm)
        second = rng.random(count) < SECOND_DEVICE_SHARE
        return {
            "event_ms": event_ms,
            "account": account,
            "pattern": np.full(count, LEGIT, dtype=np.int8),
            "amount_minor": amount,
            "merchant": merchant,
            "channel": channel,
            "currency_country": currency_country,
            "device_id": accounts.devices[account, second.astype(np.int64)],
            "ip": accounts.ip[account],
        }

    def _merchant_in(self, country: np.ndarray, count: int) -> np.ndarray:
        """Return a random everyday merchant of each given country."""
        merchants = self._merchants
        offset = self._rng.random(count) * merchants.count[country]
        return merchants.start[country] + offset.astype(np.int64)

    def _amount(
        self,
        account: np.ndarray,
        merchant: np.ndarray,
        currency_country: np.ndarray,
        atm: np.ndarray,
    ) -> np.ndarray:
        """Draw log-normal amounts in minor units; ATMs pay out round sums."""
        accounts = self._accounts
        noise = self._rng.standard_normal(len(account))
        usd = np.exp(accounts.log_spend[account] + accounts.spread[account] * noise)
        usd *= np.where(atm, ATM_SPEND, self._merchants.spend[merchant])
        minor = usd * catalog.MINOR_PER_USD[currency_country]

        step = catalog.ATM_STEP_MINOR[currency_country]
        withdrawal = np.maximum(np.round(minor / step), 1) * step
        minor = np.where(atm, withdrawal, np.round(minor))
        return np.clip(minor, 1, MAX_AMOUNT_MINOR).astype(np.int64)

    def _assemble(self, legit: dict, fraud: list[Row]) -> Batch:
        """Merge everyday and fraud rows by time and look up their strings."""
        columns = legit
        if fraud:
            extra = zip(*fraud, strict=True)
            for name, values in zip(Row._fields, extra, strict=True):
                columns[name] = np.concatenate([columns[name], values])
        order = np.argsort(columns["event_ms"], kind="stable")
        return self._batch({name: values[order] for name, values in columns.items()})

    def _batch(self, columns: dict[str, np.ndarray]) -> Batch:
        """Turn index columns into the string columns of a :class:`Batch`."""
        accounts, merchants = self._accounts, self._merchants
        account, merchant = columns["account"], columns["merchant"]
        pattern = columns["pattern"]
        first, self._next_id = self._next_id, self._next_id + len(account)
        prefix = self._prefix
        return Batch(
            event_ms=columns["event_ms"].tolist(),
            txn_id=[f"{prefix}{n:010d}" for n in range(first, self._next_id)],
            account_id=accounts.ids[account].tolist(),
            pan=[accounts.pan[n] for n in account.tolist()],
            amount_minor=columns["amount_minor"].tolist(),
            currency=catalog.COUNTRY_CURRENCY[columns["currency_country"]].tolist(),
            merchant_id=merchants.merchant_id[merchant].tolist(),
            mcc=merchants.mcc[merchant].tolist(),
            merchant_country=catalog.COUNTRY_CODES[
                merchants.country[merchant]
            ].tolist(),
            channel=np.array(CHANNELS, dtype=object)[columns["channel"]].tolist(),
            device_id=columns["device_id"].tolist(),
            ip=columns["ip"].tolist(),
            email=[accounts.email[n] for n in account.tolist()],
            pattern=np.array(PATTERNS, dtype=object)[pattern].tolist(),
            is_fraud=(pattern != LEGIT).tolist(),
        )


def _check_arguments(accounts: int, start: datetime | None, fraud_rate: float) -> None:
    """Refuse arguments the simulator cannot honour, saying which and why."""
    if accounts < 1:
        raise ValueError(f"accounts: expected at least 1, got {accounts!r}")
    if start is not None and start.utcoffset() is None:
        raise ValueError(f"start: expected an aware datetime, got {start!r}")
    if not 0 <= fraud_rate < 0.5:
        raise ValueError(f"fraud_rate: expected 0 <= rate < 0.5, got {fraud_rate!r}")
