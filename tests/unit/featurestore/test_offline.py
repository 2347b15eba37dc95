from __future__ import annotations

from datetime import UTC, datetime, timedelta

import polars as pl
from feature_edge_history import synthetic_history

from featurestore.definitions import FEATURE_NAMES
from featurestore.offline import load_history, offline_features

START = datetime(2026, 11, 1, 9, tzinfo=UTC)


def transactions(*rows: tuple[str, str, float, int, str]) -> pl.DataFrame:
    """Rows of (txn_id, account, minutes after START, amount, device)."""
    return pl.DataFrame(
        {
            "txn_id": [row[0] for row in rows],
            "account_id": [row[1] for row in rows],
            "amount_minor": [row[3] for row in rows],
            "merchant_id": ["m-1"] * len(rows),
            "mcc": ["5411"] * len(rows),
            "merchant_country": ["US"] * len(rows),
            "device_id": [row[4] for row in rows],
            "event_time": [START + timedelta(minutes=row[2]) for row in rows],
        }
    ).with_columns(pl.col("event_time").dt.cast_time_unit("ms"))


def test_the_frame_has_txn_id_then_features_in_model_order_then_labels():
    history = transactions(("t-1", "a", 0, 100, "d"))
    labels = history.select(
        "txn_id", "account_id", "event_time", is_fraud=True, pattern=pl.lit("burst")
    )

    frame = offline_features(history, labels)

    assert frame.columns == ["txn_id", *FEATURE_NAMES, "is_fraud", "pattern"]
    assert frame.row(0, named=True)["is_fraud"] is True


def test_each_row_sees_only_its_accounts_earlier_transactions():
    history = transactions(
        ("t-1", "a", 0, 100, "d"),
        ("t-2", "b", 0.5, 700, "d"),
        ("t-3", "a", 1.5, 300, "d"),
        ("t-4", "a", 2, 900, "e"),
    )

    rows = {
        row["txn_id"]: row for row in offline_features(history).iter_rows(named=True)
    }

    assert rows["t-2"]["txn_count_1h"] == 1
    assert rows["t-3"]["txn_count_1m"] == 1
    assert rows["t-4"]["txn_count_1m"] == 2
    assert rows["t-4"]["amount_sum_1h"] == 1300
    assert rows["t-4"]["seconds_since_prev"] == 30.0
    assert rows["t-4"]["amount_vs_mean"] == 900 / 200
    assert rows["t-4"]["new_device"] == 1
    assert rows["t-3"]["new_device"] == 0


def test_profiles_come_from_the_snapshot_before_the_transactions_day():
    history = transactions(
        ("t-1", "a", 0, 100, "d"),
        ("t-2", "a", 60, 100, "d"),  # same day: no snapshot yet
        ("t-3", "a", 60 * 20, 100, "d"),  # next day: yesterday's profile
    )

    rows = {
        row["txn_id"]: row for row in offline_features(history).iter_rows(named=True)
    }

    assert rows["t-2"]["has_profile"] == 0
    assert rows["t-3"]["has_profile"] == 1
    assert rows["t-3"]["txn_count_30d"] == 2


def test_later_transactions_never_change_earlier_features():
    history, labels = synthetic_history(accounts=60, per_account=40, seed=3)
    cut = history["event_time"].quantile(0.5)
    earlier = history.filter(pl.col("event_time") <= cut)

    full = offline_features(history, labels)
    partial = offline_features(earlier, labels.filter(pl.col("event_time") <= cut))

    assert partial.height < full.height
    matched = full.join(partial, on="txn_id", suffix="_partial")
    assert matched.height == partial.height
    for name in FEATURE_NAMES:
        assert (matched[name] - matched[f"{name}_partial"]).abs().max() < 1e-9, name


def test_load_history_reads_the_simulators_files(tmp_path):
    history, labels = synthetic_history(accounts=5, per_account=4)
    history.write_parquet(tmp_path / "transactions.parquet")
    labels.write_parquet(tmp_path / "labels.parquet")

    loaded, loaded_labels = load_history(tmp_path)

    assert loaded.height == history.height
    assert loaded_labels is not None
    assert loaded_labels.height == labels.height
