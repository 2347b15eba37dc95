"""Point-in-time correct features for every transaction of a history.

Training needs, for each past transaction, exactly the features the scoring
flow would have computed when it arrived, and nothing from later:

* velocity features from the account's earlier transactions only, with the
  definitions of :mod:`featurestore.velocity` (windows ``(t - length, t]``
  that include the transaction, idle reset after 24 h, bounded seen sets);
  rows with equal event times are taken in file order, as the flow would
  receive them;
* profile features as of the last daily materialization at or before the
  transaction: the profile snapshot cut at 00:00 UTC of its day, built from
  data strictly before that instant.

The computation is vectorised: rows are sorted by account and time into one
increasing integer key, every window start is a binary search on that key,
sums are differences of running totals, and distinct counts come from a
difference array (each row adds one to every later row of its account for
which it is the latest occurrence of its value inside the window).

Device ids are compared for equality only; the flow compares keyed tokens of
the same ids, which give the same features.

Example:
    >>> history = load_history(directory)  # doctest: +SKIP
    >>> frame = offline_features(*history)  # doctest: +SKIP
"""

from __future__ import annotations

import logging
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import polars as pl
from rich.progress import track

from featurestore.definitions import (
    DAY_MS,
    FEATURE_NAMES,
    HOUR_MS,
    IDLE_RESET_MS,
    MINUTE_MS,
    NO_MEAN_RATIO,
    NO_PREVIOUS_SECONDS,
    PROFILE_NAMES,
    TINY_AMOUNT_MINOR,
)
from featurestore.profiles import (
    PROFILE_COLUMNS,
    Profile,
    compute_profiles,
    profile_features,
    profile_from_row,
)
from featurestore.velocity import MAX_SEEN_COUNTRIES, MAX_SEEN_DEVICES

logger = logging.getLogger(__name__)

_NEEDED = (
    "txn_id", "account_id", "amount_minor", "merchant_id", "mcc",
    "merchant_country", "device_id", "event_time",
)  # fmt: skip
LABEL_COLUMNS = ("is_fraud", "pattern")


def load_history(directory: Path) -> tuple[pl.DataFrame, pl.DataFrame | None]:
    """Read ``transactions.parquet`` and, if present, ``labels.parquet``.

    Args:
        directory: Where the simulator wrote its history.

    Returns:
        The transactions (needed columns only) and the labels or None.
    """
    transactions = pl.read_parquet(
        directory / "transactions.parquet", columns=list(_NEEDED)
    )
    labels_path = directory / "labels.parquet"
    labels = pl.read_parquet(labels_path) if labels_path.exists() else None
    return transactions, labels


def _sorted_with_keys(transactions: pl.DataFrame) -> pl.DataFrame:
    """Sort by account then time (ties in file order) and add integer keys.

    ``key`` increases strictly between accounts by more than any window, so a
    window search on it never crosses into another account.
    """
    frame = transactions.with_columns(
        event_ms=pl.col("event_time").dt.epoch("ms"),
    ).sort(["account_id", "event_ms"], maintain_order=True)
    start = pl.col("event_ms").min()
    span = pl.col("event_ms").max() - start + 2 * DAY_MS + 1
    account_rank = pl.col("account_id").rank("dense").cast(pl.Int64) - 1
    key = account_rank * span + (pl.col("event_ms") - start)
    return frame.with_columns(key=key, row=pl.int_range(pl.len(), dtype=pl.Int64))


def _window_starts(key: npt.NDArray[np.int64], length_ms: int) -> npt.NDArray[np.intp]:
    """Index of the first row inside each row's window ``(t - length, t]``."""
    return np.searchsorted(key, key - length_ms, side="right")


def _running(values: npt.NDArray[np.int64]) -> npt.NDArray[np.int64]:
    """Running totals with a leading zero: total of rows [a, b) is r[b] - r[a]."""
    return np.concatenate(([0], np.cumsum(values, dtype=np.int64)))


def _distinct_in_window(
    frame: pl.DataFrame, column: str, length_ms: int
) -> npt.NDArray[np.float64]:
    """Distinct values of ``column`` among each row's window rows.

    Row j is the latest occurrence of its value for rows j .. next(j) - 1, and
    lies inside the windows of rows whose key is below key(j) + length; it
    counts one for each row in both ranges.
    """
    key = frame["key"].to_numpy()
    rows = len(key)
    following = frame.select(
        pl.col("row").shift(-1).over("account_id", column).fill_null(rows)
    ).to_series()
    window_end = np.searchsorted(key, key + length_ms, side="left")
    stop = np.minimum(following.to_numpy(), window_end)
    changes = np.zeros(rows + 1, dtype=np.int64)
    changes[:rows] += 1
    np.add.at(changes, stop, -1)
    return np.cumsum(changes[:-1]).astype(np.float64)


def _segments(frame: pl.DataFrame) -> pl.DataFrame:
    """Number the account's runs between idle resets and find each run's start."""
    gap = pl.col("event_ms").diff().over("account_id")
    restart = gap.is_null() | (gap >= IDLE_RESET_MS)
    frame = frame.with_columns(gap_ms=gap, segment=restart.cum_sum())
    return frame.with_columns(segment_start=pl.col("row").min().over("segment"))


def _first_use(frame: pl.DataFrame, column: str, limit: int) -> pl.Series:
    """1.0 where the account would not remember this value yet, else 0.0.

    The velocity state remembers the first ``limit`` distinct values of a
    segment, so a value is new on its first use and on every use when it was
    not among the first ``limit``.
    """
    first = pl.col("row") == pl.col("row").min().over("segment", column)
    ranked = frame.select(column, "segment", first=first).with_columns(
        rank=pl.col("first").cast(pl.Int64).cum_sum().over("segment")
    )
    rank_of_value = pl.col("rank").filter("first").first().over("segment", column)
    new = pl.col("first") | (rank_of_value > limit)
    return ranked.select(new.cast(pl.Float64)).to_series()


def velocity_frame(transactions: pl.DataFrame) -> pl.DataFrame:
    """Velocity features of every transaction from its account's earlier ones.

    Args:
        transactions: History with the columns read by :func:`load_history`.

    Returns:
        The sorted transactions with one column per velocity feature.
    """
    frame = _segments(_sorted_with_keys(transactions))
    key = frame["key"].to_numpy()
    row = np.arange(len(key))
    amount = frame["amount_minor"].to_numpy().astype(np.int64)
    totals = _running(amount)
    tiny_totals = _running((amount < TINY_AMOUNT_MINOR).astype(np.int64))
    starts = {
        length: _window_starts(key, length)
        for length in (MINUTE_MS, 10 * MINUTE_MS, HOUR_MS, DAY_MS)
    }
    columns = {
        "txn_count_1m": row - starts[MINUTE_MS] + 1,
        "txn_count_10m": row - starts[10 * MINUTE_MS] + 1,
        "txn_count_1h": row - starts[HOUR_MS] + 1,
        "txn_count_24h": row - starts[DAY_MS] + 1,
        "amount_sum_1h": totals[row + 1] - totals[starts[HOUR_MS]],
        "amount_sum_24h": totals[row + 1] - totals[starts[DAY_MS]],
        "distinct_merchants_1h": _distinct_in_window(frame, "merchant_id", HOUR_MS),
        "distinct_countries_24h": _distinct_in_window(
            frame, "merchant_country", DAY_MS
        ),
        "tiny_count_10m": tiny_totals[row + 1] - tiny_totals[starts[10 * MINUTE_MS]],
        "amount_vs_mean": _mean_ratio(frame, amount, totals),
    }
    frame = frame.with_columns(
        pl.Series(name, values, dtype=pl.Float64) for name, values in columns.items()
    )
    return _finish_velocity(frame)


def _mean_ratio(
    frame: pl.DataFrame, amount: npt.NDArray[np.int64], totals: npt.NDArray[np.int64]
) -> npt.NDArray[np.float64]:
    """Amount over the mean of the segment's earlier amounts (1 with none)."""
    row = np.arange(len(amount))
    segment_start = frame["segment_start"].to_numpy()
    earlier = row - segment_start
    earlier_sum = totals[row] - totals[segment_start]
    ratio = np.full(len(amount), NO_MEAN_RATIO)
    known = earlier > 0
    # Exact integer products, then one correctly rounded division, as online.
    ratio[known] = (amount[known] * earlier[known]).astype(np.float64) / earlier_sum[
        known
    ].astype(np.float64)
    return ratio


def _finish_velocity(frame: pl.DataFrame) -> pl.DataFrame:
    """Add the per-segment features: gap, new device, new country."""
    restart = pl.col("row") == pl.col("segment_start")
    return frame.with_columns(
        seconds_since_prev=pl.when(restart)
        .then(NO_PREVIOUS_SECONDS)
        .otherwise(pl.col("gap_ms") / 1000),
        new_device=_first_use(frame, "device_id", MAX_SEEN_DEVICES),
        new_country=_first_use(frame, "merchant_country", MAX_SEEN_COUNTRIES),
    )


def daily_profiles(
    transactions: pl.DataFrame, labels: pl.DataFrame | None
) -> pl.DataFrame:
    """Profile snapshots cut at 00:00 UTC of every day the history covers.

    Args:
        transactions: History as for :func:`compute_profiles`.
        labels: Labels as for :func:`compute_profiles`, or None.

    Returns:
        Rows of account_id, ``snapshot_day`` (date) and the profile fields.
    """
    day_of = pl.col("event_time").dt.date()
    days: list[date] = (
        transactions.select(pl.date_range(day_of.min(), day_of.max(), "1d"))
        .to_series()
        .to_list()
    )
    snapshots = []
    for day in track(days, description="Daily profile snapshots"):
        as_of = datetime(day.year, day.month, day.day, tzinfo=UTC)
        profiles = compute_profiles(transactions, labels, as_of)
        snapshots.append(profiles.with_columns(snapshot_day=pl.lit(day)))
    return pl.concat(snapshots)


def _profile_columns(frame: pl.DataFrame, snapshots: pl.DataFrame) -> pl.DataFrame:
    """Join each transaction to its day's snapshot and encode the features."""
    joined = frame.with_columns(snapshot_day=pl.col("event_time").dt.date()).join(
        snapshots, on=["account_id", "snapshot_day"], how="left", maintain_order="left"
    )
    fields = joined.select(PROFILE_COLUMNS).iter_rows()
    inputs = joined.select("amount_minor", "mcc", "merchant_country").iter_rows()
    encoded = [
        profile_features(_profile_of(values), amount, mcc, country)
        for values, (amount, mcc, country) in zip(fields, inputs, strict=True)
    ]
    return pl.DataFrame(encoded, schema=list(PROFILE_NAMES), orient="row")


def _profile_of(values: tuple[Any, ...]) -> Profile | None:
    """Build a Profile from a joined row, or None when no snapshot matched."""
    if values[0] is None:
        return None
    return profile_from_row(values)


def offline_features(
    transactions: pl.DataFrame, labels: pl.DataFrame | None = None
) -> pl.DataFrame:
    """Point-in-time features of every transaction, in model order.

    Args:
        transactions: History with the columns read by :func:`load_history`
            (``event_time`` as ``Datetime("ms", "UTC")``).
        labels: The labels file's frame; when given, chargebacks are counted
            from it and its ``is_fraud`` and ``pattern`` columns are joined on.

    Returns:
        txn_id, the features in :data:`~featurestore.definitions.FEATURE_NAMES`
        order, then the label columns when labels were given; rows sorted by
        account and event time.
    """
    logger.info("computing offline features rows=%s", transactions.height)
    velocity = velocity_frame(transactions)
    profiles = _profile_columns(velocity, daily_profiles(transactions, labels))
    result = pl.concat([velocity, profiles], how="horizontal").select(
        "txn_id", *FEATURE_NAMES
    )
    if labels is None:
        return result
    label_columns = labels.select("txn_id", *LABEL_COLUMNS)
    return result.join(label_columns, on="txn_id", how="left", maintain_order="left")
