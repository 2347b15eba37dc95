"""A picture of simulated history: hourly volume and fraud by pattern.

Uses matplotlib's object interface (no pyplot, no global backend), so it is
safe to call from library code. matplotlib comes with the ``train`` extra and
the dev tools; without it, :func:`plot_history` raises a clear error.
"""

from __future__ import annotations

from pathlib import Path

import polars as pl

from dataflows.errors import ConfigurationError
from dataflows.simulator.fraud import PATTERNS


def hourly_counts(labels: pl.DataFrame) -> pl.DataFrame:
    """Count labelled transactions per hour and pattern.

    Args:
        labels: Frame with ``event_time`` and ``pattern`` columns.

    Returns:
        One row per hour, a column per pattern (zeros where none occurred).
    """
    hourly = (
        labels.group_by(pl.col("event_time").dt.truncate("1h"), "pattern")
        .len()
        .pivot(on="pattern", index="event_time", values="len")
        .sort("event_time")
        .fill_null(0)
    )
    missing = [pl.lit(0).alias(name) for name in PATTERNS if name not in hourly.columns]
    return hourly.with_columns(missing).select("event_time", *PATTERNS)


def plot_history(labels: pl.DataFrame, path: Path) -> Path:
    """Draw hourly legit volume above hourly fraud by pattern, as a PNG.

    Args:
        labels: The labels of a history (``labels.parquet``).
        path: Where to write the PNG.

    Returns:
        ``path``.

    Raises:
        ConfigurationError: matplotlib is not installed.
    """
    try:
        from matplotlib.figure import Figure
    except ImportError as exc:
        message = "plotting needs matplotlib: install fraudflow[train]"
        raise ConfigurationError(message) from exc

    hourly = hourly_counts(labels)
    hours = hourly["event_time"].to_list()
    figure = Figure(figsize=(11, 6), layout="constrained")
    volume, fraud = figure.subplots(2, 1, sharex=True)
    volume.plot(hours, hourly["legit"].to_list(), color="tab:blue")
    volume.set(title="Legitimate transactions per hour", ylabel="transactions")
    for pattern in PATTERNS[1:]:
        fraud.plot(hours, hourly[pattern].to_list(), label=pattern)
    fraud.set(title="Fraud per hour by pattern", ylabel="transactions")
    fraud.set_xlabel("event time (UTC)")
    fraud.legend(loc="upper right")
    figure.savefig(path, dpi=110)
    return path
