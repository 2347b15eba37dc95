"""The full flow under load: backlog throughput, fixed-rate latency, state size."""

from __future__ import annotations

import gc
import signal
import subprocess
import time
import uuid
from datetime import timedelta
from pathlib import Path

import psutil
from rich.progress import Progress

from bench.flow import (
    SNAPSHOT_INTERVAL_S,
    CpuMeter,
    Run,
    Sampler,
    alert_latencies,
    row_latencies,
    service_pids,
    start_flow,
    wait_rows,
    write_span,
)
from bench.load import PACED_LINGER_MS, produce_backlog, read_messages_from
from bench.probes import producer_count, start_producer
from bench.stats import Result, summarize
from dataflows.velocity_step import VelocityLogic
from deploy.stack import Endpoints
from featurestore.velocity import AccountVelocity

#: Transactions sent to a starting flow before the measured load.
PRIMERS = 20


def new_run() -> Run:
    """A run with a fresh eight-character prefix (the placeholder's length)."""
    return Run(uuid.uuid4().hex[:8])


def throughput(
    stack: Endpoints,
    messages: list,
    count: int,
    processes: int,
    log_dir: Path,
    profile: Path | None = None,
) -> Result:
    """Drain a backlog of ``count`` transactions with the whole flow.

    The rate is rows over the span between the first and the last write, so
    process start-up (imports, model load, migrations) is not counted.
    """
    run = new_run()
    run.create(stack.kafka_bootstrap_servers)
    produce_backlog(
        stack.kafka_bootstrap_servers, run.transactions, messages, run.prefix, count
    )
    flows = start_flow(stack, run, processes, False, log_dir, profile)
    sampler = Sampler([flow.pid for flow in flows])
    sampler.start()
    sampler.measuring.set()
    meter = CpuMeter(_processes(stack, flows))
    meter.start()
    _wait_with_progress(flows, stack.database_url, run.prefix, count)
    cores = meter.stop()
    usage = sampler.stop()
    stored, seconds = write_span(stack.database_url, run.prefix)
    if stored < count:
        raise RuntimeError(f"expected {count} stored rows, got {stored}")
    name = f"throughput-{processes}proc"
    return Result(
        name, tps=stored / seconds, count=stored, cpu_pct=usage.cpu_pct,
        rss_mb=usage.rss_mb, extra={"cores": cores},
    )  # fmt: skip


def _processes(stack: Endpoints, flows: list[subprocess.Popen]) -> dict[str, int]:
    """The flow processes and the stack's services, by name, for a CPU meter."""
    named = {f"flow-{index}": flow.pid for index, flow in enumerate(flows)}
    return {**named, **service_pids(stack)}


def _wait_with_progress(flows, database_url: str, prefix: str, count: int) -> None:
    with Progress(transient=True) as progress:
        task = progress.add_task("draining", total=count)
        while any(flow.poll() is None for flow in flows):
            progress.update(task, completed=wait_rows(database_url, prefix, 0, 0))
            time.sleep(1.0)
    for flow in flows:
        if flow.returncode:
            raise RuntimeError(f"flow exited with code {flow.returncode}")


def latency(
    stack: Endpoints, messages_path: Path, rate: float, seconds: float,
    warmup_s: float, log_dir: Path, profile: Path | None = None,
    linger_ms: float = PACED_LINGER_MS,
    snapshot_interval_s: int = SNAPSHOT_INTERVAL_S,
) -> tuple[Result, Result]:  # fmt: skip
    """Offer ``rate`` transactions a second to a tailing flow; measure latency.

    Returns the stored-row result and the alert-delivery result. Only
    transactions produced after the warm-up count. The paced producer
    lingers ``linger_ms`` (see :mod:`bench.load`); the flow's epochs last
    ``snapshot_interval_s``.
    """
    run = new_run()
    run.create(stack.kafka_bootstrap_servers)
    [flow] = start_flow(stack, run, 1, True, log_dir, profile, snapshot_interval_s)
    sampler = Sampler([flow.pid])
    sampler.start()
    _prime(stack, run, messages_path)
    producer = start_producer(
        stack.kafka_bootstrap_servers, run, messages_path, rate, seconds + warmup_s,
        linger_ms,
    )  # fmt: skip
    since_ms = int(time.time() * 1000 + warmup_s * 1000)
    meter = CpuMeter({**_processes(stack, [flow]), "producer": producer.pid})
    meter.start()
    _measure_after(sampler, warmup_s, seconds)
    cores = meter.stop()
    sent = producer_count(producer)
    stored = wait_rows(stack.database_url, run.prefix, sent, timeout_s=60)
    usage = sampler.stop()
    flow.send_signal(signal.SIGINT)  # py-spy, when profiling, then writes
    flow.wait(60)

    name = f"latency-{int(rate)}tps"
    rows = row_latencies(stack.database_url, run.prefix, since_ms)
    alerts = alert_latencies(stack, run, since_ms)
    common = {"offered_tps": rate, "cpu_pct": usage.cpu_pct, "rss_mb": usage.rss_mb}
    row_result = summarize(name, rows, tps=len(rows) / seconds, **common)
    row_result.extra = {
        "sent": sent, "stored": stored, "cores": cores,
        "producer_linger_ms": linger_ms, "snapshot_interval_s": snapshot_interval_s,
    }  # fmt: skip
    return row_result, summarize(f"alerts-{int(rate)}tps", alerts, offered_tps=rate)


def _prime(stack: Endpoints, run: Run, messages_path: Path) -> None:
    """Wait until the flow stores a few transactions: it has started.

    They carry a prefix of their own (``z`` is not a hex digit), so they
    neither count in the run's results nor clash with its ids.
    """
    with messages_path.open("rb") as lines:
        first = [line for _, line in zip(range(PRIMERS), lines, strict=False)]
    messages = read_messages_from(first)
    primer = run.prefix[:-1] + "z"
    produce_backlog(
        stack.kafka_bootstrap_servers, run.transactions, messages, primer, PRIMERS
    )
    if wait_rows(stack.database_url, primer, PRIMERS, timeout_s=120) < PRIMERS:
        raise RuntimeError("expected the flow to start within 120 s")


def _measure_after(sampler: Sampler, warmup_s: float, seconds: float) -> None:
    with Progress(transient=True) as progress:
        task = progress.add_task("offered load", total=warmup_s + seconds)
        started = time.monotonic()
        while (elapsed := time.monotonic() - started) < warmup_s + seconds:
            if elapsed >= warmup_s:
                sampler.measuring.set()
            progress.update(task, completed=elapsed)
            time.sleep(0.25)


def state_size(accounts: int, txns_per_account: int = 3) -> Result:
    """Resident memory per account of the flow's velocity state objects.

    Builds what Bytewax holds per key (a :class:`VelocityLogic` around an
    :class:`AccountVelocity`) for ``accounts`` accounts, each fed a few
    transactions a minute apart at a new merchant each time, from one
    device (the usual card holder).
    """
    gc.collect()
    before = psutil.Process().memory_info().rss
    logics = {}
    with Progress(transient=True) as progress:
        task = progress.add_task("state", total=accounts)
        for number in range(accounts):
            account_id = f"acct-{number:07d}"
            account = AccountVelocity()
            for txn in range(txns_per_account):
                event_ms = 1_790_000_000_000 + txn * 60_000
                merchant = f"m-US{(number + txn) % 5000:05d}"
                device = f"{number:064x}"
                account.update(event_ms, 1000 + txn, merchant, "US", device)
            logics[account_id] = VelocityLogic(account, timedelta(hours=25))
            if number % 10_000 == 0:
                progress.update(task, completed=number)
    gc.collect()
    grown = psutil.Process().memory_info().rss - before
    per_account = grown / accounts
    extra = {"bytes_per_account": round(per_account), "accounts": accounts}
    return Result("state", rss_mb=grown / 2**20, count=accounts, extra=extra)
