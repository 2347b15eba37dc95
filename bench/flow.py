"""Run the scoring flow as its own processes and read back what it stored.

Each run gets fresh topics (named after its id prefix), so the flow starts at
the beginning of an empty or freshly filled topic, and every row it writes
carries the prefix in its ``txn_id``: the results are read back from
PostgreSQL by that prefix. A sampler thread follows the flow processes' CPU
and resident memory with psutil.
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import psutil
import psycopg
from confluent_kafka import Consumer, TopicPartition

from dataflows.topics import create_topics
from deploy.stack import Endpoints, free_port

LOG = logging.getLogger(__name__)

PARTITIONS = 4

#: Epoch and backup intervals of the flows run here, as deployed.
SNAPSHOT_INTERVAL_S = 10
BACKUP_INTERVAL_S = 60


@dataclass
class Run:
    """One benchmark run's topics and id prefix."""

    prefix: str

    @property
    def transactions(self) -> str:
        """The input topic."""
        return f"bench-txn-{self.prefix}"

    @property
    def alerts(self) -> str:
        """The alert topic."""
        return f"bench-alerts-{self.prefix}"

    @property
    def dlq(self) -> str:
        """The dead-letter topic."""
        return f"bench-dlq-{self.prefix}"

    def create(self, bootstrap: str) -> None:
        """Create the three topics with the flow's partition count."""
        topics = [self.transactions, self.alerts, self.dlq]
        create_topics(bootstrap, topics, PARTITIONS)


@dataclass
class Usage:
    """CPU and peak resident memory of the flow processes while they ran."""

    cpu_pct: float = 0.0
    rss_mb: float = 0.0
    samples: list[tuple[float, float]] = field(default_factory=list)


def flow_env(stack: Endpoints, run: Run, tail: bool) -> dict[str, str]:
    """Environment of one flow process pointed at the stack and the run."""
    return {
        **os.environ,
        **stack.env(),
        "FRAUDFLOW_TOPIC_TRANSACTIONS": run.transactions,
        "FRAUDFLOW_TOPIC_ALERTS": run.alerts,
        "FRAUDFLOW_TOPIC_DLQ": run.dlq,
        "FRAUDFLOW_TAIL": "true" if tail else "false",
        "FRAUDFLOW_DEV_MODE": "1",
        "FRAUDFLOW_HEALTH_PORT": "0",
        "FRAUDFLOW_METRICS_PORT": "0",
        "FRAUDFLOW_LOG_LEVEL": "WARNING",
    }


def start_flow(
    stack: Endpoints,
    run: Run,
    processes: int,
    tail: bool,
    log_dir: Path,
    profile: Path | None = None,
    snapshot_interval_s: int = SNAPSHOT_INTERVAL_S,
) -> list[subprocess.Popen]:
    """Start the flow with ``bytewax.run``, one OS process per Bytewax process.

    Recovery is on, as deployed (``deploy/k8s``: 10 s epochs, a backup every
    60 s), with a fresh recovery store per run, so the snapshots are part of
    the work measured. With ``profile``, the first process runs under
    ``py-spy record -f raw --idle`` writing there (its CPU and memory are
    then py-spy's).
    """
    recovery = log_dir / f"recovery-{run.prefix}"
    recovery.mkdir(parents=True)
    init = [sys.executable, "-m", "bytewax.recovery", str(recovery), str(processes)]
    subprocess.run(init, check=True, capture_output=True)
    env = {
        **flow_env(stack, run, tail),
        "BYTEWAX_RECOVERY_DIRECTORY": str(recovery),
        "BYTEWAX_SNAPSHOT_INTERVAL": str(snapshot_interval_s),
        "BYTEWAX_RECOVERY_BACKUP_INTERVAL": str(BACKUP_INTERVAL_S),
    }
    command = [sys.executable, "-m", "bytewax.run", "dataflows.scoring:flow"]
    spy = [str(Path(sys.executable).with_name("py-spy")), "record", "-f", "raw"]
    spy += ["--idle", "-r", "250", "-o", str(profile), "--"]
    if processes > 1:
        addresses = ";".join(f"127.0.0.1:{free_port()}" for _ in range(processes))
    started = []
    for index in range(processes):
        cluster = ["-i", str(index), "-a", addresses] if processes > 1 else []
        log = (log_dir / f"flow-{run.prefix}-{index}.log").open("wb")
        wrapper = spy if profile and index == 0 else []
        started.append(
            subprocess.Popen(
                wrapper + command + cluster,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        )
    return started


class Sampler(threading.Thread):
    """Samples the CPU and RSS of some processes every ``every_s`` seconds."""

    def __init__(self, pids: list[int], every_s: float = 0.5):
        super().__init__(daemon=True)
        self.processes = [psutil.Process(pid) for pid in pids]
        self.every_s = every_s
        self.usage = Usage()
        self.stopped = threading.Event()
        self.measuring = threading.Event()

    def run(self) -> None:
        """Sample until stopped; CPU only counts while ``measuring`` is set."""
        for process in self.processes:
            process.cpu_percent(None)
        while not self.stopped.wait(self.every_s):
            cpu, rss = 0.0, 0.0
            try:
                for process in self.processes:
                    cpu += process.cpu_percent(None)
                    rss += process.memory_info().rss / 2**20
            except psutil.NoSuchProcess:
                return
            self.usage.rss_mb = max(self.usage.rss_mb, rss)
            if self.measuring.is_set():
                self.usage.samples.append((cpu, rss))

    def stop(self) -> Usage:
        """Stop sampling and return the mean CPU and the peak RSS."""
        self.stopped.set()
        self.join()
        cpus = [cpu for cpu, _rss in self.usage.samples]
        self.usage.cpu_pct = sum(cpus) / len(cpus) if cpus else 0.0
        return self.usage


def cpu_seconds(pid: int) -> float:
    """CPU seconds used so far by a process and its children, live or ended.

    PostgreSQL serves each connection from a child process, so the server's
    work is the postmaster's children; ended children count once reaped. Not
    for the bench's own process: the services and flows it starts are its
    children.
    """
    try:
        process = psutil.Process(pid)
        times = process.cpu_times()
        total = times.user + times.system + times.children_user + times.children_system
        for child in process.children(recursive=True):
            try:
                child_times = child.cpu_times()
            except psutil.NoSuchProcess:
                continue
            total += child_times.user + child_times.system
    except psutil.NoSuchProcess:
        return 0.0
    return total


class CpuMeter(threading.Thread):
    """Cores used by named processes over a span: CPU seconds over wall seconds.

    Readings are taken every ``every_s`` seconds, so a process that ends
    before :meth:`stop` (a flow that drained its backlog) keeps the CPU it
    used up to its last reading.

    Example:
        >>> meter = CpuMeter({"flow": pid, **service_pids(stack)})  # doctest: +SKIP
        >>> meter.start(); ...; meter.stop()  # doctest: +SKIP
        {'flow': 0.82, 'broker': 0.71, 'postgres': 0.35, 'redis': 0.01}
    """

    def __init__(self, pids: dict[str, int], every_s: float = 0.5):
        super().__init__(daemon=True)
        self.pids = pids
        self.every_s = every_s
        self._first = {name: cpu_seconds(pid) for name, pid in pids.items()}
        self._last = dict(self._first)
        self._since = time.monotonic()
        self._halt = threading.Event()

    def run(self) -> None:
        """Read every process's CPU seconds until stopped."""
        while not self._halt.wait(self.every_s):
            self._read()

    def _read(self) -> None:
        for name, pid in self.pids.items():
            # A process that has ended reads 0: keep its last reading.
            self._last[name] = max(self._last[name], cpu_seconds(pid))

    def stop(self) -> dict[str, float]:
        """Cores each process used since the meter was made (1.0 = a busy core)."""
        self._halt.set()
        self.join()
        self._read()
        wall = time.monotonic() - self._since
        return {
            name: round((self._last[name] - self._first[name]) / wall, 2)
            for name in self.pids
        }


def service_pids(stack: Endpoints) -> dict[str, int]:
    """Process ids of the stack's own broker, database and Redis (not external)."""
    names = {"kafka": "broker", "postgres": "postgres", "redis": "redis"}
    return {
        names[name]: state.pid
        for name, state in stack.services.items()
        if not state.external and state.pid
    }


def wait_rows(database_url: str, prefix: str, expected: int, timeout_s: float) -> int:
    """Wait until ``expected`` rows with the prefix are stored; return the count."""
    deadline = time.monotonic() + timeout_s
    count = 0
    while time.monotonic() < deadline:
        count = count_rows(database_url, prefix)
        if count >= expected:
            break
        time.sleep(0.5)
    return count


def count_rows(database_url: str, prefix: str) -> int:
    """Rows stored for the run."""
    with psycopg.connect(database_url) as conn:
        query = "SELECT count(*) FROM scored_transactions WHERE txn_id LIKE %s"
        return conn.execute(query, (f"{prefix}%",)).fetchone()[0]


def write_span(database_url: str, prefix: str) -> tuple[int, float]:
    """Rows of the run and the seconds between its first and last write."""
    query = (
        "SELECT count(*), extract(epoch FROM max(written_at) - min(written_at)) "
        "FROM scored_transactions WHERE txn_id LIKE %s"
    )
    with psycopg.connect(database_url) as conn:
        count, seconds = conn.execute(query, (f"{prefix}%",)).fetchone()
    return count, float(seconds or 0.0)


def row_latencies(database_url: str, prefix: str, since_ms: int) -> list[float]:
    """``latency_ms`` of the run's rows produced at or after ``since_ms``."""
    query = (
        "SELECT latency_ms FROM scored_transactions "
        "WHERE txn_id LIKE %s AND kafka_timestamp_ms >= %s"
    )
    with psycopg.connect(database_url) as conn:
        rows = conn.execute(query, (f"{prefix}%", since_ms)).fetchall()
    return [latency for (latency,) in rows]


def alert_latencies(
    stack: Endpoints, run: Run, since_ms: int, timeout_s: float = 10.0
) -> list[float]:
    """Alert message time minus its transaction's Kafka time, per alert.

    The alert's timestamp is set when the sink hands it to the producer,
    which then waits for the broker's acknowledgement, so this is the time to
    alert delivery within a few milliseconds.
    """
    sent = _alert_times(stack.kafka_bootstrap_servers, run.alerts, timeout_s)
    query = (
        "SELECT txn_id, kafka_timestamp_ms FROM scored_transactions "
        "WHERE txn_id LIKE %s AND kafka_timestamp_ms >= %s AND decision <> 'allow'"
    )
    with psycopg.connect(stack.database_url) as conn:
        rows = conn.execute(query, (f"{run.prefix}%", since_ms)).fetchall()
    return [sent[txn] - ts for txn, ts in rows if txn in sent]


def _alert_times(bootstrap: str, topic: str, timeout_s: float) -> dict[str, int]:
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": "bench-unused",
            "enable.auto.commit": False,
            "enable.partition.eof": True,
        }
    )
    consumer.assign([TopicPartition(topic, p, 0) for p in range(PARTITIONS)])
    times: dict[str, int] = {}
    ended: set[int] = set()
    deadline = time.monotonic() + timeout_s
    while len(ended) < PARTITIONS and time.monotonic() < deadline:
        for message in consumer.consume(1000, 0.2):
            if message.error():
                ended.add(message.partition())
                continue
            txn_id = _txn_id(message.value())
            times[txn_id] = message.timestamp()[1]
    consumer.close()
    return times


def _txn_id(value: bytes) -> str:
    start = value.index(b'"txn_id":"') + len(b'"txn_id":"')
    return value[start : value.index(b'"', start)].decode()
