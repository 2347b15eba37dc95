"""Alert and dead-letter producers against a real Kafka-protocol broker.

The outage test pauses a broker of its own (SIGSTOP), not the shared one, so
tests running alongside keep their broker.
"""

from __future__ import annotations

import os
import signal
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime

import msgspec
import pytest
from confluent_kafka import Consumer, TopicPartition

from dataflows.config import Settings
from dataflows.errors import BrokerUnavailable, InvalidTransaction
from dataflows.masking import Masker
from dataflows.records import (
    Alert,
    DeadLetter,
    Verdict,
    alert_for,
    dead_letter,
    scored_transaction,
)
from dataflows.schema import example_transaction
from dataflows.sinks import (
    KafkaDeliverySink,
    OutboundMessage,
    alert_message,
    dead_letter_message,
)
from dataflows.topics import create_topics
from deploy.stack import LocalStack
from tests.pii import find_pii

pytestmark = pytest.mark.integration


def alert_messages(count: int) -> list[OutboundMessage]:
    masker = Masker(b"k" * 32)
    verdict = Verdict(0.95, "block", ["velocity_1h"], "m-test", {"amount_z": 3.0})
    rows = [
        scored_transaction(
            example_transaction(txn_id=f"t-{i}", account_id=f"acct-{i % 9}"),
            masker,
            verdict,
            kafka_timestamp_ms=0,
            scored_at=datetime.now(UTC),
        )
        for i in range(count)
    ]
    return [alert_message(alert_for(row)) for row in rows]


def consume_all(bootstrap: str, topic: str, expected: int, partitions: int = 4) -> list:
    """Read every partition from the start with an assign-based consumer."""
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"reader-{uuid.uuid4().hex[:8]}",
            "enable.auto.commit": False,
            "fetch.wait.max.ms": 10,
        }
    )
    consumer.assign([TopicPartition(topic, p, 0) for p in range(partitions)])
    messages = []
    idle_polls = 0
    while len(messages) < expected and idle_polls < 100:
        batch = consumer.consume(500, 0.1)
        idle_polls = 0 if batch else idle_polls + 1
        messages.extend(m for m in batch if m.error() is None)
    consumer.close()
    return messages


def write(settings: Settings, topic: str, items: list[OutboundMessage]) -> None:
    partition = KafkaDeliverySink(settings, topic).build("alerts", 0, 1)
    try:
        partition.write_batch(items)
    finally:
        partition.close()


def test_alerts_are_confirmed_keyed_by_account_and_tagged(settings, topic):
    items = alert_messages(200)

    write(settings, topic, items)

    received = consume_all(settings.kafka_bootstrap_servers, topic, len(items))
    assert len(received) == 200
    alerts = [msgspec.json.decode(m.value(), type=Alert) for m in received]
    assert {alert.txn_id for alert in alerts} == {f"t-{i}" for i in range(200)}
    for message, alert in zip(received, alerts, strict=True):
        assert message.key() == alert.account_id.encode()
        assert dict(message.headers()) == {"alert_id": alert.alert_id.encode()}
        assert find_pii(message.value().decode()) == []


def test_dead_letters_arrive_scrubbed_with_their_source_key(settings, topic):
    raw = (
        b'{"pan": "4111 1111 1111 1111", "email": "jane@example.com", "ip": "10.2.3.4"'
    )
    error = InvalidTransaction("$", "malformed_json", "truncated input")
    letter = dead_letter(raw, error, topic="transactions", partition=1, offset=77)

    write(settings, topic, [dead_letter_message(letter, b"acct-000001")])

    [received] = consume_all(settings.kafka_bootstrap_servers, topic, 1)
    decoded = msgspec.json.decode(received.value(), type=DeadLetter)
    assert received.key() == b"acct-000001"
    assert (decoded.reason, decoded.offset) == ("malformed_json", 77)
    assert find_pii(received.value().decode()) == []
    assert "10.2.3.0/24" in decoded.payload


@pytest.fixture
def own_broker(stack, tmp_path) -> Iterator[tuple[str, int]]:
    """A private broker (bootstrap servers, pid); the other services are shared."""
    shared = {"DATABASE_URL": stack.database_url, "REDIS_URL": stack.redis_url}
    local = LocalStack(tmp_path / "stack", environ=shared)
    endpoints = local.up()
    yield endpoints.kafka_bootstrap_servers, endpoints.broker_pid
    os.kill(endpoints.broker_pid, signal.SIGCONT)
    local.down()


def test_a_paused_broker_raises_after_the_budget_and_works_once_resumed(own_broker):
    bootstrap, pid = own_broker
    topic = f"alerts-{uuid.uuid4().hex[:8]}"
    create_topics(bootstrap, [topic], 4)
    settings = Settings(kafka_bootstrap_servers=bootstrap, kafka_delivery_budget_s=4.0)
    partition = KafkaDeliverySink(settings, topic).build("alerts", 0, 1)
    partition.write_batch(alert_messages(5))

    os.kill(pid, signal.SIGSTOP)
    try:
        with pytest.raises(BrokerUnavailable, match=repr(topic)):
            partition.write_batch(alert_messages(20))
    finally:
        os.kill(pid, signal.SIGCONT)
    partition.write_batch(alert_messages(30))
    partition.close()

    received = consume_all(bootstrap, topic, 30)
    txn_ids = {msgspec.json.decode(m.value(), type=Alert).txn_id for m in received}
    assert txn_ids >= {f"t-{i}" for i in range(30)}
