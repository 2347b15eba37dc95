"""Account profiles computed from transaction history as of a cut-off time.

A profile summarises an account's past: when it first transacted, how much it
spends over 30 days, where it usually pays and in which categories, and how
many of its earlier transactions were fraud (the chargeback proxy). It is
computed with Polars from the simulator's Parquet history **as of** a cut-off:
only transactions and labels strictly before the cut-off count, so a profile
never knows the future of the transactions it is used to score.

Profiles are materialized daily into Redis (:mod:`featurestore.store`) and
turned into model features by :func:`profile_features`, the one function both
the scoring flow and offline training use.

Example:
    >>> profile = Profile(0, 0, 3, 1000.0, 100.0, "US", ("5411",), 0)
    >>> profile_features(profile, 1200, "5411", "US")
    (1.0, 0.0, 3.0, 2.0, 1.0, 1.0, 0.0)
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import datetime
from typing import Any, Final

import msgspec
import polars as pl

from featurestore.definitions import DAY_MS, PROFILE_NAMES

logger = logging.getLogger(__name__)

#: Days of history behind the amount mean and standard deviation.
AMOUNT_WINDOW_DAYS: Final = 30

#: How many of an account's most frequent merchant categories are "usual".
USUAL_MCC_COUNT: Final = 3


class Profile(msgspec.Struct, array_like=True, frozen=True, gc=False):
    """One account's profile as of a cut-off time.

    Attributes:
        as_of_ms: The cut-off, epoch milliseconds; only data before it counts.
        first_event_ms: Event time of the account's first transaction.
        txn_count_30d: Transactions in the 30 days before the cut-off.
        amount_mean_30d: Mean amount (minor units) over those; 0 with none.
        amount_std_30d: Sample standard deviation of those; 0 with fewer than 2.
        home_country: The most frequent merchant country (ties: lowest code).
        usual_mccs: The most frequent categories, most frequent first (ties:
            lowest code), at most :data:`USUAL_MCC_COUNT`.
        prior_chargebacks: Fraud-labelled transactions before the cut-off.
    """

    as_of_ms: int
    first_event_ms: int
    txn_count_30d: int
    amount_mean_30d: float
    amount_std_30d: float
    home_country: str
    usual_mccs: tuple[str, ...]
    prior_chargebacks: int


PROFILE_COLUMNS: Final = tuple(Profile.__struct_fields__)

#: Profile features of an account without a profile (new, or Redis degraded).
DEFAULT_PROFILE_FEATURES: Final = (0.0,) * len(PROFILE_NAMES)


def profile_features(
    profile: Profile | None, amount_minor: int, mcc: str, country: str
) -> tuple[float, ...]:
    """Encode a profile and one transaction as numeric model features.

    The single definition of the profile features of
    :data:`~featurestore.definitions.PROFILE_FEATURES`, used online and offline.

    Args:
        profile: The account's profile, or None when there is none.
        amount_minor: The transaction amount in minor units.
        mcc: The transaction's merchant category code.
        country: The transaction's merchant country.

    Returns:
        The profile features in model order.
    """
    if profile is None:
        return DEFAULT_PROFILE_FEATURES
    std = profile.amount_std_30d
    z_score = (amount_minor - profile.amount_mean_30d) / std if std > 0 else 0.0
    return (
        1.0,
        (profile.as_of_ms - profile.first_event_ms) / DAY_MS,
        float(profile.txn_count_30d),
        z_score,
        float(country == profile.home_country),
        float(mcc in profile.usual_mccs),
        float(profile.prior_chargebacks),
    )


def _epoch_ms(moment: datetime) -> int:
    """Return an aware datetime as epoch milliseconds."""
    if moment.tzinfo is None:
        message = f"expected an aware datetime for as_of, got {moment!r}"
        raise ValueError(message)
    return int(moment.timestamp() * 1000)


def _most_frequent(history: pl.LazyFrame, column: str, keep: int) -> pl.LazyFrame:
    """Per account, the ``keep`` most frequent values of ``column``, in order."""
    return (
        history.group_by("account_id", column)
        .len()
        .sort(["account_id", "len", column], descending=[False, True, False])
        .group_by("account_id", maintain_order=True)
        .agg(pl.col(column).head(keep))
    )


def _chargebacks(labels: pl.LazyFrame | None, as_of: pl.Expr) -> pl.LazyFrame | None:
    """Per account, fraud-labelled transactions strictly before ``as_of``."""
    if labels is None:
        return None
    return (
        labels.filter(pl.col("is_fraud") & (pl.col("event_time") < as_of))
        .group_by("account_id")
        .agg(pl.len().alias("prior_chargebacks"))
    )


def compute_profiles(
    transactions: pl.DataFrame | pl.LazyFrame,
    labels: pl.DataFrame | pl.LazyFrame | None,
    as_of: datetime,
) -> pl.DataFrame:
    """Compute every account's profile from history strictly before ``as_of``.

    Args:
        transactions: History with at least account_id, amount_minor, mcc,
            merchant_country and event_time (``Datetime("ms", "UTC")``).
        labels: Labels with account_id, is_fraud and event_time, or None to
            count no chargebacks.
        as_of: The aware cut-off time.

    Returns:
        One row per account with a transaction before ``as_of``: account_id
        and the fields of :class:`Profile`, in that order.
    """
    as_of_ms = _epoch_ms(as_of)
    cutoff = pl.lit(as_of_ms).cast(pl.Datetime("ms", "UTC"))
    history = transactions.lazy().filter(pl.col("event_time") < cutoff)
    recent = pl.col("event_time") >= cutoff - pl.duration(days=AMOUNT_WINDOW_DAYS)
    amount = pl.col("amount_minor").filter(recent).cast(pl.Float64)

    base = history.group_by("account_id").agg(
        pl.lit(as_of_ms, pl.Int64).alias("as_of_ms"),
        pl.col("event_time").min().dt.epoch("ms").alias("first_event_ms"),
        recent.sum().cast(pl.Int64).alias("txn_count_30d"),
        amount.mean().fill_null(0.0).alias("amount_mean_30d"),
        amount.std(ddof=1).fill_null(0.0).alias("amount_std_30d"),
    )
    home = _most_frequent(history, "merchant_country", 1).select(
        "account_id", pl.col("merchant_country").list.first().alias("home_country")
    )
    usual = _most_frequent(history, "mcc", USUAL_MCC_COUNT).rename(
        {"mcc": "usual_mccs"}
    )
    profiles = base.join(home, on="account_id").join(usual, on="account_id")
    chargebacks = _chargebacks(labels.lazy() if labels is not None else None, cutoff)
    if chargebacks is None:
        profiles = profiles.with_columns(prior_chargebacks=pl.lit(0, pl.Int64))
    else:
        profiles = profiles.join(chargebacks, on="account_id", how="left")
    columns = [pl.col("prior_chargebacks").fill_null(0).cast(pl.Int64)]
    profiles = profiles.with_columns(columns).select("account_id", *PROFILE_COLUMNS)
    return profiles.sort("account_id").collect()


def profiles_from_frame(frame: pl.DataFrame) -> dict[str, Profile]:
    """Turn :func:`compute_profiles` output into Profile objects by account."""
    rows = frame.select("account_id", *PROFILE_COLUMNS).iter_rows()
    return {account_id: profile_from_row(fields) for account_id, *fields in rows}


def profile_from_row(fields: Sequence[Any]) -> Profile:
    """Build a Profile from one row of :data:`PROFILE_COLUMNS` values.

    Args:
        fields: The values in :data:`PROFILE_COLUMNS` order, as a Polars row
            gives them (``usual_mccs`` as a list).

    Returns:
        The profile, with ``usual_mccs`` as a tuple.
    """
    (as_of_ms, first_event_ms, count, mean, std, home, mccs, chargebacks) = fields
    return Profile(
        as_of_ms, first_event_ms, count, mean, std, home, tuple(mccs), chargebacks
    )
