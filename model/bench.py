"""Measure how many rows a second the scorer handles: ``python -m model.bench``.

Rows are drawn feature by feature from the model card's training percentiles,
so the trees see realistic values without needing a history on disk. Each
batch size is timed over repeated :meth:`~model.scorer.Scorer.score` calls
(validation and NaN handling included, as the flow pays them too).

Example:
    $ python -m model.bench --batch-sizes 1,64,256
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated, Final

import numpy as np
import typer
from rich.console import Console
from rich.progress import track
from rich.table import Table

from featurestore.definitions import FEATURE_NAMES
from model.scorer import Scorer

DEFAULT_BATCH_SIZES: Final = (1, 64, 256)
#: Rows scored per batch size; more gives steadier numbers and takes longer.
DEFAULT_ROWS: Final = 200_000


def sample_rows(scorer: Scorer, count: int, seed: int = 0) -> np.ndarray:
    """Draw ``count`` rows whose columns follow the card's training percentiles."""
    rng = np.random.default_rng(seed)
    rows = np.empty((count, len(FEATURE_NAMES)), dtype=np.float32)
    for i, name in enumerate(FEATURE_NAMES):
        grid = scorer.card.reason_percentiles.get(name)
        if grid is None:
            rows[:, i] = scorer.card.defaults[name]
        else:
            rows[:, i] = rng.choice(np.asarray(grid, dtype=np.float32), count)
    return rows


def bench_scorer(
    model_dir: Path,
    batch_sizes: tuple[int, ...] = DEFAULT_BATCH_SIZES,
    rows: int = DEFAULT_ROWS,
    threads: int = 1,
) -> dict[int, float]:
    """Return rows scored per second at each batch size, on ``threads`` threads."""
    scorer = Scorer.load(model_dir, threads=threads)
    pool = sample_rows(scorer, max(batch_sizes) * 64)
    rates = {}
    for size in track(batch_sizes, description="timing batch sizes"):
        batches = [pool[i : i + size] for i in range(0, len(pool) - size + 1, size)]
        calls = max(rows // size, 1)
        scorer.score(batches[0])  # first call allocates; leave it out
        started = time.perf_counter()
        for call in range(calls):
            scorer.score(batches[call % len(batches)])
        rates[size] = calls * size / (time.perf_counter() - started)
    return rates


def main(
    model_dir: Annotated[Path, typer.Option(help="Model directory.")] = Path(
        "model/artifacts"
    ),
    batch_sizes: Annotated[
        str, typer.Option(help="Comma-separated batch sizes.")
    ] = "1,64,256",
    rows: Annotated[int, typer.Option(min=1, help="Rows per batch size.")] = (
        DEFAULT_ROWS
    ),
    threads: Annotated[int, typer.Option(min=1, help="ONNX Runtime threads.")] = 1,
) -> None:
    """Print the scorer's rows per second at each batch size."""
    sizes = tuple(int(size) for size in batch_sizes.split(","))
    rates = bench_scorer(model_dir, sizes, rows, threads)
    table = Table(title=f"ONNX scoring, {threads} thread(s)")
    table.add_column("batch", justify="right")
    table.add_column("rows/s", justify="right")
    table.add_column("us/call", justify="right")
    for size, rate in rates.items():
        table.add_row(str(size), f"{rate:,.0f}", f"{size / rate * 1e6:,.1f}")
    Console().print(table)


if __name__ == "__main__":
    typer.run(main)
