"""Test helpers: produce simulated traffic and read whole topics back."""

from __future__ import annotations

import time
import uuid

from confluent_kafka import Consumer, Message, Producer, TopicPartition
from confluent_kafka.admin import AdminClient

from dataflows.schema import encode
from dataflows.simulator import TransactionSimulator


def produce_simulated(
    bootstrap: str, topic: str, count: int, seed: int = 11, accounts: int = 400
) -> tuple[str, list]:
    """Produce ``count`` simulated transactions keyed by account.

    Returns:
        The run's transaction id prefix and the transactions produced.
    """
    # A letter before the dash keeps ids from forming card-like digit runs.
    prefix = f"t{uuid.uuid4().hex[:10]}z-"
    simulator = TransactionSimulator(seed=seed, accounts=accounts, id_prefix=prefix)
    producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 5})
    produced = []
    for _, (txn, _label) in zip(range(count), simulator.stream(), strict=False):
        producer.produce(topic, key=txn.account_id.encode(), value=encode(txn))
        producer.poll(0)
        produced.append(txn)
    assert producer.flush(30) == 0
    return prefix, produced


def produce_raw(bootstrap: str, topic: str, values: list[bytes | None]) -> None:
    """Produce raw values (malformed input) keyed ``bad``."""
    producer = Producer({"bootstrap.servers": bootstrap})
    for value in values:
        producer.produce(topic, key=b"bad", value=value)
    assert producer.flush(30) == 0


def read_topic(bootstrap: str, topic: str, idle_s: float = 2.0) -> list[Message]:
    """Read every message of every partition of ``topic``, until it goes quiet.

    The local broker's high watermark lags behind batches from idempotent
    producers, so the end of a partition is judged by silence, not offsets.
    """
    admin = AdminClient({"bootstrap.servers": bootstrap})
    partitions = admin.list_topics(topic, timeout=10).topics[topic].partitions
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": "unused",
            "enable.auto.commit": False,
            "fetch.wait.max.ms": 10,
        }
    )
    consumer.assign([TopicPartition(topic, p, 0) for p in partitions])
    messages: list[Message] = []
    quiet_since = time.monotonic()
    while time.monotonic() - quiet_since < idle_s:
        batch = [m for m in consumer.consume(1000, 0.1) if m.error() is None]
        if batch:
            messages.extend(batch)
            quiet_since = time.monotonic()
    consumer.close()
    return messages
