r"""Command line of the simulator: produce to Kafka, or write Parquet history.

Examples:
    Five thousand transactions a second for a minute, tripling for two
    seconds every ten::

        python -m dataflows.simulator --rate 5000 --duration 60 \
            --burst-every 10 --burst-factor 3 --burst-seconds 2

    As fast as possible, one million transactions::

        python -m dataflows.simulator --rate 0 --count 1000000

    A week of history for training::

        python -m dataflows.simulator --history data/history --days 7
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import polars as pl
import typer
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from dataflows.config import Settings
from dataflows.errors import FraudflowError
from dataflows.simulator.fraud import PATTERNS
from dataflows.simulator.generator import (
    DEFAULT_FRAUD_RATE,
    DEFAULT_START,
    TransactionSimulator,
    wall_clock_ms,
)
from dataflows.simulator.history import write_history
from dataflows.simulator.plot import plot_history
from dataflows.simulator.producer import Summary, TransactionProducer, run
from dataflows.simulator.rate import RateLimiter
from dataflows.topics import create_topics

LOG = logging.getLogger(__name__)

PLOT_FILE = "history.png"

app = typer.Typer(add_completion=False, help=__doc__.splitlines()[0])
console = Console(stderr=True)


class Clock(StrEnum):
    """Which time a produced transaction carries."""

    live = "live"
    simulated = "simulated"


@app.command()
def main(
    rate: Annotated[
        float, typer.Option(min=0, help="Transactions per second; 0 = unthrottled.")
    ] = 1000.0,
    duration: Annotated[
        float | None, typer.Option(min=0, help="Stop after this many seconds.")
    ] = None,
    count: Annotated[
        int | None, typer.Option(min=1, help="Stop after this many transactions.")
    ] = None,
    burst_every: Annotated[
        float, typer.Option(min=0, help="Seconds between bursts; 0 = none.")
    ] = 0.0,
    burst_factor: Annotated[
        float, typer.Option(min=0.01, help="Rate multiplier during a burst.")
    ] = 5.0,
    burst_seconds: Annotated[
        float, typer.Option(min=0.001, help="Length of each burst in seconds.")
    ] = 1.0,
    accounts: Annotated[int, typer.Option(min=1, help="Card holders.")] = 10_000,
    seed: Annotated[int, typer.Option(help="Seed of the simulation.")] = 7,
    fraud_rate: Annotated[
        float, typer.Option(min=0, max=0.49, help="Fraction of fraudulent traffic.")
    ] = DEFAULT_FRAUD_RATE,
    clock: Annotated[
        Clock,
        typer.Option(
            help="live: stamp each transaction with the wall clock when sent; "
            "simulated: keep simulated event times (from --start)."
        ),
    ] = Clock.live,
    start: Annotated[
        datetime | None,
        typer.Option(help="Start of simulated time (UTC unless an offset is given)."),
    ] = None,
    bootstrap_servers: Annotated[
        str | None,
        typer.Option(
            help="Kafka bootstrap servers (default: $KAFKA_BOOTSTRAP_SERVERS)."
        ),
    ] = None,
    history: Annotated[
        Path | None, typer.Option(help="Write Parquet history here instead of Kafka.")
    ] = None,
    days: Annotated[int, typer.Option(min=1, help="Days of history.")] = 7,
    plot: Annotated[
        bool, typer.Option(help="With --history, also draw history.png.")
    ] = True,
) -> None:
    """Produce simulated card transactions and their labels."""
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s %(message)s")
    simulated_start = _utc(start) if start else DEFAULT_START
    try:
        if history is not None:
            paths = write_history(
                history, days, accounts, seed, simulated_start, fraud_rate
            )
            console.print(f"wrote {paths[0]} and {paths[1]}")
            if plot:
                picture = plot_history(pl.read_parquet(paths[1]), history / PLOT_FILE)
                console.print(f"drew {picture}")
            return
        limiter = RateLimiter(rate, burst_every, burst_factor, burst_seconds)
        summary = _produce(
            Settings(),
            bootstrap_servers,
            TransactionSimulator(
                seed, accounts, simulated_start, fraud_rate, _id_prefix(seed, clock)
            ),
            limiter,
            count,
            duration,
            clock,
        )
    except (FraudflowError, ValueError) as exc:
        console.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(2) from exc
    _print_summary(summary)
    if summary.failed:
        raise typer.Exit(1)


def _utc(moment: datetime) -> datetime:
    """Read a naive command-line time as UTC."""
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _id_prefix(seed: int, clock: Clock) -> str | None:
    """Give live runs their own id prefix: ids must not repeat across runs."""
    if clock is Clock.simulated:
        return None
    return f"s{seed}-{wall_clock_ms():x}-"


def _produce(
    settings: Settings,
    bootstrap_servers: str | None,
    simulator: TransactionSimulator,
    limiter: RateLimiter,
    count: int | None,
    duration: float | None,
    clock: Clock,
) -> Summary:
    """Create the topics if needed, then produce with a live progress bar."""
    servers = bootstrap_servers or settings.kafka_bootstrap_servers
    topics = [settings.topic_transactions, settings.topic_labels]
    create_topics(servers, topics, settings.partitions)
    columns = [
        TextColumn("{task.fields[sent]:>12,} tx"),
        BarColumn(),
        TextColumn("{task.fields[rate]:>9,.0f} tx/s"),
        TimeElapsedColumn(),
    ]
    total = count or duration
    with (
        Progress(*columns, console=console) as progress,
        TransactionProducer(servers, topics[0], topics[1]) as producer,
    ):
        task = progress.add_task("produce", total=total, sent=0, rate=0.0)

        def show(summary: Summary) -> None:
            done = summary.sent if count else summary.seconds
            progress.update(task, completed=done, sent=summary.sent, rate=summary.rate)

        return run(
            simulator, producer, limiter, count, duration, clock is Clock.live, show
        )


def _print_summary(summary: Summary) -> None:
    """Print counts, speed and fraud by pattern as a table."""
    table = Table(title="simulator run", show_header=False)
    table.add_row("transactions", f"{summary.sent:,}")
    table.add_row("seconds", f"{summary.seconds:.2f}")
    table.add_row("tx/s", f"{summary.rate:,.0f}")
    table.add_row("failed deliveries", f"{summary.failed:,}")
    for pattern in PATTERNS:
        share = summary.by_pattern[pattern] / summary.sent if summary.sent else 0.0
        table.add_row(pattern, f"{summary.by_pattern[pattern]:,} ({share:.2%})")
    Console().print(table)
