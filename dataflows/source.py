"""A Kafka source tuned for low latency that emits compact raw records.

Bytewax's own ``KafkaSource`` wraps every message in a frozen dataclass and
uses librdkafka's default fetch settings, under which a lightly loaded topic
waits up to 500 ms for a fetch to fill (p50 127 ms measured against the local
broker). This source assigns one Kafka partition per Bytewax partition (no
consumer group; offsets live in Bytewax's recovery snapshots, so state and
input stay exactly-once), asks the broker to answer fetches within a few
milliseconds, and emits plain :class:`RawRecord` tuples. The partitions a
worker owns share one consumer (:class:`WorkerConsumer`), so one fetch
request serves them all.

Each partition reader also publishes its consumer lag (messages in the
partition that the flow has not taken yet) as
``fraudflow_consumer_lag_messages``, at most once per :data:`LAG_INTERVAL_S`.
The high watermark comes from librdkafka's cache, which every fetch response
refreshes, so reading it costs no request to the broker. The broker's own
answer to a watermark request is not used: the local development broker
answers it with the first offset of the last record batch plus one, so after
batched (for example idempotent) production it under-reports the high
watermark, while its fetch responses carry the true one.

Example:
    >>> source = TransactionSource("127.0.0.1:9092", "transactions")
    >>> flow_input = op.input("transactions", flow, source)  # doctest: +SKIP
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from functools import partial
from typing import Any, NamedTuple, cast

from bytewax.inputs import FixedPartitionedSource, StatefulSourcePartition
from confluent_kafka import (
    OFFSET_BEGINNING,
    Consumer,
    KafkaError,
    KafkaException,
    Message,
    TopicPartition,
)
from confluent_kafka.admin import AdminClient

from dataflows import metrics
from dataflows.errors import BrokerUnavailable
from dataflows.runtime import heartbeat

LOG = logging.getLogger(__name__)

#: Consumer settings for latency. See librdkafka's CONFIGURATION.md:
#: ``fetch.wait.max.ms`` bounds how long the broker holds a fetch waiting for
#: ``fetch.min.bytes``; 5 ms took p50 from 127 ms to 4 ms at low rates here,
#: at the cost of more (cheap, local) fetch requests when idle.
LOW_LATENCY_CONSUMER: dict[str, Any] = {
    "fetch.wait.max.ms": 5,
    "fetch.min.bytes": 1,
    "fetch.error.backoff.ms": 50,
    "enable.auto.commit": False,
    "enable.auto.offset.store": False,
    "group.id": "fraudflow-unused",
}

#: Least seconds between two consumer-lag readings of one partition. A reading
#: is a dictionary lookup in librdkafka plus a gauge update (a few
#: microseconds); once a second is finer than any scrape interval.
LAG_INTERVAL_S = 1.0


class RawRecord(NamedTuple):
    """One Kafka message as read, before decoding."""

    key: bytes | None
    value: bytes | None
    partition: int
    offset: int
    timestamp_ms: int


class WorkerConsumer:
    """One Kafka consumer shared by every partition reader of one worker.

    Bytewax builds one reader per partition and polls them in turn. With a
    consumer each, a worker sends one fetch request per partition every
    ``fetch.wait.max.ms`` and blocks in every empty poll; sharing one consumer
    makes a single fetch cover all of the worker's partitions, so the broker
    sees a quarter of the requests for four partitions and an idle worker
    blocks once per round instead of once per partition.

    A poll takes up to ``batch_size`` messages per assigned partition (of any
    of them, so a busy partition may fill it) and files them by partition;
    each reader then takes its own. A reader polls only when its pile is
    empty and no other reader has polled since its own last turn, so each
    round of the worker polls the broker once. A partition whose pile grows
    past ``max_pending`` untaken messages (its reader is held back, for
    example by the epoch barrier) is paused until its reader catches up,
    which bounds the memory a slow partition can take. The default bound is
    two full polls, so a partition that alone fills the poll is not paused.
    """

    def __init__(
        self,
        config: dict[str, Any],
        batch_size: int,
        max_pending: int | None = None,
    ):
        self._consumer = Consumer(config)
        self._batch_size = batch_size
        self._max_pending = max_pending
        self._piles: dict[tuple[str, int], list[RawRecord]] = {}
        self._ended: set[tuple[str, int]] = set()
        self._paused: set[tuple[str, int]] = set()
        self.polls = 0

    def add(self, topic: str, partition: int, offset: int) -> None:
        """Start reading ``partition`` of ``topic`` at ``offset``."""
        self._piles[(topic, partition)] = []
        self._consumer.incremental_assign([TopicPartition(topic, partition, offset)])

    def remove(self, topic: str, partition: int) -> bool:
        """Stop reading a partition; close when none is left, and say so."""
        self._piles.pop((topic, partition), None)
        self._consumer.incremental_unassign([TopicPartition(topic, partition)])
        if self._piles:
            return False
        self._consumer.close()
        return True

    def take(self, topic: str, partition: int, polled_since: bool) -> list[RawRecord]:
        """The messages read for one partition, polling first if it is due.

        Args:
            topic: The partition's topic.
            partition: The partition's index.
            polled_since: Whether another reader polled since this partition's
                reader last asked; if so an empty pile means nothing came.
        """
        key = (topic, partition)
        if not self._piles[key] and not polled_since:
            self._poll()
        taken, self._piles[key] = self._piles[key], []
        if key in self._paused:
            self._paused.discard(key)
            self._consumer.resume([TopicPartition(topic, partition)])
        return taken

    def ended(self, topic: str, partition: int) -> bool:
        """Whether the partition's end was reached and its pile is empty."""
        key = (topic, partition)
        return key in self._ended and not self._piles[key]

    def watermarks(self, topic: str, partition: int) -> tuple[int, int]:
        """Low and high watermark as of the last fetch response (no request)."""
        where = TopicPartition(topic, partition)
        low, high = self._consumer.get_watermark_offsets(where, cached=True)
        return low, high

    def _poll(self) -> None:
        self.polls += 1
        # A zero timeout: consume(n, t) waits up to t to fill n messages, and
        # an empty round costs Bytewax's 1 ms cool-down anyway.
        wanted = self._batch_size * len(self._piles)
        for message in self._consumer.consume(wanted, 0):
            error = message.error()
            if error is not None:
                self._on_error(message, error)
                continue
            # Only error events lack a topic, partition or offset.
            key = (cast(str, message.topic()), cast(int, message.partition()))
            pile = self._piles.get(key)
            if pile is None:  # a message of a partition removed meanwhile
                continue
            pile.append(
                RawRecord(
                    message.key(),
                    message.value(),
                    key[1],
                    cast(int, message.offset()),
                    message.timestamp()[1],
                )
            )
        self._pause_full_piles()

    def _pause_full_piles(self) -> None:
        limit = self._max_pending or 2 * self._batch_size * len(self._piles)
        for key, pile in self._piles.items():
            if len(pile) > limit and key not in self._paused:
                self._paused.add(key)
                self._consumer.pause([TopicPartition(*key)])

    def _on_error(self, message: Message, error: KafkaError) -> None:
        where = f"{message.topic()!r} partition {message.partition()}"
        if error.code() == KafkaError._PARTITION_EOF:
            self._ended.add(
                (cast(str, message.topic()), cast(int, message.partition()))
            )
            return
        if error.fatal():
            raise BrokerUnavailable(f"fatal consumer error on {where}: {error.str()}")
        LOG.warning("consumer error where=%s error=%s", where, error.str())


class _PartitionReader(StatefulSourcePartition[RawRecord, int]):
    """Reads one Kafka partition from a given offset through a shared consumer."""

    def __init__(
        self,
        consumer: WorkerConsumer,
        topic: str,
        partition: int,
        offset: int,
        lag_interval_s: float = LAG_INTERVAL_S,
        clock: Callable[[], float] = time.monotonic,
        on_close: Callable[[], None] | None = None,
    ):
        self._consumer = consumer
        consumer.add(topic, partition, offset)
        self._topic = topic
        self._partition = partition
        self._offset = offset
        self._polls_seen = consumer.polls
        self._lag_interval_s = lag_interval_s
        self._clock = clock
        self._next_lag_at = clock()
        self._on_close = on_close

    def next_batch(self) -> list[RawRecord]:
        heartbeat()
        consumer = self._consumer
        if consumer.ended(self._topic, self._partition):
            self._record_lag(force=True)
            raise StopIteration
        polled_since = consumer.polls != self._polls_seen
        batch = consumer.take(self._topic, self._partition, polled_since)
        self._polls_seen = consumer.polls
        if batch:
            self._offset = batch[-1].offset + 1
        self._record_lag()
        return batch

    def _record_lag(self, force: bool = False) -> None:
        """Publish this partition's lag if ``lag_interval_s`` has passed."""
        now = self._clock()
        if now < self._next_lag_at and not force:
            return
        self._next_lag_at = now + self._lag_interval_s
        try:
            low, high = self._consumer.watermarks(self._topic, self._partition)
        except KafkaException as exc:
            LOG.debug(
                "no cached watermarks topic=%s partition=%s error=%s",
                self._topic,
                self._partition,
                exc,
            )
            return
        if high < 0:  # no fetch response yet: nothing known about the partition
            return
        key = (self._topic, self._partition)
        # A negative offset is a logical one (the beginning): nothing taken yet.
        positions = {key: self._offset} if self._offset >= 0 else {}
        metrics.record_consumer_lag(positions, {key: (max(low, 0), high)})

    def snapshot(self) -> int:
        return self._offset

    def close(self) -> None:
        if self._consumer.remove(self._topic, self._partition) and self._on_close:
            self._on_close()


class TransactionSource(FixedPartitionedSource[RawRecord, int]):
    """Every partition of one Kafka topic as a Bytewax input.

    Args:
        bootstrap_servers: Kafka bootstrap servers.
        topic: The topic to read.
        tail: Keep waiting for new messages at the end of each partition.
            ``False`` stops at the end, which bounded runs and tests use.
        batch_size: Most messages taken per poll. Larger batches amortise
            Bytewax's per-activation overhead; at low rates batches are small
            anyway, so a large cap costs no latency.
        extra_config: librdkafka settings that override the defaults.
    """

    def __init__(
        self,
        bootstrap_servers: str,
        topic: str,
        tail: bool = True,
        batch_size: int = 1000,
        extra_config: dict[str, Any] | None = None,
    ):
        self.bootstrap_servers = bootstrap_servers
        self.topic = topic
        self.tail = tail
        self.batch_size = batch_size
        self.extra_config = extra_config or {}
        self._consumers: dict[int, WorkerConsumer] = {}
        self._lock = threading.Lock()

    def list_parts(self) -> list[str]:
        """One input partition per Kafka partition, named by its index."""
        admin = AdminClient({"bootstrap.servers": self.bootstrap_servers})
        metadata = admin.list_topics(self.topic, timeout=10)
        topic = metadata.topics.get(self.topic)
        if topic is None or topic.error is not None:
            problem = topic.error if topic is not None else "missing"
            message = f"cannot read topic {self.topic!r}: {problem}"
            raise BrokerUnavailable(message)
        return [str(index) for index in sorted(topic.partitions)]

    def build_part(
        self, step_id: str, for_part: str, resume_state: int | None
    ) -> _PartitionReader:
        """Open a reader at the snapshotted offset, or at the beginning.

        Readers built on the same worker thread share that worker's consumer.
        """
        offset = OFFSET_BEGINNING if resume_state is None else resume_state
        LOG.info(
            "reading topic=%s partition=%s from offset=%s",
            self.topic,
            for_part,
            offset,
        )
        worker = threading.get_ident()
        consumer = self._worker_consumer(worker)
        return _PartitionReader(
            consumer,
            self.topic,
            int(for_part),
            offset,
            on_close=partial(self._forget_consumer, worker),
        )

    def _worker_consumer(self, worker: int) -> WorkerConsumer:
        with self._lock:
            consumer = self._consumers.get(worker)
            if consumer is None:
                config = {
                    **LOW_LATENCY_CONSUMER,
                    "bootstrap.servers": self.bootstrap_servers,
                    "enable.partition.eof": not self.tail,
                    **self.extra_config,
                }
                consumer = WorkerConsumer(config, self.batch_size)
                self._consumers[worker] = consumer
            return consumer

    def _forget_consumer(self, worker: int) -> None:
        with self._lock:
            self._consumers.pop(worker, None)
