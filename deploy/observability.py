"""The live observability check: a real Prometheus scraping a real pipeline.

``python -m deploy.observability`` (``just check-observability``) proves that
every series the dashboard and the alerts read is one the running flow
exports, and that the Prometheus configuration and rules are sound:

1. start (or reuse) the local stack; prepare fresh, uniquely named topics,
   the tables, the model and the account profiles;
2. start the scoring flow with a metrics port, a Prometheus server of its own
   scraping that port with the repository's rule files, and the simulator at
   a moderate rate, adding a malformed record every few seconds so that the
   dead-letter series exist too;
3. run ``promtool check config``, ``promtool check rules`` and ``promtool
   test rules``;
4. evaluate every rule and dashboard expression on the live server with
   :mod:`deploy.prometheus.check`, failing on any that returns no series;
5. write the run's report (:mod:`deploy.report`) while Prometheus still runs;
6. stop every process it started, even on failure or Ctrl-C.

``prometheus`` and ``promtool`` come from the PATH. The pids of the processes
it started are written to ``pids.json`` in the run directory, so a test can
prove none outlives the check.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import subprocess
import time
import urllib.request
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Final

import typer
import yaml
from confluent_kafka import Producer
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

from dataflows.config import Settings
from dataflows.demo import Children, produce_malformed
from dataflows.errors import ConfigurationError
from dataflows.setup import prepare, profiles_as_of
from deploy.prometheus import check
from deploy.stack import LocalStack, free_port

LOG = logging.getLogger(__name__)

#: Scrape and rule evaluation interval of the check's Prometheus. Short, so a
#: one-minute run yields enough samples for rates and recording rules.
SCRAPE_INTERVAL_S: Final = 2

#: Seconds between two malformed records produced during the run.
MALFORMED_EVERY_S: Final = 3.0

#: Seconds Prometheus may take to answer ``/-/ready``, and the flow to serve
#: its metrics (it loads the model and connects to every service first).
READY_TIMEOUT_S: Final = 60.0

RULE_TESTS: Final = sorted(check.HERE.glob("rules/tests/*.yml"))

INSTALL_HINT: Final = (
    "install Prometheus (Debian/Ubuntu: apt-get install -y prometheus; "
    "elsewhere: the release archive from prometheus.io/download, with both "
    "binaries on PATH)"
)


@dataclass(frozen=True)
class RunOptions:
    """How long and how hard the check drives the pipeline.

    Attributes:
        seconds: How long the simulator produces.
        rate: Simulated transactions per second.
        wait_s: How long queries without series are retried.
        report: Whether to write the run's report.
        start: Simulated time of the first transaction: just after the
            history the profiles were built from, so accounts pay at their
            usual pace (on the wall clock, 10,000 accounts at 300 tx/s would
            each pay every half minute and look like card testing).
    """

    seconds: float = 60.0
    rate: float = 300.0
    wait_s: float = 30.0
    report: bool = True
    start: datetime | None = None


def require_tool(name: str) -> str:
    """Return the path of ``name`` on PATH.

    Raises:
        ConfigurationError: The tool is not installed, with an install hint.
    """
    path = shutil.which(name)
    if path is None:
        raise ConfigurationError(f"expected {name!r} on PATH, got none: {INSTALL_HINT}")
    return path


def prometheus_config(metrics_port: int, rule_files: list[Path]) -> dict:
    """Return a Prometheus configuration scraping one flow process.

    The target carries ``process_id="0"``, as the repository's local
    configuration derives it, because per-process panels group by it.
    """
    interval = f"{SCRAPE_INTERVAL_S}s"
    target = {"targets": [f"127.0.0.1:{metrics_port}"], "labels": {"process_id": "0"}}
    return {
        "global": {"scrape_interval": interval, "evaluation_interval": interval},
        "rule_files": [str(path) for path in rule_files],
        "scrape_configs": [{"job_name": "fraudflow", "static_configs": [target]}],
    }


class PrometheusServer:
    """A Prometheus server with its own configuration, data and port.

    Args:
        binary: Path of the ``prometheus`` executable.
        run_dir: Where the configuration, data directory and log go.
        config: The configuration to serve (see :func:`prometheus_config`).
    """

    def __init__(self, binary: str, run_dir: Path, config: dict):
        self.binary = binary
        self.config_path = run_dir / "prometheus.yml"
        self.data_dir = run_dir / "prometheus-data"
        self.log_path = run_dir / "prometheus.log"
        self.config = config
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen[bytes] | None = None

    def write_config(self) -> Path:
        """Write the configuration file; return its path."""
        self.config_path.parent.mkdir(parents=True, exist_ok=True)
        self.config_path.write_text(yaml.safe_dump(self.config, sort_keys=False))
        return self.config_path

    def start(self) -> str:
        """Start on a fresh data directory; return the base URL once ready."""
        self.write_config()
        shutil.rmtree(self.data_dir, ignore_errors=True)
        argv = [
            self.binary,
            f"--config.file={self.config_path}",
            f"--storage.tsdb.path={self.data_dir}",
            f"--web.listen-address=127.0.0.1:{self.port}",
        ]
        with open(self.log_path, "wb") as log:
            self.proc = subprocess.Popen(argv, stdout=log, stderr=log)
        self._wait_ready()
        LOG.info("prometheus ready url=%s pid=%s", self.url, self.proc.pid)
        return self.url

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + READY_TIMEOUT_S
        ready_url = f"{self.url}/-/ready"
        while time.monotonic() < deadline:
            if self.proc is not None and self.proc.poll() is not None:
                break
            try:
                with urllib.request.urlopen(ready_url, timeout=1):  # noqa: S310
                    return
            except OSError:
                time.sleep(0.2)
        tail = self.log_path.read_text(errors="replace")[-2000:]
        self.stop()
        raise RuntimeError(f"prometheus at {self.url} never became ready:\n{tail}")

    def stop(self, timeout_s: float = 15.0) -> None:
        """Stop the server (SIGTERM, then SIGKILL after ``timeout_s``)."""
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.terminate()
        try:
            self.proc.wait(timeout_s)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def promtool_steps(promtool: str, config_path: Path) -> list[tuple[str, list[str]]]:
    """Return the promtool runs of the check: config, rules, rule tests."""
    rules = [str(path) for path in check.RULE_FILES]
    tests = [str(path) for path in RULE_TESTS]
    return [
        ("promtool check config", [promtool, "check", "config", str(config_path)]),
        ("promtool check rules", [promtool, "check", "rules", *rules]),
        ("promtool test rules", [promtool, "test", "rules", *tests]),
    ]


def run_promtool(steps: list[tuple[str, list[str]]], console: Console) -> bool:
    """Run each step; print its output when it fails; return whether all passed."""
    passed = True
    for name, argv in steps:
        result = subprocess.run(argv, capture_output=True, text=True, check=False)
        if result.returncode == 0:
            console.print(f"[green]ok[/green] {name}")
            continue
        passed = False
        console.print(f"[red]failed[/red] {name}\n{result.stdout}{result.stderr}")
    return passed


def run_settings(base: Settings, run_id: str) -> Settings:
    """Return settings with topics of this run only, so runs never mix."""
    return base.model_copy(
        update={
            "topic_transactions": f"{run_id}-transactions",
            "topic_labels": f"{run_id}-labels",
            "topic_alerts": f"{run_id}-alerts",
            "topic_dlq": f"{run_id}-dlq",
        }
    )


def child_env(settings: Settings, metrics_port: int) -> dict[str, str]:
    """Environment of the flow and simulator processes of one run."""
    return {
        **os.environ,
        "KAFKA_BOOTSTRAP_SERVERS": settings.kafka_bootstrap_servers,
        "DATABASE_URL": settings.database_url,
        "REDIS_URL": settings.redis_url,
        "FRAUDFLOW_TOPIC_TRANSACTIONS": settings.topic_transactions,
        "FRAUDFLOW_TOPIC_LABELS": settings.topic_labels,
        "FRAUDFLOW_TOPIC_ALERTS": settings.topic_alerts,
        "FRAUDFLOW_TOPIC_DLQ": settings.topic_dlq,
        "FRAUDFLOW_DEV_MODE": "1",
        "FRAUDFLOW_METRICS_PORT": str(metrics_port),
        "FRAUDFLOW_HEALTH_PORT": "0",
        "FRAUDFLOW_LOG_LEVEL": "WARNING",
    }


def drive(
    children: Children, settings: Settings, seconds: float, console: Console
) -> None:
    """Show progress while the simulator runs; add malformed records."""
    producer = Producer({"bootstrap.servers": settings.kafka_bootstrap_servers})
    columns = [TextColumn("{task.description}"), BarColumn(), TimeRemainingColumn()]
    started, sent = time.monotonic(), 0
    with Progress(*columns, console=console) as progress:
        task = progress.add_task("pipeline running", total=seconds)
        while children.procs["simulator"].poll() is None:
            children.check()
            elapsed = time.monotonic() - started
            if elapsed >= sent * MALFORMED_EVERY_S:
                produce_malformed(producer, settings.topic_transactions, sent)
                sent += 1
            progress.update(task, completed=min(elapsed, seconds))
            time.sleep(0.5)
    children.check()
    producer.flush(10)


def wait_for_metrics(children: Children, metrics_port: int) -> None:
    """Wait until the flow serves metrics, so it is ready before load starts."""
    url = f"http://127.0.0.1:{metrics_port}/metrics"
    deadline = time.monotonic() + READY_TIMEOUT_S
    while time.monotonic() < deadline:
        children.check()
        try:
            with urllib.request.urlopen(url, timeout=1):
                return
        except OSError:
            time.sleep(0.5)
    raise RuntimeError(f"the flow did not serve {url} within {READY_TIMEOUT_S} s")


def record_pids(run_dir: Path, children: Children, server: PrometheusServer) -> None:
    """Write the pids this run started to ``pids.json``."""
    pids = {name: proc.pid for name, proc in children.procs.items()}
    if server.proc is not None:
        pids["prometheus"] = server.proc.pid
    (run_dir / "pids.json").write_text(json.dumps(pids, indent=2))


def verify(
    server: PrometheusServer, promtool: str, wait_s: float, console: Console
) -> bool:
    """Run promtool and the live expression check; return whether both passed."""
    tools_ok = run_promtool(promtool_steps(promtool, server.config_path), console)
    with console.status(f"evaluating rule and dashboard expressions on {server.url}"):
        outcomes = check.check(server.url, wait_s=wait_s, strict=True)
    check.report(outcomes, console)
    return tools_ok and all(outcome.state == "ok" for outcome in outcomes)


def write_report(url: str, started: datetime, run_dir: Path, console: Console) -> None:
    """Write the run's report from the live server (needs matplotlib)."""
    from deploy.report import from_prometheus, write_page

    series = from_prometheus(url, started, datetime.now(UTC))
    page = write_page(series, run_dir / "report", title="Observability check run")
    console.print(f"report written to {page}")


def run_check(
    settings: Settings,
    run_dir: Path,
    options: RunOptions,
    console: Console,
) -> bool:
    """Run the pipeline under Prometheus and check it; stop everything after."""
    prometheus, promtool = require_tool("prometheus"), require_tool("promtool")
    metrics_port = free_port()
    config = prometheus_config(metrics_port, list(check.RULE_FILES))
    server = PrometheusServer(prometheus, run_dir, config)
    children = Children(child_env(settings, metrics_port), run_dir / "logs")
    started = datetime.now(UTC)
    simulator = ["-m", "dataflows.simulator", "--seed", "11"]
    simulator += ["--rate", str(options.rate), "--duration", str(options.seconds)]
    if options.start is not None:
        simulator += ["--clock", "simulated", "--start", options.start.isoformat()]
    try:
        children.start("flow", ["-m", "bytewax.run", "dataflows.scoring:flow"])
        server.start()
        wait_for_metrics(children, metrics_port)
        children.start("simulator", simulator)
        record_pids(run_dir, children, server)
        drive(children, settings, options.seconds, console)
        passed = verify(server, promtool, options.wait_s, console)
        if options.report:
            write_report(server.url, started, run_dir, console)
        return passed
    finally:
        children.stop_all()
        server.stop()


def main(
    seconds: Annotated[
        float, typer.Option(min=20, help="How long the simulator produces.")
    ] = 60.0,
    rate: Annotated[
        float, typer.Option(min=1, help="Simulated transactions per second.")
    ] = 300.0,
    wait_s: Annotated[
        float, typer.Option(help="Retry queries without series for this long.")
    ] = 30.0,
    report: Annotated[bool, typer.Option(help="Also write the run's report.")] = True,
) -> None:
    """Check Prometheus config, rules and every query against a live pipeline."""
    logging.basicConfig(level=logging.WARNING)
    console = Console()
    base = Settings()
    run_id = f"obs-{uuid.uuid4().hex[:8]}"
    run_dir = base.state_dir / "observability"
    try:
        require_tool("prometheus"), require_tool("promtool")
    except ConfigurationError as exc:
        console.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(2) from exc
    stack = LocalStack(base.state_dir / "stack").up()
    settings = run_settings(base.model_copy(update=stack.settings_update()), run_id)
    history = prepare(settings, console)
    options = RunOptions(seconds, rate, wait_s, report, profiles_as_of(history))
    if not run_check(settings, run_dir, options, console):
        raise typer.Exit(1)
    console.print("[green]observability check passed")


if __name__ == "__main__":
    typer.run(main)
