import os
import shutil
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import orjson
import psycopg
import pytest
from bytewax.errors import BytewaxRuntimeError
from bytewax.testing import TestingSink, run_main

from dataflows.errors import DatabaseUnavailable
from dataflows.migrate import apply_migrations
from dataflows.records import alert_id
from dataflows.scoring import build_flow
from dataflows.topics import create_topics
from deploy.stack import LocalStack, free_port
from model.scorer import Scorer
from tests.pii import find_pii, find_pii_in
from tests.streams import produce_raw, produce_simulated, read_topic

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]

MALFORMED = [
    b"{not json",
    b'{"txn_id": 7}',
    # A card number and an email inside garbage must not reach the DLQ raw.
    b'{"pan": "4111111111111111", "email": "victim@example.com", '
    b'"ip": "198.51.100.23"}',
    None,
]


@pytest.fixture
def flow_settings(settings, new_topic):
    apply_migrations(settings.database_url)
    return settings.model_copy(
        update={
            "topic_transactions": new_topic("txns"),
            "topic_alerts": new_topic("alerts"),
            "topic_dlq": new_topic("dlq"),
            "tail": False,
            "dev_mode": True,
        }
    )


def stored_rows(settings, prefix):
    query = """
        SELECT txn_id, decision, score, features, degraded, row_to_json(t)::text
        FROM scored_transactions t WHERE txn_id LIKE %s
    """
    with psycopg.connect(settings.database_url) as conn:
        return conn.execute(query, (f"{prefix}%",)).fetchall()


def test_every_transaction_is_stored_once_and_every_flagged_one_alerted(flow_settings):
    s = flow_settings
    prefix, produced = produce_simulated(
        s.kafka_bootstrap_servers, s.topic_transactions, 3000
    )
    produce_raw(s.kafka_bootstrap_servers, s.topic_transactions, MALFORMED)

    run_main(build_flow(s))

    rows = stored_rows(s, prefix)
    assert sorted(r[0] for r in rows) == sorted(t.txn_id for t in produced)
    flagged = {r[0] for r in rows if r[1] != "allow"}
    assert flagged, "a few percent of simulated traffic is fraud"

    alerts = read_topic(s.kafka_bootstrap_servers, s.topic_alerts)
    bodies = [orjson.loads(m.value()) for m in alerts]
    assert {b["txn_id"] for b in bodies} == flagged
    assert len(bodies) == len(flagged)
    version = Scorer.load(s.model_dir).version
    for message, body in zip(alerts, bodies, strict=True):
        assert body["alert_id"] == alert_id(body["txn_id"], version)
        assert message.key().decode() == body["account_id"]

    letters = [
        orjson.loads(m.value())
        for m in read_topic(s.kafka_bootstrap_servers, s.topic_dlq)
    ]
    assert len(letters) == len(MALFORMED)
    assert {letter["reason"] for letter in letters} >= {"malformed_json", "empty"}
    assert all(letter["topic"] == s.topic_transactions for letter in letters)

    # Numbers (amounts, epoch milliseconds) are not scanned: a 13-digit
    # timestamp passes the Luhn check one time in ten.
    records = [orjson.loads(r[5]) for r in rows] + bodies + letters
    assert find_pii_in(records) == []
    assert find_pii("\n".join(letter["payload"] for letter in letters)) == []


def test_a_replay_adds_no_rows_and_repeats_the_same_alert_ids(flow_settings):
    s = flow_settings
    prefix, produced = produce_simulated(
        s.kafka_bootstrap_servers, s.topic_transactions, 1500, seed=12
    )

    run_main(build_flow(s))
    first = read_topic(s.kafka_bootstrap_servers, s.topic_alerts)
    run_main(build_flow(s))
    both = read_topic(s.kafka_bootstrap_servers, s.topic_alerts)

    assert len(stored_rows(s, prefix)) == len(produced)
    first_ids = sorted(orjson.loads(m.value())["alert_id"] for m in first)
    all_ids = sorted(orjson.loads(m.value())["alert_id"] for m in both)
    assert all_ids == sorted(first_ids * 2)


def test_with_redis_down_every_transaction_is_scored_with_defaults_and_flagged(
    flow_settings,
):
    closed = f"redis://127.0.0.1:{free_port()}/0"
    s = flow_settings.model_copy(update={"redis_url": closed})
    prefix, produced = produce_simulated(
        s.kafka_bootstrap_servers, s.topic_transactions, 500, seed=13
    )

    run_main(build_flow(s))

    rows = stored_rows(s, prefix)
    assert len(rows) == len(produced)
    assert all(degraded for _id, _d, _s, _f, degraded, _j in rows)
    assert {features["has_profile"] for *_x, features, _g, _j in rows} == {0.0}


def test_with_postgres_down_the_flow_stops_and_a_rerun_stores_everything(flow_settings):
    s = flow_settings
    down = s.model_copy(
        update={
            "database_url": f"postgresql://postgres@127.0.0.1:{free_port()}/fraudflow",
            "db_retry_budget_s": 1.0,
        }
    )
    prefix, produced = produce_simulated(
        s.kafka_bootstrap_servers, s.topic_transactions, 300, seed=14
    )

    with pytest.raises(BytewaxRuntimeError) as raised:
        run_main(build_flow(down))
    causes = []
    error: BaseException | None = raised.value
    while error is not None:
        causes.append(error)
        error = error.__cause__
    assert any(isinstance(cause, DatabaseUnavailable) for cause in causes)
    assert stored_rows(s, prefix) == []

    run_main(build_flow(s))
    assert len(stored_rows(s, prefix)) == len(produced)


def flow_env(settings, **extra):
    env = {
        **os.environ,
        "KAFKA_BOOTSTRAP_SERVERS": settings.kafka_bootstrap_servers,
        "DATABASE_URL": settings.database_url,
        "REDIS_URL": settings.redis_url,
        "FRAUDFLOW_TOPIC_TRANSACTIONS": settings.topic_transactions,
        "FRAUDFLOW_TOPIC_ALERTS": settings.topic_alerts,
        "FRAUDFLOW_TOPIC_DLQ": settings.topic_dlq,
        "FRAUDFLOW_TAIL": "false",
        "FRAUDFLOW_DEV_MODE": "1",
        "FRAUDFLOW_HEALTH_PORT": "0",
        "FRAUDFLOW_METRICS_PORT": "0",
    }
    env.update(extra)
    return env


def start_flow(env, log, *args):
    """Start a flow process writing its output to the file ``log``."""
    command = [sys.executable, "-m", "bytewax.run", "dataflows.scoring:flow", *args]
    with open(log, "ab") as out:
        return subprocess.Popen(command, env=env, stdout=out, stderr=subprocess.STDOUT)


def finish(process, log, timeout=300):
    process.wait(timeout=timeout)
    assert process.returncode == 0, log.read_text()[-3000:]


def test_two_processes_over_four_partitions_score_exactly_like_one(
    flow_settings, tmp_path
):
    s = flow_settings
    prefix, produced = produce_simulated(
        s.kafka_bootstrap_servers, s.topic_transactions, 2000, seed=15
    )
    captured = []
    run_main(build_flow(s, rows_sink=TestingSink(captured)))
    assert len(captured) == len(produced)

    addresses = f"127.0.0.1:{free_port()};127.0.0.1:{free_port()}"
    env = flow_env(s)
    logs = [tmp_path / f"flow-{i}.log" for i in (0, 1)]
    processes = [
        start_flow(env, log, "-i", str(i), "-a", addresses)
        for i, log in enumerate(logs)
    ]
    for process, log in zip(processes, logs, strict=True):
        finish(process, log)

    stored = {r[0]: (r[1], r[2], r[3]) for r in stored_rows(s, prefix)}
    assert len(stored) == len(produced)
    for row in captured:
        decision, score, features = stored[row.txn_id]
        assert decision == row.decision
        assert score == pytest.approx(row.score, abs=1e-9)
        assert features == pytest.approx(row.features, abs=1e-6)


@pytest.mark.slow
def test_a_flow_killed_mid_run_resumes_with_every_row_once_and_no_alert_lost(
    flow_settings, tmp_path
):
    s = flow_settings
    total = 100_000
    prefix, _ = produce_simulated(
        s.kafka_bootstrap_servers, s.topic_transactions, total, seed=16, accounts=5000
    )
    recovery = tmp_path / "recovery"
    recovery.mkdir()
    subprocess.run(
        [sys.executable, "-m", "bytewax.recovery", str(recovery), "1"], check=True
    )
    env = flow_env(s)
    args = ("-r", str(recovery), "-s", "1", "-b", "10")

    log = tmp_path / "flow.log"
    first = start_flow(env, log, *args)
    deadline = time.monotonic() + 240
    while len(stored_rows(s, prefix)) < total // 4 and time.monotonic() < deadline:
        assert first.poll() is None, log.read_text()[-3000:]
        time.sleep(0.5)
    first.send_signal(signal.SIGKILL)
    first.wait()
    killed_at = len(stored_rows(s, prefix))
    assert 0 < killed_at < total

    finish(start_flow(env, log, *args), log)

    rows = stored_rows(s, prefix)
    assert len(rows) == total
    assert len({r[0] for r in rows}) == total
    flagged = {r[0] for r in rows if r[1] != "allow"}
    alerts = [
        orjson.loads(m.value())
        for m in read_topic(s.kafka_bootstrap_servers, s.topic_alerts)
    ]
    by_txn = {}
    for alert in alerts:
        by_txn.setdefault(alert["txn_id"], set()).add(alert["alert_id"])
    assert set(by_txn) == flagged
    assert all(len(ids) == 1 for ids in by_txn.values())


@pytest.fixture
def private_broker(stack):
    """A broker of this test's own, so pausing it disturbs no other test."""
    shared = {"DATABASE_URL": stack.database_url, "REDIS_URL": stack.redis_url}
    directory = REPO / ".fraudflow" / "test-stacks" / uuid.uuid4().hex[:8]
    local = LocalStack(directory, environ=shared)
    endpoints = local.up()
    yield endpoints.kafka_bootstrap_servers, endpoints.broker_pid
    os.kill(endpoints.broker_pid, signal.SIGCONT)
    local.down()
    shutil.rmtree(directory, ignore_errors=True)


def wait_for_rows(settings, prefix, count, process, log, timeout_s=120):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        assert process.poll() is None, log.read_text()[-3000:]
        if len(stored_rows(settings, prefix)) >= count:
            return
        time.sleep(0.5)
    pytest.fail(
        f"expected {count} rows within {timeout_s} s, log:\n{log.read_text()[-3000:]}"
    )


@pytest.mark.slow
def test_a_broker_that_hangs_and_returns_delays_scoring_but_loses_nothing(
    settings, private_broker, tmp_path
):
    bootstrap, broker_pid = private_broker
    names = {k: f"{k}-{uuid.uuid4().hex[:8]}" for k in ("txns", "alerts", "dlq")}
    create_topics(bootstrap, names.values(), 4)
    s = settings.model_copy(
        update={
            "kafka_bootstrap_servers": bootstrap,
            "topic_transactions": names["txns"],
            "topic_alerts": names["alerts"],
            "topic_dlq": names["dlq"],
        }
    )
    apply_migrations(s.database_url)
    log = tmp_path / "flow.log"
    flow = start_flow(flow_env(s, FRAUDFLOW_TAIL="true"), log)
    try:
        prefix, before = produce_simulated(
            bootstrap, s.topic_transactions, 1000, seed=17
        )
        wait_for_rows(s, prefix, len(before), flow, log)

        os.kill(broker_pid, signal.SIGSTOP)
        time.sleep(5)
        os.kill(broker_pid, signal.SIGCONT)

        prefix_after, after = produce_simulated(
            bootstrap, s.topic_transactions, 1000, seed=18
        )
        wait_for_rows(s, prefix_after, len(after), flow, log)
    finally:
        flow.send_signal(signal.SIGINT)
        flow.wait(timeout=30)

    rows = stored_rows(s, prefix) + stored_rows(s, prefix_after)
    assert len(rows) == 2000
    flagged = {r[0] for r in rows if r[1] != "allow"}
    alerted = {
        orjson.loads(m.value())["txn_id"] for m in read_topic(bootstrap, s.topic_alerts)
    }
    assert alerted == flagged
