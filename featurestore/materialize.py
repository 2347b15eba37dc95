"""Materialize account profiles from a Parquet history into Redis.

Run daily (a cron job or Kubernetes CronJob) after midnight UTC, so scoring
reads the profiles the model was trained with: as of 00:00 UTC of the day.

Example:
    python -m featurestore.materialize .fraudflow/history --as-of 2026-12-01
"""

from __future__ import annotations

import logging
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Annotated

import typer
from rich.progress import Progress

from dataflows.config import Settings
from featurestore.offline import load_history
from featurestore.profiles import compute_profiles, profiles_from_frame
from featurestore.store import ProfileStore

logger = logging.getLogger(__name__)

app = typer.Typer(add_completion=False)


def _midnight(day: date | None) -> datetime:
    """00:00 UTC of ``day``, or of today when None."""
    day = day or datetime.now(UTC).date()
    return datetime(day.year, day.month, day.day, tzinfo=UTC)


def materialize(
    history: Path,
    store: ProfileStore,
    as_of: datetime,
    ttl_s: int,
    batch_size: int = 1000,
) -> int:
    """Compute profiles as of ``as_of`` and write them, showing progress.

    Args:
        history: Directory holding ``transactions.parquet`` (and optionally
            ``labels.parquet``).
        store: Where to write.
        as_of: The aware cut-off time of the profiles.
        ttl_s: Seconds until the written profiles expire.
        batch_size: Profiles per pipelined Redis round trip.

    Returns:
        The number of profiles written.
    """
    transactions, labels = load_history(history)
    profiles = profiles_from_frame(compute_profiles(transactions, labels, as_of))
    logger.info("materializing profiles=%s as_of=%s", len(profiles), as_of)

    written = 0
    with Progress() as progress:
        task = progress.add_task("Writing profiles to Redis", total=len(profiles))
        for count in store.write(profiles.items(), ttl_s, batch_size):
            written += count
            progress.advance(task, count)
    return written


@app.command()
def main(
    history: Annotated[Path, typer.Argument(help="Directory of the Parquet history.")],
    as_of: Annotated[
        datetime | None,
        typer.Option(help="Cut-off day (00:00 UTC); defaults to today."),
    ] = None,
    ttl_hours: Annotated[
        int, typer.Option(help="Profile lifetime; longer than the run interval.")
    ] = 48,
    batch_size: Annotated[int, typer.Option(help="Profiles per round trip.")] = 1000,
) -> None:
    """Write every account's profile as of a day to the Redis online store."""
    logging.basicConfig(level=logging.INFO)
    cutoff = _midnight(as_of.date() if as_of else None)
    store = ProfileStore.from_url(Settings().redis_url, timeout_s=5.0)
    try:
        written = materialize(history, store, cutoff, ttl_hours * 3600, batch_size)
    finally:
        store.close()
    typer.echo(f"wrote {written} profiles as of {cutoff.isoformat()}")


if __name__ == "__main__":
    app()
