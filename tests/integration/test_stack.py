import os
import shutil
import signal
import uuid
from pathlib import Path

import psycopg
import pytest
import redis
from confluent_kafka import Consumer, Producer, TopicPartition

from deploy.stack import LocalStack, StackError, pid_alive, port_open

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def stack_dir():
    """A state directory for a private stack, outside pytest's temporary root.

    PostgreSQL runs as another user when the tests run as root, and pytest
    keeps its temporary root closed to other users, so the data directory
    lives under the repository's state folder instead.
    """
    directory = REPO / ".fraudflow" / "test-stacks" / uuid.uuid4().hex[:8]
    yield directory
    shutil.rmtree(directory, ignore_errors=True)


def test_every_service_answers_a_real_client(stack, topic):
    with psycopg.connect(stack.database_url) as conn:
        assert conn.execute("SELECT 40 + 2").fetchone() == (42,)
    assert redis.Redis.from_url(stack.redis_url).ping()

    producer = Producer({"bootstrap.servers": stack.kafka_bootstrap_servers})
    producer.produce(topic, key=b"acct-1", value=b"hello", partition=2)
    assert producer.flush(10) == 0
    consumer = Consumer(
        {"bootstrap.servers": stack.kafka_bootstrap_servers, "group.id": "unused"}
    )
    consumer.assign([TopicPartition(topic, 2, 0)])
    message = consumer.poll(10)
    consumer.close()
    assert message is not None
    assert message.value() == b"hello"


def test_a_second_up_reuses_the_running_services(stack, stack_dir):
    local = LocalStack(stack_dir)
    first = local.up()
    try:
        again = local.up()
        assert again.services["kafka"].pid == first.services["kafka"].pid
        assert again.redis_url == first.redis_url
        assert set(local.status().values()) == {"up"}
    finally:
        local.down()


def test_down_leaves_no_process_behind(stack_dir):
    local = LocalStack(stack_dir, environ={})
    endpoints = local.up()
    pids = [state.pid for state in endpoints.services.values()]
    ports = [state.port for state in endpoints.services.values()]
    local.down()
    assert not any(pid_alive(pid) for pid in pids)
    assert not any(port_open(port) for port in ports)
    assert set(local.status().values()) == {"down"}


def test_a_dead_service_is_restarted_by_the_next_up(stack_dir):
    local = LocalStack(stack_dir, environ={})
    first = local.up()
    try:
        os.kill(first.services["redis"].pid, signal.SIGKILL)
        assert local.status()["redis"] == "down"
        second = local.up()
        assert second.services["redis"].pid != first.services["redis"].pid
        assert redis.Redis.from_url(second.redis_url).ping()
        assert second.services["kafka"].pid == first.services["kafka"].pid
    finally:
        local.down()


def test_restart_gives_one_service_a_fresh_process_and_keeps_the_others(stack_dir):
    local = LocalStack(stack_dir, environ={})
    first = local.up()
    try:
        old = first.services["kafka"]
        second = local.restart("kafka")
        assert not pid_alive(old.pid)
        assert second.services["kafka"].pid != old.pid
        assert port_open(second.services["kafka"].port)
        assert second.services["redis"].pid == first.services["redis"].pid
        assert local.endpoints() == second
    finally:
        local.down()


def test_restart_leaves_an_external_service_alone(stack_dir, stack):
    local = LocalStack(stack_dir, environ={"REDIS_URL": stack.redis_url})
    try:
        local.up()
        assert local.restart("redis").redis_url == stack.redis_url
    finally:
        local.down()
    assert redis.Redis.from_url(stack.redis_url).ping()


def test_external_services_are_used_instead_of_started(stack_dir, stack):
    environ = {"REDIS_URL": stack.redis_url}
    local = LocalStack(stack_dir, environ=environ)
    try:
        endpoints = local.up()
        assert endpoints.redis_url == stack.redis_url
        assert endpoints.services["redis"].external
        assert local.status()["redis"] == "external"
    finally:
        local.down()
    assert redis.Redis.from_url(stack.redis_url).ping()


def test_a_service_that_cannot_start_reports_its_log(stack_dir, monkeypatch):
    local = LocalStack(stack_dir, environ={})

    def broken_start():
        state_dir = stack_dir / "logs"
        state_dir.mkdir(parents=True, exist_ok=True)
        (state_dir / "redis.log").write_text("FATAL: bind: address in use\n")
        raise StackError("redis did not become healthy; FATAL: bind: address in use")

    monkeypatch.setattr(local, "_start_redis", broken_start)
    with pytest.raises(StackError, match="address in use"):
        local.up()
    assert set(local.status().values()) == {"down"}
