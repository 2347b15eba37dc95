"""The demo: the whole pipeline on the local stack, with a live summary.

``python -m dataflows.demo`` (``just demo``) starts the local stack, prepares
topics, tables, the model and the feature store, then runs the transaction
simulator at a steady rate (plus a trickle of malformed records) and the
scoring flow with recovery on, and shows throughput, end-to-end latency,
alerts, dead letters and the commonest reasons while it runs. Ctrl-C stops
everything cleanly. With ``DEMO_SECONDS=N`` it stops by itself after N seconds,
waits until every produced transaction has its row, prints the final summary
and writes it to ``.fraudflow/demo-summary.json``.

On the local stack the demo starts from a clean slate each time (topics
recreated, table emptied, recovery reset); against external services it
refuses to run, since it would have to delete data there.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import datetime
from pathlib import Path

import psycopg
import typer
from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient
from prometheus_client.parser import text_string_to_metric_families
from rich.console import Console
from rich.live import Live
from rich.table import Table

from dataflows.config import Settings
from dataflows.setup import prepare, profiles_as_of
from dataflows.topics import ensure_topics, topic_names
from deploy.stack import EXTERNAL_ENV, Endpoints, LocalStack, free_port

LOG = logging.getLogger(__name__)
console = Console()

#: Seconds to wait, after the simulator stops, for the last rows to be written.
DRAIN_TIMEOUT_S = 60.0

#: Consecutive one-second reads without progress that mean the flow drained.
DRAIN_QUIET_READS = 3

#: Seconds the flow may take from start until it is fetching from the topic.
START_TIMEOUT_S = 60.0

#: A gauge the flow publishes once a fetch response came for its partitions.
CONSUMING_METRIC = "fraudflow_consumer_lag_messages"

#: Seed of the simulated traffic; its transaction ids start with TXN_PREFIX.
SEED = 7
TXN_PREFIX = f"s{SEED}-"

#: One malformed record is produced per this many seconds, to show the DLQ.
MALFORMED_EVERY_S = 2.0


@dataclass
class Summary:
    """What the demo reports, live and at the end."""

    scored: int = 0
    alerts: int = 0
    dead_letters: int = 0
    p50_ms: float = 0.0
    p99_ms: float = 0.0
    tps: float = 0.0


class MetricsReader:
    """Live figures from the flow's own Prometheus endpoint.

    Latency percentiles come from the end-to-end histogram's bucket counts
    gained since the previous read, so they describe the last few seconds
    (to the resolution of the buckets); the final summary is exact, from
    PostgreSQL.

    Args:
        url: The flow's ``/metrics`` URL.
    """

    def __init__(self, url: str):
        self.url = url
        self.previous: tuple[float, float, dict[float, float]] | None = None
        self.latest = Summary()

    def read(self) -> Summary:
        """Scrape once; return the totals and the rates since the last scrape."""
        samples = self._scrape()
        scored = samples.get(("fraudflow_transactions_total", "scored"), 0.0)
        buckets = {
            float(le): count
            for (name, le), count in samples.items()
            if name == "fraudflow_e2e_latency_seconds_bucket"
        }
        now = time.monotonic()
        summary = Summary(
            scored=int(scored),
            alerts=int(samples.get(("fraudflow_transactions_total", "alerted"), 0)),
            dead_letters=int(
                samples.get(("fraudflow_transactions_total", "dead_lettered"), 0)
            ),
        )
        if self.previous is not None:
            then, scored_then, buckets_then = self.previous
            summary.tps = round((scored - scored_then) / max(now - then, 1e-3), 1)
            gained = {le: n - buckets_then.get(le, 0.0) for le, n in buckets.items()}
            summary.p50_ms = _bucket_quantile(gained, 0.5)
            summary.p99_ms = _bucket_quantile(gained, 0.99)
        self.previous = (now, scored, buckets)
        self.latest = summary
        return summary

    def consuming(self) -> bool:
        """Whether the flow reports consumer lag: it is fetching from the topic."""
        return any(name == CONSUMING_METRIC for name, _ in self._scrape())

    def _scrape(self) -> dict[tuple[str, str], float]:
        try:
            with urllib.request.urlopen(self.url, timeout=2) as response:  # noqa: S310
                text = response.read().decode()
        except OSError:
            return {}
        samples = {}
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                label = sample.labels.get("outcome") or sample.labels.get("le", "")
                samples[(sample.name, label)] = sample.value
        return samples


def _bucket_quantile(cumulative: dict[float, float], quantile: float) -> float:
    """Upper bound (ms) of the histogram bucket holding ``quantile``."""
    total = cumulative.get(float("inf"), 0.0)
    if total <= 0:
        return 0.0
    for upper in sorted(cumulative):
        if cumulative[upper] >= quantile * total:
            return round(upper * 1000, 1) if upper != float("inf") else float("inf")
    return 0.0


def final_summary(settings: Settings, live: Summary) -> Summary:
    """Exact figures of this demo's rows, from PostgreSQL."""
    query = """
        SELECT count(*),
               count(*) FILTER (WHERE decision <> 'allow'),
               coalesce(percentile_cont(0.5) WITHIN GROUP (ORDER BY latency_ms), 0),
               coalesce(percentile_cont(0.99) WITHIN GROUP (ORDER BY latency_ms), 0),
               extract(epoch FROM max(written_at) - min(written_at))
        FROM scored_transactions WHERE txn_id LIKE %s
    """
    with psycopg.connect(settings.database_url) as conn:
        row = conn.execute(query, (f"{TXN_PREFIX}%",)).fetchone()
    count, flagged, p50, p99, span = row or (0, 0, 0, 0, 0)
    return Summary(
        scored=int(count),
        alerts=int(flagged),
        dead_letters=live.dead_letters,
        p50_ms=round(float(p50), 2),
        p99_ms=round(float(p99), 2),
        tps=round(count / max(float(span or 0), 1.0), 1),
    )


def top_reasons(settings: Settings, limit: int = 5) -> list[tuple[str, int]]:
    """Return the commonest reason codes of flagged transactions."""
    query = """
        SELECT reason, count(*) FROM scored_transactions, unnest(reasons) AS reason
        WHERE txn_id LIKE %s GROUP BY reason ORDER BY count(*) DESC LIMIT %s
    """
    with psycopg.connect(settings.database_url) as conn:
        found = conn.execute(query, (f"{TXN_PREFIX}%", limit)).fetchall()
    return [(str(reason), int(count)) for reason, count in found]


def render(summary: Summary, reasons: list[tuple[str, int]], elapsed: float) -> Table:
    """Lay out the live summary."""
    table = Table(title=f"fraudflow demo, {elapsed:.0f} s", show_header=False)
    table.add_row("scored", f"{summary.scored:,}")
    table.add_row("throughput", f"{summary.tps:,.0f} tx/s")
    table.add_row(
        "latency p50 / p99", f"{summary.p50_ms:.1f} / {summary.p99_ms:.1f} ms"
    )
    table.add_row("alerts", f"{summary.alerts:,}")
    table.add_row("dead letters", f"{summary.dead_letters:,}")
    for reason, count in reasons:
        table.add_row(f"  {reason}", f"{count:,}")
    return table


def reset(settings: Settings, recovery_dir: Path) -> None:
    """Give the demo a clean slate on the local stack."""
    admin = AdminClient({"bootstrap.servers": settings.kafka_bootstrap_servers})
    existing = admin.list_topics(timeout=10).topics
    doomed = [name for name in topic_names(settings) if name in existing]
    if doomed:
        for future in admin.delete_topics(doomed, operation_timeout=10).values():
            future.result()
    ensure_topics(settings)
    with psycopg.connect(settings.database_url) as conn:
        query = "DELETE FROM scored_transactions WHERE txn_id LIKE %s"
        conn.execute(query, (f"{TXN_PREFIX}%",))
    shutil.rmtree(recovery_dir, ignore_errors=True)
    recovery_dir.mkdir(parents=True)
    subprocess.run(
        [sys.executable, "-m", "bytewax.recovery", str(recovery_dir), "1"],
        check=True,
        capture_output=True,
    )


class Children:
    """The simulator and flow processes, stopped together."""

    def __init__(self, env: dict[str, str], logs: Path):
        self.env = env
        self.logs = logs
        self.procs: dict[str, subprocess.Popen[bytes]] = {}

    def start(self, name: str, argv: list[str]) -> None:
        """Start a child with its output in ``logs/NAME.log``."""
        self.logs.mkdir(parents=True, exist_ok=True)
        with open(self.logs / f"{name}.log", "wb") as log:
            self.procs[name] = subprocess.Popen(
                [sys.executable, *argv], env=self.env, stdout=log, stderr=log
            )

    def check(self) -> None:
        """Raise if a child exited with an error."""
        for name, proc in self.procs.items():
            if proc.poll() not in (None, 0):
                tail = (self.logs / f"{name}.log").read_text()[-2000:]
                raise RuntimeError(f"{name} exited with {proc.returncode}:\n{tail}")

    def stop(self, name: str, timeout: float = 15.0) -> None:
        """Terminate a child, then kill it if it does not exit in time.

        SIGTERM, not SIGINT: a Bytewax worker waiting for input does not act
        on SIGINT. Stopping the flow abruptly is safe: it resumes from its
        last snapshot, and its writes are idempotent.
        """
        proc = self.procs.get(name)
        if proc is None or proc.poll() is not None:
            return
        proc.send_signal(signal.SIGTERM if name == "flow" else signal.SIGINT)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()

    def stop_all(self) -> None:
        """Stop every child, simulator first."""
        for name in ("simulator", *self.procs):
            self.stop(name)


def produce_malformed(producer: Producer, topic: str, sequence: int) -> None:
    """Produce one record of a rotating kind of bad input."""
    bad = [
        b"{not json",
        b'{"txn_id": 7}',
        b'{"txn_id":"x","account_id":"acct-bad","amount_minor":-5}',
        b"\xff\xfe binary garbage",
    ]
    producer.produce(topic, key=b"acct-bad", value=bad[sequence % len(bad)])
    producer.poll(0)


def run(
    seconds: float | None,
    rate: int,
    settings: Settings,
    stack: Endpoints,
    start: datetime,
) -> Summary:
    """Run the demo until ``seconds`` pass or Ctrl-C; return the final summary."""
    recovery_dir = settings.state_dir / "recovery"
    reset(settings, recovery_dir)
    port = free_port()
    env = {
        **os.environ,
        **stack.env(),
        "FRAUDFLOW_DEV_MODE": "1",
        "FRAUDFLOW_METRICS_PORT": str(port),
    }
    children = Children(env, settings.state_dir / "logs")
    flow = ["-m", "bytewax.run", "dataflows.scoring:flow", "-r", str(recovery_dir)]
    children.start("flow", [*flow, "-s", "10", "-b", "60"])
    reader = MetricsReader(f"http://127.0.0.1:{port}/metrics")
    # Simulated event times: at 2,000 tx/s, 10,000 accounts on the wall clock
    # would each pay every 5 seconds, which no real card holder does.
    simulator = [
        "-m", "dataflows.simulator", "--rate", str(rate), "--seed", str(SEED),
        "--clock", "simulated", "--start", start.isoformat(),
    ]  # fmt: skip
    if seconds:
        simulator += ["--duration", str(seconds)]
    try:
        wait_until_consuming(reader, children.check)
        children.start("simulator", simulator)
        watch(settings, children, reader, seconds)
        if seconds:
            drain(reader, children)
    except KeyboardInterrupt:
        console.print("stopping…")
    finally:
        children.stop_all()
    # The last scrape, also after Ctrl-C, counts the dead letters.
    return final_summary(settings, reader.latest)


def wait_until_consuming(
    reader: MetricsReader,
    check_children: Callable[[], None],
    timeout_s: float = START_TIMEOUT_S,
    poll_s: float = 0.2,
) -> None:
    """Block until the flow is fetching from the topic.

    The simulator starts only then, so the first transactions do not queue
    behind the flow's start-up (imports, model load, joining the partitions)
    and the latency reported is the pipeline's, not the start-up's.
    ``check_children`` (:meth:`Children.check`) raises if the flow exited.

    Raises:
        RuntimeError: The flow exited, or was not consuming within
            ``timeout_s``.
    """
    started = time.monotonic()
    with console.status("waiting for the flow to start consuming"):
        while not reader.consuming():
            check_children()
            waited = time.monotonic() - started
            if waited > timeout_s:
                raise RuntimeError(f"the flow was not consuming after {waited:.0f} s")
            time.sleep(poll_s)


def watch(
    settings: Settings,
    children: Children,
    reader: MetricsReader,
    seconds: float | None,
) -> Summary:
    """Refresh the live summary until the simulator finishes (or Ctrl-C)."""
    producer = Producer({"bootstrap.servers": settings.kafka_bootstrap_servers})
    started = time.monotonic()
    sequence = 0
    reasons: list[tuple[str, int]] = []
    summary = Summary()
    with Live(console=console, refresh_per_second=2) as live:
        while not (seconds and children.procs["simulator"].poll() is not None):
            elapsed = time.monotonic() - started
            children.check()
            if elapsed > sequence * MALFORMED_EVERY_S:
                produce_malformed(producer, settings.topic_transactions, sequence)
                if sequence % 5 == 0:
                    reasons = top_reasons(settings)
                sequence += 1
            summary = reader.read()
            live.update(render(summary, reasons, elapsed))
            time.sleep(1.0)
    producer.flush(10)
    return summary


def drain(reader: MetricsReader, children: Children) -> Summary:
    """Wait until the flow has scored everything produced (it goes quiet)."""
    deadline = time.monotonic() + DRAIN_TIMEOUT_S
    last = reader.read()
    quiet = 0
    while time.monotonic() < deadline and quiet < DRAIN_QUIET_READS:
        time.sleep(1.0)
        children.check()
        current = reader.read()
        seen = (current.scored, current.dead_letters)
        quiet = quiet + 1 if seen == (last.scored, last.dead_letters) else 0
        last = current
    if quiet < DRAIN_QUIET_READS:
        console.print("[yellow]the flow was still scoring when the timeout came")
    return last


def main(
    rate: int = typer.Option(2000, help="Offered load in transactions per second."),
) -> None:
    """Run the demo (``DEMO_SECONDS`` bounds its length)."""
    logging.basicConfig(level=logging.WARNING)
    seconds = (
        float(os.environ["DEMO_SECONDS"]) if "DEMO_SECONDS" in os.environ else None
    )
    external = [name for name in EXTERNAL_ENV.values() if os.environ.get(name)]
    if external:
        console.print(f"the demo resets its topics and tables; unset {external}")
        raise typer.Exit(2)
    base = Settings()
    stack = LocalStack(base.state_dir / "stack").up()
    settings = base.model_copy(update=stack.settings_update())
    history = prepare(settings, console)
    started = time.monotonic()
    summary = run(seconds, rate, settings, stack, profiles_as_of(history))
    elapsed = time.monotonic() - started
    console.print(render(summary, top_reasons(settings), elapsed))
    path = settings.state_dir / "demo-summary.json"
    path.write_text(json.dumps(asdict(summary), indent=2))
    console.print(f"summary written to {path}")


if __name__ == "__main__":
    typer.run(main)
