"""Adversarial transaction histories for feature tests.

Unlike the simulator, which aims at realism, these histories aim at the edges
of the feature definitions: equal event times, bursts inside a minute, events
exactly one window apart, idle gaps of exactly and more than 24 hours, tiny
amounts, and accounts using more devices and countries than the velocity
state remembers.
"""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np
import polars as pl

from featurestore.definitions import DAY_MS, HOUR_MS, MINUTE_MS

START = datetime(2026, 11, 1, tzinfo=UTC)
_START_MS = int(START.timestamp() * 1000)
_GAPS_MS = np.array(
    [0, 1, 999, MINUTE_MS, 10 * MINUTE_MS, HOUR_MS, DAY_MS, DAY_MS + 1, 3 * DAY_MS]
)


def _gaps(rng: np.random.Generator, size: int) -> np.ndarray:
    """Gaps between an account's events: mostly random, some on boundaries."""
    random_gaps = rng.exponential(2 * HOUR_MS, size).astype(np.int64)
    edges = rng.choice(_GAPS_MS, size)
    return np.where(rng.random(size) < 0.3, edges, random_gaps)


def _account_rows(rng: np.random.Generator, account: int, size: int) -> dict:
    """Columns of one account's events, in event-time order."""
    wide = account % 7 == 0  # some accounts roam over many devices/countries
    devices = 40 if wide else 3
    countries = ["US", "FR", "DE", "GB", "JP", "BR", "IN", "CA", "MX", "ES", "IT"]
    countries += ["NL", "SE", "PL", "CH", "AT", "BE", "IE", "PT", "NO"]
    country_pool = countries if wide else countries[:2]
    amounts = np.where(
        rng.random(size) < 0.2,
        rng.integers(1, 200, size),
        rng.integers(200, 200_000, size),
    )
    return {
        "account_id": [f"acct-{account:06d}"] * size,
        "event_ms": _START_MS + np.cumsum(_gaps(rng, size)),
        "amount_minor": amounts,
        "merchant_id": [f"m-{m}" for m in rng.integers(0, 12, size)],
        "mcc": [f"{m:04d}" for m in rng.choice([5411, 5812, 5999, 7995], size)],
        "merchant_country": rng.choice(country_pool, size).tolist(),
        "device_id": [f"dev-{account}-{d}" for d in rng.integers(0, devices, size)],
    }


def synthetic_history(
    accounts: int, per_account: int, seed: int = 7
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Build a history and labels shaped like the simulator's Parquet files.

    Returns:
        Transactions in global event-time order and their labels.
    """
    rng = np.random.default_rng(seed)
    sizes = rng.integers(1, 2 * per_account, accounts)
    parts = [
        pl.DataFrame(_account_rows(rng, account, int(size)))
        for account, size in enumerate(sizes)
    ]
    frame = pl.concat(parts).sort("event_ms", maintain_order=True)
    frame = frame.with_columns(
        txn_id=pl.format("t-{}", pl.int_range(pl.len())),
        event_time=pl.from_epoch("event_ms", time_unit="ms").dt.replace_time_zone(
            "UTC"
        ),
    ).drop("event_ms")
    labels = frame.select(
        "txn_id",
        "account_id",
        is_fraud=pl.Series(rng.random(frame.height) < 0.05),
        pattern=pl.lit("none"),
        event_time="event_time",
    )
    return frame, labels
