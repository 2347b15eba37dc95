"""Online and offline features agree on every transaction of a long history.

The online side replays transactions one by one through the velocity state
the scoring flow uses and the profile snapshots as Redis would return them
(encoded and decoded); the offline side computes the training frame with
Polars. Every feature of every transaction must match.
"""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np
import polars as pl
import pytest
from feature_edge_history import synthetic_history

from featurestore.definitions import FEATURE_NAMES
from featurestore.offline import daily_profiles, offline_features
from featurestore.profiles import Profile, profile_features, profiles_from_frame
from featurestore.store import decode_profile, encode_profile
from featurestore.velocity import AccountVelocity

MIN_TRANSACTIONS = 100_000


def _snapshots_as_stored(snapshots: pl.DataFrame) -> dict:
    """Daily profiles by (day, account), round-tripped through the store codec."""
    by_day: dict = {}
    for (day,), frame in snapshots.group_by("snapshot_day"):
        profiles = profiles_from_frame(frame)
        by_day[day] = {
            account_id: decode_profile(encode_profile(profile))
            for account_id, profile in profiles.items()
        }
    return by_day


def replay_online(transactions: pl.DataFrame, snapshots: pl.DataFrame) -> dict:
    """Features of each transaction as the scoring flow computes them."""
    profiles_by_day = _snapshots_as_stored(snapshots)
    accounts: dict[str, AccountVelocity] = {}
    features = {}
    rows = transactions.sort("event_time", maintain_order=True).select(
        "txn_id", "account_id", pl.col("event_time").dt.epoch("ms"),
        "amount_minor", "merchant_id", "mcc", "merchant_country", "device_id",
    )  # fmt: skip
    for (
        txn_id,
        account_id,
        event_ms,
        amount,
        merchant,
        mcc,
        country,
        device,
    ) in rows.iter_rows():
        account = accounts.get(account_id) or accounts.setdefault(
            account_id, AccountVelocity()
        )
        velocity = account.update(event_ms, amount, merchant, country, device)
        day = datetime.fromtimestamp(event_ms / 1000, UTC).date()
        profile: Profile | None = profiles_by_day.get(day, {}).get(account_id)
        profile_part = profile_features(profile, amount, mcc, country)
        features[txn_id] = velocity.features + profile_part
    return features


def _assert_parity(transactions: pl.DataFrame, labels: pl.DataFrame) -> np.ndarray:
    """Compare both sides on every feature; return the online matrix."""
    offline = offline_features(transactions, labels)
    online = replay_online(transactions, daily_profiles(transactions, labels))

    assert offline.height == transactions.height == len(online)
    expected = offline.select(FEATURE_NAMES).to_numpy()
    actual = np.array([online[txn_id] for txn_id in offline["txn_id"]])
    mismatched = ~np.isclose(actual, expected, rtol=0, atol=1e-9)
    if mismatched.any():
        row, column = np.argwhere(mismatched)[0]
        pytest.fail(
            f"{mismatched.sum()} values differ; first: txn "
            f"{offline['txn_id'][int(row)]!r} feature {FEATURE_NAMES[column]!r}: "
            f"online {actual[row, column]!r}, offline {expected[row, column]!r}"
        )
    return actual


def _column(matrix: np.ndarray, name: str) -> np.ndarray:
    return matrix[:, FEATURE_NAMES.index(name)]


@pytest.mark.slow
def test_online_and_offline_features_match_on_an_adversarial_history():
    transactions, labels = synthetic_history(accounts=2_000, per_account=50)
    assert transactions.height >= MIN_TRANSACTIONS

    online = _assert_parity(transactions, labels)

    # The history must reach the edges the definitions care about.
    assert (_column(online, "seconds_since_prev") == -1).sum() > 2_000  # resets
    assert (_column(online, "seconds_since_prev") == 0).any()  # equal times
    assert (_column(online, "txn_count_1m") > 2).any()
    assert (_column(online, "tiny_count_10m") > 1).any()
    assert (_column(online, "distinct_countries_24h") > 3).any()
    assert (_column(online, "prior_chargebacks") > 0).any()
    assert (_column(online, "has_profile") == 0).any()
    assert (_column(online, "has_profile") == 1).any()
    devices = transactions.group_by("account_id").agg(pl.col("device_id").n_unique())
    assert (devices["device_id"] > 16).any()  # more than the state remembers


@pytest.mark.slow
def test_online_and_offline_features_match_on_a_simulated_history(tmp_path):
    simulator = pytest.importorskip("dataflows.simulator")
    simulator.write_history(tmp_path, days=7, accounts=1_500, seed=11)
    transactions = pl.read_parquet(tmp_path / "transactions.parquet")
    labels = pl.read_parquet(tmp_path / "labels.parquet")
    assert transactions.height >= MIN_TRANSACTIONS

    online = _assert_parity(transactions, labels)

    assert len(set(_column(online, "txn_count_1h"))) > 2
    assert _column(online, "new_device").min() == 0
