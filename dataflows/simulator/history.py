"""Days of simulated transactions and their labels, written as Parquet.

The training job reads these files: ``transactions.parquet`` has one column
per :class:`~dataflows.schema.Transaction` field (``event_time`` as
``Datetime("ms", "UTC")``, ``amount_minor`` as ``Int64``) and
``labels.parquet`` has one row per transaction with its ground truth. Both are
sorted by event time and share ``txn_id``.

Example:
    >>> paths = write_history(Path("/tmp/history"), days=1, accounts=100, seed=7)
    ... # doctest: +SKIP
"""

from __future__ import annotations

import logging
from datetime import datetime
from pathlib import Path
from typing import Final

import polars as pl
from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

from dataflows.schema import SCHEMA_VERSION, Transaction
from dataflows.simulator.generator import (
    DAY_MS,
    DEFAULT_FRAUD_RATE,
    Batch,
    TransactionSimulator,
)

LOG = logging.getLogger(__name__)

EVENT_TIME: Final = pl.Datetime("ms", "UTC")
TRANSACTION_FILE: Final = "transactions.parquet"
LABEL_FILE: Final = "labels.parquet"

#: Column types of ``transactions.parquet``, in Transaction field order.
_NOT_TEXT: Final[dict[str, pl.DataType]] = {
    "amount_minor": pl.Int64(),
    "event_time": EVENT_TIME,
    "schema_version": pl.Int64(),
}
TRANSACTION_SCHEMA: Final = pl.Schema(
    (name, _NOT_TEXT.get(name, pl.String())) for name in Transaction.__struct_fields__
)
_COPIED: Final = frozenset(TRANSACTION_SCHEMA) - {"event_time", "schema_version"}
LABEL_SCHEMA: Final = pl.Schema(
    [
        ("txn_id", pl.String()),
        ("account_id", pl.String()),
        ("is_fraud", pl.Boolean()),
        ("pattern", pl.String()),
        ("event_time", EVENT_TIME),
    ]
)


def write_history(
    directory: Path,
    days: int,
    accounts: int,
    seed: int,
    start: datetime | None = None,
    fraud_rate: float = DEFAULT_FRAUD_RATE,
) -> tuple[Path, Path]:
    """Simulate ``days`` of traffic and write it as two Parquet files.

    Args:
        directory: Where to write; created if missing.
        days: Simulated days, starting at ``start``.
        accounts: Number of card holders.
        seed: Seed of the simulation; the same seed gives the same files.
        start: Start of simulated time; see :class:`TransactionSimulator`.
        fraud_rate: Expected fraction of fraudulent transactions.

    Returns:
        The paths of ``transactions.parquet`` and ``labels.parquet``.

    Raises:
        ValueError: for fewer than one day, or arguments the simulator refuses.
    """
    if days < 1:
        raise ValueError(f"days: expected at least 1, got {days!r}")
    simulator = TransactionSimulator(seed, accounts, start, fraud_rate)
    frames = _simulate(simulator, days)
    transactions = pl.concat([frame for frame, _ in frames])
    labels = pl.concat([frame for _, frame in frames])

    directory.mkdir(parents=True, exist_ok=True)
    paths = directory / TRANSACTION_FILE, directory / LABEL_FILE
    transactions.write_parquet(paths[0])
    labels.write_parquet(paths[1])
    LOG.info("wrote %s transactions over %s days to %s", len(labels), days, directory)
    return paths


def _simulate(
    simulator: TransactionSimulator, days: int
) -> list[tuple[pl.DataFrame, pl.DataFrame]]:
    """Collect the batches of ``days`` simulated days, showing progress."""
    columns = [
        TextColumn("simulating {task.fields[rows]:,} transactions"),
        BarColumn(),
        TextColumn("day {task.completed:.1f}/{task.total:.0f}"),
        TimeRemainingColumn(),
    ]
    frames = []
    with Progress(*columns) as progress:
        task = progress.add_task("history", total=days, rows=0)
        start_ms = simulator.start_ms
        end_ms = start_ms + days * DAY_MS
        rows = 0
        for batch in simulator.batches():
            if batch.event_ms[0] >= end_ms:
                break
            frames.append(_frames(batch, end_ms))
            rows += len(frames[-1][1])
            done = (batch.event_ms[-1] - start_ms) / DAY_MS
            progress.update(task, completed=min(done, days), rows=rows)
    return frames


def _frames(batch: Batch, end_ms: int) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Return the transaction and label frames of a batch, cut at ``end_ms``."""
    columns: dict[str, list] = {
        name: getattr(batch, name) for name in TRANSACTION_SCHEMA if name in _COPIED
    }
    columns["event_time"] = batch.event_ms
    columns["schema_version"] = [SCHEMA_VERSION] * len(batch)
    schema = pl.Schema(TRANSACTION_SCHEMA | {"event_time": pl.Int64})
    transactions = pl.DataFrame(columns, schema=schema).with_columns(
        pl.col("event_time").cast(EVENT_TIME)
    )
    labels = transactions.select("txn_id", "account_id", "event_time").with_columns(
        is_fraud=pl.Series(batch.is_fraud, dtype=pl.Boolean),
        pattern=pl.Series(batch.pattern, dtype=pl.String),
    )
    keep = pl.col("event_time") < pl.lit(end_ms).cast(EVENT_TIME)
    return transactions.filter(keep), labels.select(*LABEL_SCHEMA).filter(keep)
