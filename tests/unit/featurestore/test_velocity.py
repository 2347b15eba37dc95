from __future__ import annotations

import pickle

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from featurestore.definitions import DAY_MS, MINUTE_MS, VELOCITY_NAMES
from featurestore.velocity import MAX_SEEN_DEVICES, AccountVelocity

T0 = 1_796_000_000_000


def named(update) -> dict[str, float]:
    return dict(zip(VELOCITY_NAMES, update.features, strict=True))


def add(account, offset_ms, amount=1000, merchant="m-1", country="US", device="d"):
    return named(account.update(T0 + offset_ms, amount, merchant, country, device))


def test_a_first_transaction_counts_itself_and_has_no_history():
    first = add(AccountVelocity(), 0)

    assert first["txn_count_1m"] == first["txn_count_24h"] == 1
    assert first["amount_sum_24h"] == 1000
    assert first["seconds_since_prev"] == -1
    assert first["amount_vs_mean"] == 1
    assert first["new_device"] == first["new_country"] == 1


def test_a_window_excludes_an_event_exactly_its_length_earlier():
    account = AccountVelocity()
    add(account, 0)

    assert add(account, MINUTE_MS - 1)["txn_count_1m"] == 2
    assert add(account, 2 * MINUTE_MS - 1)["txn_count_1m"] == 1
    assert add(account, 2 * MINUTE_MS - 1)["txn_count_10m"] == 4


def test_sums_tiny_counts_distinct_values_and_the_running_mean():
    account = AccountVelocity()
    add(account, 0, amount=100, merchant="m-1", country="US")
    add(account, 1_000, amount=300, merchant="m-2", country="FR", device="e")
    third = add(account, 2_000, amount=800, merchant="m-1", country="US")

    assert third["amount_sum_1h"] == 1200
    assert third["tiny_count_10m"] == 1
    assert third["distinct_merchants_1h"] == 2
    assert third["distinct_countries_24h"] == 2
    assert third["seconds_since_prev"] == 1.0
    assert third["amount_vs_mean"] == 800 / 200
    assert third["new_device"] == third["new_country"] == 0


def test_an_idle_day_restarts_the_account_but_a_shorter_gap_does_not():
    account = AccountVelocity()
    add(account, 0, amount=100)
    kept = add(account, DAY_MS - 1, amount=300)
    reset = add(account, 2 * DAY_MS - 1, amount=900)

    assert kept["new_device"] == 0
    assert kept["amount_vs_mean"] == 3
    assert reset["seconds_since_prev"] == -1
    assert reset["amount_vs_mean"] == 1
    assert reset["new_device"] == 1
    assert account.expires_at_ms == T0 + 3 * DAY_MS - 1


def test_devices_beyond_the_remembered_bound_are_new_on_every_use():
    account = AccountVelocity()
    for index in range(MAX_SEEN_DEVICES):
        add(account, index, device=f"d{index}")

    assert add(account, 100, device="extra")["new_device"] == 1
    assert add(account, 200, device="extra")["new_device"] == 1
    assert add(account, 300, device="d0")["new_device"] == 0


def test_a_late_event_within_the_allowance_joins_its_own_windows():
    account = AccountVelocity(allowed_lateness_ms=5 * MINUTE_MS)
    add(account, 0)
    add(account, 3 * MINUTE_MS)

    late = account.update(T0 + 30_000, 500, "m-2", "US", "d")
    after = add(account, 3 * MINUTE_MS + 1)

    assert late.late_by_ms == 3 * MINUTE_MS - 30_000
    assert late.remembered
    assert named(late)["txn_count_1m"] == 2  # itself and the event at 0
    assert named(late)["seconds_since_prev"] == 30.0
    assert after["txn_count_10m"] == 4
    assert after["amount_sum_1h"] == 3500


def test_an_event_later_than_the_allowance_is_scored_but_not_remembered():
    account = AccountVelocity(allowed_lateness_ms=MINUTE_MS)
    add(account, 0)
    add(account, 10 * MINUTE_MS)
    before = account.snapshot()

    late = account.update(T0 + MINUTE_MS, 500, "m-9", "JP", "z")

    assert not late.remembered
    assert late.late_by_ms == 9 * MINUTE_MS
    assert named(late)["txn_count_10m"] == 2
    assert named(late)["new_country"] == 1
    assert account.snapshot() == before


def test_old_entries_are_dropped_so_memory_stays_bounded():
    account = AccountVelocity(allowed_lateness_ms=0)
    for hour in range(24 * 7):
        add(account, hour * 3_600_000)

    last_event, times = msgspec.msgpack.decode(account.snapshot())[:2]
    assert len(times) == 24
    assert min(times) > last_event - DAY_MS
    assert len(pickle.dumps(account.snapshot())) < 2048


def test_a_restored_snapshot_continues_exactly_like_the_original():
    original = AccountVelocity()
    for second in range(0, 600, 7):
        add(original, second * 1000, amount=second + 1, device=f"d{second % 5}")

    restored = AccountVelocity.restore(pickle.loads(pickle.dumps(original.snapshot())))

    for second in range(600, 900, 11):
        assert add(restored, second * 1000) == add(original, second * 1000)


def test_a_snapshot_is_bytes_of_plain_values():
    account = AccountVelocity()
    add(account, 0)

    def plain(value) -> bool:
        if isinstance(value, list | tuple):
            return all(plain(item) for item in value)
        return type(value) in (int, str)

    snapshot = account.snapshot()
    assert isinstance(snapshot, bytes)
    assert plain(msgspec.msgpack.decode(snapshot))


def test_a_snapshot_is_not_changed_by_later_updates():
    account = AccountVelocity()
    add(account, 0)
    snapshot = account.snapshot()

    add(account, 60_000)

    assert AccountVelocity.restore(snapshot).snapshot() == snapshot


def test_a_tuple_snapshot_of_an_earlier_version_still_restores():
    original = AccountVelocity()
    for second in range(0, 300, 13):
        add(original, second * 1000, amount=second + 1, device=f"d{second % 3}")
    fields = msgspec.msgpack.decode(original.snapshot())
    earlier = (
        fields[0], list(fields[1]), list(fields[2]), list(fields[3]),
        list(fields[4]), tuple(fields[5]), tuple(fields[6]), fields[7], fields[8],
    )  # fmt: skip

    restored = AccountVelocity.restore(earlier)

    assert restored.snapshot() == original.snapshot()
    assert add(restored, 400_000) == add(original, 400_000)


def test_a_negative_lateness_allowance_is_refused():
    with pytest.raises(ValueError, match="allowed_lateness_ms"):
        AccountVelocity(allowed_lateness_ms=-1)


events = st.lists(
    st.tuples(st.integers(0, 30 * MINUTE_MS), st.integers(1, 5_000)),
    min_size=1,
    max_size=40,
)


@settings(max_examples=200, deadline=None)
@given(events)
def test_windows_match_a_brute_force_count_over_what_was_seen(arrivals):
    # Lateness covers every arrival, so each event is inserted in order.
    account = AccountVelocity(allowed_lateness_ms=DAY_MS)
    seen: list[tuple[int, int]] = []
    for offset, amount in arrivals:
        update = named(account.update(T0 + offset, amount, "m", "US", "d"))
        seen.append((offset, amount))
        in_10m = [a for t, a in seen if offset - 10 * MINUTE_MS < t <= offset]
        in_1m = [a for t, a in seen if offset - MINUTE_MS < t <= offset]

        assert update["txn_count_10m"] == len(in_10m)
        assert update["txn_count_1m"] == len(in_1m)
        assert update["amount_sum_1h"] == sum(a for t, a in seen if t <= offset)
        assert update["tiny_count_10m"] == sum(a < 200 for a in in_10m)
