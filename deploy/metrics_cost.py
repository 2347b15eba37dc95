"""What recording metrics costs the scoring flow, measured in one process.

``python -m deploy.metrics_cost`` fills several topics with the same
simulated backlog (identical transactions, each topic with its own id
prefix so no run finds its rows already stored), then drains them with the
real scoring flow in this process, alternating runs with metrics recorded
and runs with every recording function replaced by a no-op
(:func:`metrics_disabled`). Alternating spreads the machine's noise over
both modes; a small warm-up run first pays for imports and model loading.
It prints the median throughput of each mode and writes them to
``metrics-cost.json`` in the state directory. Rows it wrote are deleted at
the end.
"""

from __future__ import annotations

import contextlib
import json
import logging
import statistics
import time
import uuid
from collections.abc import Iterator
from datetime import datetime
from itertools import islice
from typing import Annotated, Any

import psycopg
import typer
from bytewax.testing import run_main
from confluent_kafka import Producer
from rich.console import Console
from rich.progress import Progress
from rich.table import Table

from dataflows import metrics
from dataflows.config import Settings
from dataflows.schema import encode
from dataflows.scoring import build_flow
from dataflows.setup import prepare, profiles_as_of
from dataflows.simulator import TransactionSimulator
from dataflows.topics import create_topics
from deploy.stack import LocalStack

LOG = logging.getLogger(__name__)


def _nothing(*_args: Any, **_kwargs: Any) -> None:
    """Accept anything, record nothing."""


@contextlib.contextmanager
def metrics_disabled() -> Iterator[None]:
    """Replace every recording entry point of :mod:`dataflows.metrics` by a no-op.

    The flow reads these as module attributes at call time, so patching the
    module is enough; everything is restored on exit.

    Example:
        >>> with metrics_disabled():
        ...     metrics.record_dead_letters(["malformed_json"])
    """
    patches: list[tuple[Any, str, Any]] = [
        (metrics, "record_batch", _nothing),
        (metrics, "record_dead_letters", _nothing),
        (metrics, "observe_stage", _nothing),
        (metrics, "record_consumer_lag", _nothing),
        (metrics.E2E_LATENCY, "observe_many", _nothing),
        (metrics.PsiMonitor, "observe", lambda _self, _columns: {}),
    ]
    # vars(), not getattr(): a method bound through an instance must not be
    # stored back on that instance; a name it did not hold is deleted again.
    saved = [(owner, name, vars(owner).get(name)) for owner, name, _ in patches]
    try:
        for owner, name, replacement in patches:
            setattr(owner, name, replacement)
        yield
    finally:
        for owner, name, original in saved:
            if original is None:
                delattr(owner, name)
            else:
                setattr(owner, name, original)


def produce_backlog(
    settings: Settings, topic: str, count: int, prefix: str, start: datetime
) -> None:
    """Fill ``topic`` with ``count`` simulated transactions (seed 5) from ``start``."""
    simulator = TransactionSimulator(5, 10_000, start, id_prefix=prefix)
    producer = Producer(
        {"bootstrap.servers": settings.kafka_bootstrap_servers, "linger.ms": 20}
    )
    for txn, _label in islice(simulator.stream(), count):
        producer.produce(topic, key=txn.account_id.encode(), value=encode(txn))
        producer.poll(0)
    if producer.flush(30):
        raise RuntimeError(f"backlog of {topic!r}: messages left undelivered")


def drain(settings: Settings, topic: str, count: int) -> float:
    """Score the whole backlog of ``topic``; return transactions per second."""
    bounded = settings.model_copy(update={"topic_transactions": topic, "tail": False})
    flow = build_flow(bounded)
    started = time.perf_counter()
    run_main(flow)
    return count / (time.perf_counter() - started)


def measure(
    settings: Settings, count: int, rounds: int, start: datetime, console: Console
) -> dict[str, list[float]]:
    """Alternate runs with and without metrics; return each mode's throughputs.

    ``start`` is the simulated time of the first transaction: right after the
    history the account profiles were built from.
    """
    tag = f"mc-{uuid.uuid4().hex[:8]}"
    plan = [("warm-up", count // 10)]
    plan += [(mode, count) for _ in range(rounds) for mode in ("on", "off")]
    results: dict[str, list[float]] = {"on": [], "off": []}
    try:
        with Progress(console=console) as progress:
            task = progress.add_task("draining backlogs", total=len(plan))
            for index, (mode, size) in enumerate(plan):
                topic = f"{tag}-{index}"
                create_topics(settings.kafka_bootstrap_servers, [topic], 4)
                produce_backlog(settings, topic, size, f"{topic}-", start)
                with metrics_disabled() if mode == "off" else contextlib.nullcontext():
                    tps = drain(settings, topic, size)
                results.setdefault(mode, []).append(tps)
                progress.advance(task)
    finally:
        _delete_rows(settings, tag)
    return results


def _delete_rows(settings: Settings, tag: str) -> None:
    query = "DELETE FROM scored_transactions WHERE txn_id LIKE %s"
    with psycopg.connect(settings.database_url) as conn:
        conn.execute(query, (f"{tag}-%",))


def main(
    count: Annotated[int, typer.Option(min=1000, help="Backlog per run.")] = 30_000,
    rounds: Annotated[int, typer.Option(min=1, help="Runs per mode.")] = 3,
) -> None:
    """Measure the flow's throughput with and without metrics recording."""
    logging.basicConfig(level=logging.WARNING)
    console = Console()
    base = Settings(dev_mode=True)
    stack = LocalStack(base.state_dir / "stack").up()
    settings = base.model_copy(update=stack.settings_update())
    history = prepare(settings, console)
    results = measure(settings, count, rounds, profiles_as_of(history), console)
    table = Table("metrics", "median tx/s", "runs (tx/s)")
    medians = {mode: statistics.median(results[mode]) for mode in ("on", "off")}
    for mode in ("on", "off"):
        runs = ", ".join(f"{tps:,.0f}" for tps in results[mode])
        table.add_row(mode, f"{medians[mode]:,.0f}", runs)
    console.print(table)
    cost = 1 - medians["on"] / medians["off"]
    console.print(f"metrics cost {cost:.1%} of throughput ({count:,} per run)")
    path = settings.state_dir / "metrics-cost.json"
    path.write_text(json.dumps({"count": count, **results, "cost": cost}, indent=2))


if __name__ == "__main__":
    typer.run(main)
