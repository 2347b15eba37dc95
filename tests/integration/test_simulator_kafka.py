"""The simulator against the local broker: everything arrives, keyed, in order."""

from __future__ import annotations

import time
import uuid
from collections import defaultdict
from collections.abc import Callable

import msgspec
import pytest
from confluent_kafka import OFFSET_BEGINNING, Consumer, Message, TopicPartition
from typer.testing import CliRunner

from dataflows.config import Settings
from dataflows.schema import decode
from dataflows.simulator import Label, TransactionSimulator
from dataflows.simulator.cli import app
from dataflows.simulator.producer import TransactionProducer, run
from dataflows.simulator.rate import RateLimiter

pytestmark = pytest.mark.integration

COUNT = 20_000
#: Give up reading after this long without a new message.
IDLE_TIMEOUT_S = 30.0


def read_all(bootstrap_servers: str, topic: str, expected: int) -> list[Message]:
    """Read a topic from the beginning of every partition, without a group."""
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap_servers,
            "group.id": f"unused-{uuid.uuid4().hex}",
            "enable.auto.commit": False,
            "fetch.wait.max.ms": 50,
        }
    )
    partitions = consumer.list_topics(topic, timeout=10).topics[topic].partitions
    consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in partitions])
    messages: list[Message] = []
    last_seen = time.monotonic()
    try:
        while (
            len(messages) < expected and time.monotonic() - last_seen < IDLE_TIMEOUT_S
        ):
            batch = consumer.consume(1000, timeout=0.5)
            for message in batch:
                assert message.error() is None, message.error()
            messages += batch
            last_seen = time.monotonic() if batch else last_seen
        messages += consumer.consume(1000, timeout=1.0)
    finally:
        consumer.close()
    return messages


@pytest.fixture
def produced(settings: Settings, topic: str, new_topic: Callable[..., str]) -> dict:
    """Produce COUNT simulated transactions unthrottled to fresh topics."""
    labels_topic = new_topic("labels")
    simulator = TransactionSimulator(seed=21, accounts=500)
    servers = settings.kafka_bootstrap_servers
    with TransactionProducer(servers, topic, labels_topic) as producer:
        summary = run(simulator, producer, RateLimiter(0), count=COUNT, live=False)
    return {"summary": summary, "topic": topic, "labels_topic": labels_topic}


def test_the_producer_is_ready_once_the_broker_granted_its_id(
    settings: Settings, topic: str
) -> None:
    with TransactionProducer(
        settings.kafka_bootstrap_servers, topic, topic
    ) as producer:
        assert not producer.has_producer_id
        producer.wait_ready(timeout=30)
        assert producer.has_producer_id


def test_every_transaction_arrives_keyed_by_account(
    settings: Settings, produced: dict
) -> None:
    messages = read_all(settings.kafka_bootstrap_servers, produced["topic"], COUNT)
    transactions = [decode(message.value()) for message in messages]

    assert produced["summary"].sent == COUNT
    assert produced["summary"].failed == 0
    assert len(messages) == COUNT
    assert len({txn.txn_id for txn in transactions}) == COUNT
    for message, txn in zip(messages, transactions, strict=True):
        assert message.key() == txn.account_id.encode()


def test_each_account_stays_in_one_partition_in_order(
    settings: Settings, produced: dict
) -> None:
    messages = read_all(settings.kafka_bootstrap_servers, produced["topic"], COUNT)
    partitions: dict[bytes, set[int]] = defaultdict(set)
    times: dict[bytes, list[int]] = defaultdict(list)
    ids: dict[bytes, list[str]] = defaultdict(list)
    for message in messages:
        txn = decode(message.value())
        partitions[message.key()].add(message.partition())
        times[message.key()].append(txn.event_ms)
        ids[message.key()].append(txn.txn_id)

    assert all(len(used) == 1 for used in partitions.values())
    assert len({p for used in partitions.values() for p in used}) > 1
    for key in times:
        assert times[key] == sorted(times[key])
        assert ids[key] == sorted(ids[key])


def test_the_labels_topic_gets_one_label_per_transaction(
    settings: Settings, produced: dict
) -> None:
    servers = settings.kafka_bootstrap_servers
    transactions = read_all(servers, produced["topic"], COUNT)
    messages = read_all(servers, produced["labels_topic"], COUNT)
    labels = [msgspec.json.decode(message.value(), type=Label) for message in messages]
    by_id = {txn.txn_id: txn for txn in map(decode, (m.value() for m in transactions))}

    assert len(labels) == COUNT
    assert {label.txn_id for label in labels} == set(by_id)
    for message, label in zip(messages, labels, strict=True):
        txn = by_id[label.txn_id]
        assert message.key() == label.account_id.encode() == txn.account_id.encode()
        assert label.event_time == txn.event_time
    assert any(label.is_fraud for label in labels)


def test_the_command_line_produces_to_the_configured_topics(
    settings: Settings,
    topic: str,
    new_topic: Callable[..., str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    labels_topic = new_topic("labels")
    monkeypatch.setenv("FRAUDFLOW_TOPIC_TRANSACTIONS", topic)
    monkeypatch.setenv("FRAUDFLOW_TOPIC_LABELS", labels_topic)
    servers = settings.kafka_bootstrap_servers
    arguments = ["--rate", "2000", "--count", "3000", "--accounts", "200"]
    result = CliRunner().invoke(app, [*arguments, "--bootstrap-servers", servers])

    assert result.exit_code == 0, result.output
    assert "3,000" in result.output
    assert len(read_all(servers, topic, 3000)) == 3000
    assert len(read_all(servers, labels_topic, 3000)) == 3000
