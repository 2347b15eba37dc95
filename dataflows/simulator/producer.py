"""Send simulated transactions and their labels to Kafka at a paced rate.

Both topics are keyed by account id, so one account's transactions stay in
order in one partition. The producer batches for 20 milliseconds
(``linger.ms``), because the local broker handles many small batches badly,
and asks for delivery reports on failures only, so a healthy run costs no
Python callback per message. Closing flushes and raises if anything is
left undelivered: a load test that silently lost messages would measure
nothing.

Example:
    >>> with TransactionProducer("127.0.0.1:9092", "transactions",
    ...                          "transaction-labels") as producer:
    ...     summary = run(TransactionSimulator(), producer, RateLimiter(1000),
    ...                   count=10_000)  # doctest: +SKIP
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from itertools import islice
from types import TracebackType
from typing import Final, Self

import msgspec
import orjson
from confluent_kafka import KafkaError, KafkaException, Message, Producer

from dataflows.errors import BrokerUnavailable
from dataflows.schema import Transaction, encode
from dataflows.simulator.fraud import Label
from dataflows.simulator.generator import TransactionSimulator
from dataflows.simulator.rate import RateLimiter

LOG = logging.getLogger(__name__)

#: librdkafka settings (see its CONFIGURATION.md) tuned for throughput into
#: a local broker while keeping per-account order.
PRODUCER_CONFIG: Final = {
    # Gather 20 ms of messages per request: fewer, larger produce requests and
    # stored batches. The local broker lists every stored batch of a partition
    # on each fetch that finds new data, so at 2,000 tx/s over four partitions
    # 5 ms made it saturate a core within 40 s (its p99 rose from 14 to 627 ms)
    # while 20 ms kept it under half a core (p99 26-32 ms). Latency counts from
    # the message's create time, so the wait is included, not hidden.
    "linger.ms": 20,
    "batch.num.messages": 10_000,
    "batch.size": 1_000_000,
    "queue.buffering.max.messages": 500_000,
    # Cheaper than sending uncompressed JSON through the broker (measured).
    "compression.type": "lz4",
    # Retries cannot reorder or duplicate messages within a partition.
    "enable.idempotence": True,
    # Same key-to-partition mapping as the Java client's default partitioner.
    "partitioner": "murmur2_random",
    "delivery.report.only.error": True,
    # Statistics say when the idempotent producer has its producer id (see
    # TransactionProducer.wait_ready); a few kilobytes of JSON ten times a
    # second cost nothing measurable.
    "statistics.interval.ms": 100,
}

#: Seconds the final flush waits for outstanding deliveries.
FLUSH_TIMEOUT_S: Final = 30.0
#: Seconds to wait for room when the local queue is full.
QUEUE_FULL_WAIT_S: Final = 0.01
#: Seconds :meth:`TransactionProducer.wait_ready` waits for a producer id.
READY_TIMEOUT_S: Final = 30.0
#: librdkafka's idempotence state once the broker has granted a producer id.
PRODUCER_ID_ASSIGNED: Final = "Assigned"

_label_encoder = msgspec.json.Encoder()


@dataclass
class Summary:
    """Outcome of one producing run.

    Attributes:
        sent: Transactions handed to the producer (each with its label).
        failed: Messages (transactions or labels) the broker did not accept.
        seconds: Wall-clock duration including the final flush.
        by_pattern: Transactions sent per pattern.
    """

    sent: int = 0
    failed: int = 0
    seconds: float = 0.0
    by_pattern: Counter[str] = field(default_factory=Counter)

    @property
    def rate(self) -> float:
        """Return the achieved transactions per second."""
        return self.sent / self.seconds if self.seconds else 0.0


class TransactionProducer:
    """A Kafka producer of transactions and their labels, keyed by account.

    Args:
        bootstrap_servers: Kafka bootstrap servers.
        transactions_topic: Topic of the transactions.
        labels_topic: Topic of the labels.
        config: librdkafka settings overriding :data:`PRODUCER_CONFIG`.
    """

    def __init__(
        self,
        bootstrap_servers: str,
        transactions_topic: str,
        labels_topic: str,
        config: dict[str, object] | None = None,
    ) -> None:
        """Create the underlying producer; nothing is sent yet."""
        settings = PRODUCER_CONFIG | {"bootstrap.servers": bootstrap_servers}
        settings |= (config or {}) | {
            "on_delivery": self._on_failure,
            "stats_cb": self._on_stats,
        }
        self._idempotent = bool(settings.get("enable.idempotence"))
        self._has_producer_id = False
        self._producer = Producer(settings)
        self.transactions_topic = transactions_topic
        self.labels_topic = labels_topic
        self.failed = 0

    def __enter__(self) -> Self:
        """Return the producer itself."""
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        """Flush on the way out, raising if messages remain undelivered."""
        self.close()

    def _on_failure(self, error: KafkaError | None, message: Message) -> None:
        """Count a failed delivery (reports arrive for failures only)."""
        if error is None:
            return
        self.failed += 1
        LOG.warning(
            "delivery failed topic=%s partition=%s error=%s",
            message.topic(),
            message.partition(),
            error.name(),
        )

    @property
    def has_producer_id(self) -> bool:
        """Whether the broker has granted the idempotent producer its id."""
        return self._has_producer_id

    def _on_stats(self, stats: str) -> None:
        """Note when the broker has granted the idempotent producer its id."""
        if self._has_producer_id or not self._idempotent:
            return
        state = orjson.loads(stats).get("eos", {}).get("idemp_state")
        self._has_producer_id = state == PRODUCER_ID_ASSIGNED

    def wait_ready(self, timeout: float = READY_TIMEOUT_S) -> float:
        """Connect and, if idempotent, wait for the producer id; return seconds.

        An idempotent producer holds every message until the broker has
        granted it a producer id; the local broker took 0.5-1 s for that. Each
        transaction's timestamp is taken when it is queued, so without this
        wait the first second of a run would carry that start-up time as
        latency downstream.

        Raises:
            BrokerUnavailable: no broker answered, or no producer id came,
                within ``timeout`` seconds.
        """
        started = time.monotonic()
        try:
            self._producer.list_topics(timeout=timeout)
        except KafkaException as exc:
            raise BrokerUnavailable(f"no broker answered the producer: {exc}") from exc
        while self._idempotent and not self._has_producer_id:
            waited = time.monotonic() - started
            if waited > timeout:
                message = f"expected a producer id, got none after {waited:.1f}s"
                raise BrokerUnavailable(message)
            self._producer.poll(0.01)
        return time.monotonic() - started

    def send(self, txn: Transaction, label: Label) -> None:
        """Queue a transaction and its label, waiting if the queue is full."""
        key = txn.account_id
        self._produce(self.transactions_topic, encode(txn), key)
        self._produce(self.labels_topic, _label_encoder.encode(label), key)

    def _produce(self, topic: str, value: bytes, key: str) -> None:
        """Queue one message; on a full queue serve callbacks and retry."""
        while True:
            try:
                self._producer.produce(topic, value, key)
                return
            except BufferError:
                self._producer.poll(QUEUE_FULL_WAIT_S)

    def poll(self) -> None:
        """Serve pending delivery reports without waiting."""
        self._producer.poll(0)

    def close(self, timeout: float = FLUSH_TIMEOUT_S) -> None:
        """Wait for every queued message to be delivered.

        Raises:
            BrokerUnavailable: messages were still undelivered after
                ``timeout`` seconds.
        """
        remaining = self._producer.flush(timeout)
        if remaining:
            message = (
                f"expected every message delivered to {self.transactions_topic!r} "
                f"and {self.labels_topic!r}, got {remaining} still queued after "
                f"{timeout}s"
            )
            raise BrokerUnavailable(message)


def run(
    simulator: TransactionSimulator,
    producer: TransactionProducer,
    limiter: RateLimiter,
    count: int | None = None,
    duration: float | None = None,
    live: bool = True,
    on_progress: Callable[[Summary], None] | None = None,
) -> Summary:
    """Produce paced transactions until ``count`` or ``duration`` is reached.

    With neither, runs until interrupted (Ctrl-C ends the run cleanly). The
    producer is flushed before returning, so ``failed`` is final.

    Args:
        simulator: Source of the transactions.
        producer: Where they go.
        limiter: Pacing of the run.
        count: Transactions to send.
        duration: Seconds to run.
        live: Stamp transactions with the wall clock as they are sent.
        on_progress: Called with the running summary after each grant.

    Returns:
        What was sent, how fast, and what failed.
    """
    summary = Summary()
    waited = producer.wait_ready()
    LOG.info("producer ready after %.3f s", waited)
    pairs = simulator.stream(live=live)
    started = time.monotonic()
    try:
        while count is None or summary.sent < count:
            grant = limiter.acquire()
            if count is not None:
                grant = min(grant, count - summary.sent)
            _send(pairs, producer, grant, summary.by_pattern)
            summary.sent += grant
            summary.seconds = time.monotonic() - started
            producer.poll()
            if on_progress:
                on_progress(summary)
            if duration is not None and summary.seconds >= duration:
                break
    except KeyboardInterrupt:
        LOG.info("interrupted after %s transactions; flushing", summary.sent)
    producer.close()
    summary.sent = sum(summary.by_pattern.values())
    summary.seconds = time.monotonic() - started
    summary.failed = producer.failed
    return summary


def _send(
    pairs: Iterator[tuple[Transaction, Label]],
    producer: TransactionProducer,
    grant: int,
    by_pattern: Counter[str],
) -> None:
    """Send the next ``grant`` pairs and count them by pattern."""
    send = producer.send
    for txn, label in islice(pairs, grant):
        send(txn, label)
        by_pattern[label.pattern] += 1
