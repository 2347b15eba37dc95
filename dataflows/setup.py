"""One-shot preparation of a deployment: topics, tables, model, feature store.

``python -m dataflows.setup`` (the compose ``setup`` job, the demo, a
Kubernetes Job) is idempotent and safe to re-run:

1. create the topics that do not exist yet;
2. apply pending database migrations;
3. train the model when ``model_dir`` holds none (the repository ships one);
4. record the model's version and card in ``model_versions``;
5. materialize account profiles into Redis from a Parquet history, as of the
   day after its last transaction (simulating a short history when none is
   given, which is what a demo needs).
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Annotated

import polars as pl
import typer
from rich.console import Console

from dataflows.config import Settings
from dataflows.migrate import apply_migrations
from dataflows.simulator import write_history
from dataflows.topics import ensure_topics
from featurestore.materialize import materialize
from featurestore.store import ProfileStore
from model.card import read_card
from model.registry import record_version

LOG = logging.getLogger(__name__)

#: Days of simulated history written when no history exists; enough for every
#: account to have a profile.
DEMO_HISTORY_DAYS = 3

#: Lifetime of materialized profiles; longer than the daily materialization.
PROFILE_TTL_S = 48 * 3600


def ensure_model(model_dir: Path, console: Console) -> None:
    """Train a model into ``model_dir`` if it holds none."""
    if (model_dir / "model.onnx").exists() and (model_dir / "model_card.json").exists():
        return
    console.print(f"no model in {model_dir}: training one (about two minutes)")
    from model.train import main as train

    train(model_dir=model_dir)


def ensure_history(state_dir: Path, accounts: int, seed: int) -> Path:
    """Return a history directory, simulating a short one if none exists."""
    trained_on = state_dir / "history" / f"d7-a{accounts}-s{seed}"
    if (trained_on / "transactions.parquet").exists():
        return trained_on
    demo = state_dir / "history" / f"d{DEMO_HISTORY_DAYS}-a{accounts}-s{seed}"
    if not (demo / "transactions.parquet").exists():
        write_history(demo, days=DEMO_HISTORY_DAYS, accounts=accounts, seed=seed)
    return demo


def profiles_as_of(history: Path) -> datetime:
    """Midnight UTC after the history's last transaction."""
    last = (
        pl.scan_parquet(history / "transactions.parquet")
        .select(pl.col("event_time").max())
        .collect()
        .item()
    )
    day = last.astimezone(UTC).date() + timedelta(days=1)
    return datetime(day.year, day.month, day.day, tzinfo=UTC)


def prepare(
    settings: Settings,
    console: Console,
    history: Path | None = None,
    accounts: int = 10_000,
    seed: int = 7,
) -> Path:
    """Make topics, tables, model and profiles ready; return the history used."""
    topics = ensure_topics(settings)
    console.print(f"topics: {topics}")
    console.print(f"migrations applied: {apply_migrations(settings.database_url)}")
    ensure_model(settings.model_dir, console)
    card = read_card(settings.model_dir / "model_card.json")
    recorded = record_version(card, settings.database_url)
    console.print(f"model {card.version} {'recorded' if recorded else 'known'}")

    history = history or ensure_history(settings.state_dir, accounts, seed)
    store = ProfileStore.from_url(settings.redis_url, timeout_s=5.0)
    try:
        written = materialize(history, store, profiles_as_of(history), PROFILE_TTL_S)
    finally:
        store.close()
    console.print(f"profiles materialized: {written}")
    return history


def main(
    history: Annotated[
        Path | None,
        typer.Option(help="Parquet history to build profiles from (else simulated)."),
    ] = None,
) -> None:
    """Prepare topics, tables, model and feature store (idempotent)."""
    logging.basicConfig(level=logging.INFO)
    prepare(Settings(), Console(), history)


if __name__ == "__main__":
    typer.run(main)
