"""Observability against the real stack: consumer lag, and the live check.

The live check runs as its own process, as ``just check-observability`` does,
and is then held to what it promises: every query has series, promtool
passes, and none of the processes it started is left running.

The lag test produces without idempotence so that every message is its own
record batch on the broker; the lag the source publishes is then compared
with the true count of unread messages.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
from confluent_kafka import OFFSET_BEGINNING, Producer
from prometheus_client import REGISTRY

from dataflows.config import Settings
from dataflows.source import LOW_LATENCY_CONSUMER, WorkerConsumer, _PartitionReader
from deploy.stack import pid_alive

REPO = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.integration

MESSAGES = 300


def produce(settings: Settings, topic: str, count: int) -> None:
    producer = Producer(
        {
            "bootstrap.servers": settings.kafka_bootstrap_servers,
            "enable.idempotence": False,
            "linger.ms": 0,
        }
    )
    for offset in range(count):
        producer.produce(topic, key=b"acct", value=b"%d" % offset, partition=0)
    assert producer.flush(10) == 0


def published_lag(topic: str) -> float | None:
    labels = {"topic": topic, "partition": "0"}
    return REGISTRY.get_sample_value("fraudflow_consumer_lag_messages", labels)


def open_reader(settings: Settings, topic: str) -> _PartitionReader:
    config = {
        **LOW_LATENCY_CONSUMER,
        "bootstrap.servers": settings.kafka_bootstrap_servers,
        "enable.partition.eof": True,
    }
    consumer = WorkerConsumer(config, batch_size=50)
    return _PartitionReader(consumer, topic, 0, OFFSET_BEGINNING, lag_interval_s=0.0)


def drain(reader: _PartitionReader) -> int:
    """Read until the end of the partition; return how many messages came."""
    taken = 0
    try:
        while True:
            taken += len(reader.next_batch())
    except StopIteration:
        return taken


def read_until_lag_is_known(reader: _PartitionReader, topic: str) -> int:
    taken = 0
    deadline = time.monotonic() + 20
    while published_lag(topic) is None and time.monotonic() < deadline:
        taken += len(reader.next_batch())
    return taken


def test_lag_counts_unread_messages_and_falls_to_zero_when_drained(settings, topic):
    produce(settings, topic, MESSAGES)
    reader = open_reader(settings, topic)
    try:
        taken = read_until_lag_is_known(reader, topic)
        assert published_lag(topic) == MESSAGES - taken
        assert MESSAGES - taken > 0, "the first batches should leave messages"
        taken += drain(reader)
    finally:
        reader.close()
    assert taken == MESSAGES
    assert published_lag(topic) == 0


@pytest.mark.slow
@pytest.mark.skipif(
    shutil.which("prometheus") is None or shutil.which("promtool") is None,
    reason="the live check needs prometheus and promtool on PATH "
    "(Debian: apt-get install -y prometheus)",
)
def test_the_live_check_finds_series_for_every_query_and_leaves_no_process(stack):
    state_dir = Path(os.environ.get("FRAUDFLOW_STATE_DIR", REPO / ".fraudflow"))
    command = [sys.executable, "-m", "deploy.observability", "--seconds", "30"]
    env = {**os.environ, "FRAUDFLOW_STATE_DIR": str(state_dir), "COLUMNS": "200"}
    result = subprocess.run(
        command, cwd=REPO, env=env, capture_output=True, text=True, timeout=170
    )

    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-4000:]
    assert re.search(r"\d+ queries: \d+ ok, 0 quiet, 0 empty", output), output
    assert output.count("[green]ok") + output.count("ok promtool") >= 3
    run_dir = state_dir / "observability"
    pids = json.loads((run_dir / "pids.json").read_text())
    assert set(pids) == {"flow", "simulator", "prometheus"}
    assert [name for name, pid in pids.items() if pid_alive(pid)] == []
    assert (run_dir / "report" / "report.png").stat().st_size > 10_000
