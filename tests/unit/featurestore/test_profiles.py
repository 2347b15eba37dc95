from __future__ import annotations

from datetime import UTC, datetime, timedelta

import polars as pl
import pytest

from featurestore.definitions import PROFILE_NAMES
from featurestore.profiles import (
    DEFAULT_PROFILE_FEATURES,
    Profile,
    compute_profiles,
    profile_features,
    profiles_from_frame,
)

AS_OF = datetime(2026, 12, 1, tzinfo=UTC)


def history(*rows: tuple[str, int, str, str, float]) -> pl.DataFrame:
    """Rows of (account, amount, mcc, country, days before AS_OF)."""
    return pl.DataFrame(
        {
            "txn_id": [f"t-{index}" for index in range(len(rows))],
            "account_id": [row[0] for row in rows],
            "amount_minor": [row[1] for row in rows],
            "mcc": [row[2] for row in rows],
            "merchant_country": [row[3] for row in rows],
            "event_time": [AS_OF - timedelta(days=row[4]) for row in rows],
        }
    ).with_columns(pl.col("event_time").dt.cast_time_unit("ms"))


def labels_for(transactions: pl.DataFrame, fraud_ids: set[str]) -> pl.DataFrame:
    return transactions.select(
        "txn_id",
        "account_id",
        is_fraud=pl.col("txn_id").is_in(list(fraud_ids)),
        event_time="event_time",
    )


def test_a_profile_counts_only_data_before_the_cut_off():
    transactions = history(
        ("a", 100, "5411", "US", 40),
        ("a", 300, "5411", "US", 10),
        ("a", 500, "5812", "FR", 2),
        ("a", 9_999, "7995", "JP", -1),  # after the cut-off
    )
    labels = labels_for(transactions, {"t-1", "t-3"})

    profile = profiles_from_frame(compute_profiles(transactions, labels, AS_OF))["a"]

    assert profile.txn_count_30d == 2
    assert profile.amount_mean_30d == 400
    assert profile.amount_std_30d == pytest.approx(141.42135623730951)
    assert profile.home_country == "US"
    assert profile.usual_mccs == ("5411", "5812")
    assert profile.prior_chargebacks == 1
    assert profile.first_event_ms == int((AS_OF - timedelta(days=40)).timestamp() * 1e3)


def test_ties_pick_the_lowest_code_and_a_single_amount_has_no_spread():
    transactions = history(("b", 100, "5812", "FR", 1), ("b", 100, "5411", "DE", 2))

    profile = profiles_from_frame(compute_profiles(transactions, None, AS_OF))["b"]

    assert profile.home_country == "DE"
    assert profile.usual_mccs == ("5411", "5812")
    assert profile.prior_chargebacks == 0
    assert profile.amount_std_30d == 0


def test_an_account_with_only_later_transactions_has_no_profile():
    transactions = history(("c", 100, "5411", "US", -2))

    assert compute_profiles(transactions, None, AS_OF).height == 0


def test_a_naive_cut_off_is_refused():
    transactions = history(("d", 100, "5411", "US", 1))
    with pytest.raises(ValueError, match="aware"):
        compute_profiles(transactions, None, datetime(2026, 12, 1))


def test_profile_features_encode_a_transaction_against_the_profile():
    profile = Profile(10 * 86_400_000, 0, 4, 1000.0, 250.0, "US", ("5411",), 2)

    encoded = profile_features(profile, 500, "5999", "US")
    features = dict(zip(PROFILE_NAMES, encoded, strict=True))

    assert features == {
        "has_profile": 1.0,
        "account_age_days": 10.0,
        "txn_count_30d": 4.0,
        "amount_z_vs_30d": -2.0,
        "is_home_country": 1.0,
        "mcc_is_usual": 0.0,
        "prior_chargebacks": 2.0,
    }


def test_no_profile_or_no_spread_gives_defined_defaults():
    flat = Profile(0, 0, 1, 1000.0, 0.0, "US", (), 0)

    assert profile_features(None, 500, "5411", "US") == DEFAULT_PROFILE_FEATURES
    assert profile_features(flat, 5000, "5411", "FR")[3] == 0.0
