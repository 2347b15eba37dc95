"""Command line of the benchmarks: ``python -m bench [--quick]``.

Starts (or reuses) the local stack, draws the synthetic transactions once,
runs each scenario in turn and writes ``bench-results/latest.{json,md,png}``.
"""

from __future__ import annotations

import logging
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

import psycopg
import typer
from rich.console import Console

from bench import probes, report, scenarios
from bench import profile as bench_profile
from bench.flow import SNAPSHOT_INTERVAL_S, service_pids
from bench.load import PACED_LINGER_MS, generate, produce_backlog, read_messages
from bench.stats import Result
from dataflows.config import Settings
from dataflows.migrate import apply_migrations
from deploy.stack import Endpoints, LocalStack

LOG = logging.getLogger(__name__)
console = Console()
app = typer.Typer(add_completion=False)


@app.callback(invoke_without_command=True)
def default(context: typer.Context) -> None:
    """Benchmarks of the scoring flow; with no command, ``run`` with defaults."""
    if context.invoked_subcommand is None:
        run()


FULL_LOADS = (1_000, 5_000, 10_000, 20_000)

#: Simulated card holders in the generated traffic unless told otherwise.
DEFAULT_ACCOUNTS = 10_000


@app.command()
def run(
    quick: Annotated[
        bool, typer.Option(help="Smaller backlogs, shorter runs.")
    ] = False,
    only: Annotated[
        str, typer.Option(help="Comma-separated scenario families to run.")
    ] = "ceiling,floor,naive,throughput,latency,state",
    out: Annotated[Path, typer.Option(help="Where results go.")] = Path(
        "bench-results"
    ),
    stack_dir: Annotated[Path, typer.Option(help="The bench's own stack.")] = Path(
        ".fraudflow/bench-stack"
    ),
    loads: Annotated[
        str, typer.Option(help="Comma-separated offered loads (tx/s) to measure.")
    ] = ",".join(map(str, FULL_LOADS)),
    producer_linger_ms: Annotated[
        float,
        typer.Option(
            help="linger.ms of the paced producer; shorter makes the local "
            "broker store more batches and slow down within a scenario."
        ),
    ] = PACED_LINGER_MS,
    accounts: Annotated[
        int,
        typer.Option(
            help="Simulated card holders; more of them means more accounts "
            "touched, and snapshotted, per epoch."
        ),
    ] = DEFAULT_ACCOUNTS,
    snapshot_interval_s: Annotated[
        int,
        typer.Option(help="The latency scenarios' epoch length in whole seconds."),
    ] = SNAPSHOT_INTERVAL_S,
) -> None:
    """Run the benchmark scenarios and write their results.

    The bench uses a stack of its own and empties its ``scored_transactions``
    first, so every run starts from the same table size.
    """
    logging.basicConfig(level=logging.WARNING)
    os.environ.setdefault("FRAUDFLOW_DEV_MODE", "1")
    families = set(only.split(","))
    offered = tuple(int(rate) for rate in loads.split(","))
    backlog = 100_000 if quick else 500_000
    seconds, warmup = (10.0, 3.0) if quick else (30.0, 5.0)

    stack = LocalStack(stack_dir).up()
    apply_migrations(stack.database_url)
    _empty_rows(stack.database_url)
    (out / "logs").mkdir(parents=True, exist_ok=True)
    messages_path = out / "messages.jsonl"
    pool = max(backlog, int(max(offered) * (seconds + warmup)) + 1)
    generate(messages_path, pool, accounts=accounts)
    messages = read_messages(messages_path)

    results: list[Result] = []
    context = Context(
        LocalStack(stack_dir), messages, messages_path, out, offered,
        producer_linger_ms, accounts, snapshot_interval_s,
    )  # fmt: skip
    for family in ("ceiling", "floor", "naive", "throughput", "latency", "state"):
        if family in families:
            console.rule(family)
            found = RUNNERS[family](context, backlog, seconds, warmup, quick)
            results.extend(found)
            for result in found:
                console.print(result.as_dict())
            report.write(results, out)
    messages_path.unlink()
    for recovery in (out / "logs").glob("recovery-*"):
        shutil.rmtree(recovery)
    console.print(report.markdown(results))


@app.command()
def profile(
    out: Annotated[Path, typer.Argument(help="py-spy raw output file.")],
    rate: Annotated[
        float, typer.Option(help="Offered tx/s; 0 drains a backlog instead.")
    ] = 5_000,
    seconds: Annotated[float, typer.Option(help="Seconds of load.")] = 20.0,
    backlog: Annotated[
        int, typer.Option(help="Backlog size when rate is 0.")
    ] = 100_000,
    stack_dir: Annotated[Path, typer.Option(help="The bench's own stack.")] = Path(
        ".fraudflow/bench-stack"
    ),
    producer_linger_ms: Annotated[
        float, typer.Option(help="linger.ms of the paced producer.")
    ] = PACED_LINGER_MS,
) -> None:
    """Run one scenario with the flow under py-spy; print the stage breakdown."""
    logging.basicConfig(level=logging.WARNING)
    stack = LocalStack(stack_dir).up()
    apply_migrations(stack.database_url)
    work = out.parent
    messages_path = work / "profile-messages.jsonl"
    generate(
        messages_path, max(backlog, int(rate * (seconds + 3)) + 1), DEFAULT_ACCOUNTS
    )
    if rate:
        found = scenarios.latency(
            stack, messages_path, rate, seconds, 3.0, work, out, producer_linger_ms
        )
        console.print(found[0].as_dict())
    else:
        messages = read_messages(messages_path)
        found = scenarios.throughput(stack, messages, backlog, 1, work, out)
        console.print(found.as_dict())
    messages_path.unlink()
    bench_profile.main(out)


def _empty_rows(database_url: str) -> None:
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute("TRUNCATE scored_transactions")


@dataclass
class Context:
    """What every scenario runner needs: the stack, the messages, the loads."""

    local: LocalStack
    messages: list
    messages_path: Path
    out: Path
    loads: tuple[int, ...]
    linger_ms: float
    accounts: int = DEFAULT_ACCOUNTS
    snapshot_interval_s: int = SNAPSHOT_INTERVAL_S

    def fresh(self) -> Endpoints:
        """Restart the local broker so the next scenario finds it empty.

        The in-memory broker slows down as the data it holds grows (its
        fetches cost more CPU), so scenarios run after others would see a
        slower broker than the first. A broker given by
        ``KAFKA_BOOTSTRAP_SERVERS`` is left alone.
        """
        return self.local.restart("kafka")

    def settings(self, stack: Endpoints) -> Settings:
        """Flow settings pointed at the stack."""
        return Settings(**stack.settings_update(), dev_mode=True)


def _ceiling(context, backlog, seconds, warmup, quick) -> list[Result]:
    stack = context.fresh()
    run = scenarios.new_run()
    run.create(stack.kafka_bootstrap_servers)
    produce_backlog(
        stack.kafka_bootstrap_servers,
        run.transactions,
        context.messages,
        run.prefix,
        backlog,
    )
    return [probes.ceiling(stack.kafka_bootstrap_servers, run.transactions, backlog)]


def _floor(context, backlog, seconds, warmup, quick) -> list[Result]:
    results = []
    for rate in context.loads:
        stack = context.fresh()
        bootstrap = stack.kafka_bootstrap_servers
        broker = {k: v for k, v in service_pids(stack).items() if k == "broker"}
        run = scenarios.new_run()
        path = context.messages_path
        found = probes.floor(
            bootstrap, run, path, rate, seconds, warmup, broker, context.linger_ms
        )
        results.append(found)
    return results


def _naive(context, backlog, seconds, warmup, quick) -> list[Result]:
    stack = context.fresh()
    run = scenarios.new_run()
    run.create(stack.kafka_bootstrap_servers)
    count = 20_000 if quick else 60_000
    produce_backlog(
        stack.kafka_bootstrap_servers,
        run.transactions,
        context.messages,
        run.prefix,
        count,
    )
    return [probes.naive(context.settings(stack), run.transactions, seconds)]


def _throughput(context, backlog, seconds, warmup, quick) -> list[Result]:
    logs = context.out / "logs"
    return [
        scenarios.throughput(context.fresh(), context.messages, backlog, count, logs)
        for count in (1, 2)
    ]


def _latency(context, backlog, seconds, warmup, quick) -> list[Result]:
    results: list[Result] = []
    for rate in context.loads:
        stack = context.fresh()
        path, logs = context.messages_path, context.out / "logs"
        rows, alerts = scenarios.latency(
            stack, path, rate, seconds, warmup, logs,
            linger_ms=context.linger_ms,
            snapshot_interval_s=context.snapshot_interval_s,
        )  # fmt: skip
        rows.extra = {**(rows.extra or {}), "accounts": context.accounts}
        results += [rows, alerts]
    return results


def _state(context, backlog, seconds, warmup, quick) -> list[Result]:
    return [scenarios.state_size(200_000 if quick else 1_000_000)]


RUNNERS = {
    "ceiling": _ceiling,
    "floor": _floor,
    "naive": _naive,
    "throughput": _throughput,
    "latency": _latency,
    "state": _state,
}

if __name__ == "__main__":
    app()
