"""Tests of the Kafka source's shared consumer and its partition readers.

A fake consumer stands in for librdkafka: it holds queued messages of several
partitions, answers cached watermarks, and records polls, pauses and
assignments, so the readers' bookkeeping can be checked message by message.
"""

from __future__ import annotations

import pytest
from confluent_kafka import OFFSET_BEGINNING, KafkaError
from prometheus_client import REGISTRY

from dataflows import source
from dataflows.errors import BrokerUnavailable

TOPIC = "transactions"


class FakeMessage:
    def __init__(self, partition, offset, topic=TOPIC, error=None):
        self._partition = partition
        self._offset = offset
        self._topic = topic
        self._error = error

    def error(self):
        return self._error

    def topic(self):
        return self._topic

    def partition(self):
        return self._partition

    def key(self):
        return b"acct"

    def value(self):
        return b"{}"

    def offset(self):
        return self._offset

    def timestamp(self):
        return (1, 1_700_000_000_000 + self._offset)


class FakeError:
    def __init__(self, code, fatal=False):
        self._code = code
        self._fatal = fatal

    def code(self):
        return self._code

    def fatal(self):
        return self._fatal

    def str(self):
        return f"error {self._code}"


class FakeConsumer:
    """Queued messages of any partition, and a record of what was asked."""

    def __init__(self, config):
        self.config = config
        self.queued: list[FakeMessage] = []
        self.assigned: dict[tuple[str, int], int] = {}
        self.paused: set[tuple[str, int]] = set()
        self.polls = 0
        self.cached_asks = 0
        self.high: dict[int, int] = {}
        self.closed = False

    def incremental_assign(self, partitions):
        for tp in partitions:
            self.assigned[(tp.topic, tp.partition)] = tp.offset

    def incremental_unassign(self, partitions):
        for tp in partitions:
            del self.assigned[(tp.topic, tp.partition)]

    def pause(self, partitions):
        self.paused.update((tp.topic, tp.partition) for tp in partitions)

    def resume(self, partitions):
        self.paused.difference_update((tp.topic, tp.partition) for tp in partitions)

    def consume(self, count, timeout):
        self.polls += 1
        ready = [
            m for m in self.queued if (m.topic(), m.partition()) not in self.paused
        ]
        taken = ready[:count]
        self.queued = [m for m in self.queued if m not in taken]
        return taken

    def get_watermark_offsets(self, partition, timeout=None, cached=False):
        assert cached, "the reader must not send a watermark request per batch"
        self.cached_asks += 1
        return (0, self.high.get(partition.partition, -1001))

    def close(self):
        self.closed = True


class Ticks:
    def __init__(self):
        self.now = 100.0

    def __call__(self):
        return self.now


@pytest.fixture
def shared(monkeypatch):
    monkeypatch.setattr(source, "Consumer", FakeConsumer)
    return source.WorkerConsumer({}, batch_size=10)


def readers(shared, partitions, topic=TOPIC, clock=None):
    clock = clock or Ticks()
    return [
        source._PartitionReader(shared, topic, p, OFFSET_BEGINNING, clock=clock)
        for p in partitions
    ]


def offsets(batch):
    return [record.offset for record in batch]


def test_readers_of_one_worker_share_one_consumer_and_poll_once_a_round(shared):
    fake = shared._consumer
    first, second, third = readers(shared, [0, 1, 2])
    fake.queued = [FakeMessage(p, offset) for offset in range(2) for p in (0, 2)]

    assert offsets(first.next_batch()) == [0, 1]
    assert second.next_batch() == [], "partition 1 has nothing yet"
    assert offsets(third.next_batch()) == [0, 1], "filed by the first reader's poll"
    assert fake.polls == 1
    assert set(fake.assigned) == {(TOPIC, 0), (TOPIC, 1), (TOPIC, 2)}

    for reader in (first, second, third):  # an empty round: still one poll
        assert reader.next_batch() == []
    assert fake.polls == 2


def test_a_poll_takes_up_to_a_batch_per_assigned_partition(shared):
    fake = shared._consumer
    first, _second = readers(shared, [0, 1])
    fake.queued = [FakeMessage(0, offset) for offset in range(50)]

    taken = first.next_batch()

    assert len(taken) == 20, "batch_size 10 times two partitions"


def test_a_partition_that_alone_fills_the_polls_is_not_paused(shared):
    fake = shared._consumer
    first, _second = readers(shared, [0, 1])
    fake.queued = [FakeMessage(0, offset) for offset in range(100)]

    for _ in range(3):
        assert len(first.next_batch()) == 20
        assert fake.paused == set()


def test_each_reader_keeps_its_own_offset_for_snapshots(shared):
    fake = shared._consumer
    first, second = readers(shared, [0, 1])
    fake.queued = [FakeMessage(0, 7), FakeMessage(1, 40), FakeMessage(1, 41)]

    first.next_batch(), second.next_batch()

    assert first.snapshot() == 8
    assert second.snapshot() == 42


def test_records_carry_partition_offset_and_kafka_time(shared):
    (reader,) = readers(shared, [3])
    shared._consumer.queued = [FakeMessage(3, 5)]

    (record,) = reader.next_batch()

    assert record == source.RawRecord(b"acct", b"{}", 3, 5, 1_700_000_000_005)


def test_a_partition_whose_reader_lags_is_paused_then_resumed(monkeypatch):
    monkeypatch.setattr(source, "Consumer", FakeConsumer)
    shared = source.WorkerConsumer({}, batch_size=10, max_pending=3)
    fake = shared._consumer
    first, second = readers(shared, [0, 1])
    fake.queued = [FakeMessage(1, offset) for offset in range(5)]

    first.next_batch()  # polls; partition 1's pile now holds 5 untaken

    assert (TOPIC, 1) in fake.paused
    assert offsets(second.next_batch()) == [0, 1, 2, 3, 4]
    assert (TOPIC, 1) not in fake.paused


def test_a_reader_stops_at_its_partition_end_only_after_its_pile(shared):
    fake = shared._consumer
    first, second = readers(shared, [0, 1])
    end = FakeMessage(0, -1, error=FakeError(KafkaError._PARTITION_EOF))
    fake.queued = [FakeMessage(0, 0), end, FakeMessage(1, 0)]

    assert offsets(first.next_batch()) == [0]
    with pytest.raises(StopIteration):
        first.next_batch()
    assert offsets(second.next_batch()) == [0], "the other partition goes on"


def test_the_consumer_closes_when_its_last_reader_closes(shared):
    fake = shared._consumer
    first, second = readers(shared, [0, 1])

    first.close()
    assert not fake.closed
    assert set(fake.assigned) == {(TOPIC, 1)}

    second.close()
    assert fake.closed


def test_a_fatal_consumer_error_raises_broker_unavailable(shared):
    (reader,) = readers(shared, [0])
    fatal = FakeError(KafkaError._FATAL, fatal=True)
    shared._consumer.queued = [FakeMessage(0, -1, error=fatal)]

    with pytest.raises(BrokerUnavailable, match="fatal consumer error"):
        reader.next_batch()


def test_a_transient_consumer_error_is_logged_and_reading_goes_on(shared, caplog):
    (reader,) = readers(shared, [0])
    transient = FakeError(KafkaError._TRANSPORT)
    shared._consumer.queued = [FakeMessage(0, -1, error=transient), FakeMessage(0, 0)]

    assert offsets(reader.next_batch()) == [0]
    assert "consumer error" in caplog.text


def test_source_builds_one_consumer_per_worker_thread(monkeypatch):
    monkeypatch.setattr(source, "Consumer", FakeConsumer)
    transactions = source.TransactionSource("127.0.0.1:1", TOPIC, tail=False)

    parts = [transactions.build_part("in", str(p), None) for p in range(3)]

    assert len({id(part._consumer) for part in parts}) == 1
    config = parts[0]._consumer._consumer.config
    assert config["fetch.wait.max.ms"] == 5
    assert config["enable.partition.eof"] is True
    for part in parts:
        part.close()
    assert transactions._consumers == {}, "a later run starts a fresh consumer"


def lag_of(topic, partition) -> float | None:
    labels = {"topic": topic, "partition": str(partition)}
    return REGISTRY.get_sample_value("fraudflow_consumer_lag_messages", labels)


@pytest.fixture
def lagging(shared, request):
    clock = Ticks()
    (part,) = readers(shared, [3], topic=request.node.name, clock=clock)
    return part, shared._consumer, clock


def test_the_source_publishes_lag_as_watermark_minus_next_offset(lagging):
    part, consumer, clock = lagging
    topic = part._topic
    consumer.high[3] = 25
    consumer.queued = [FakeMessage(3, offset, topic) for offset in range(25)]

    part.next_batch()
    assert lag_of(topic, 3) == 15

    part.next_batch(), part.next_batch()
    assert lag_of(topic, 3) == 15, "read again before the interval passed"

    clock.now += source.LAG_INTERVAL_S
    part.next_batch()
    assert lag_of(topic, 3) == 0


def test_the_source_reads_lag_at_most_once_per_interval(lagging):
    part, consumer, clock = lagging
    topic = part._topic
    consumer.high[3] = 1000
    consumer.queued = [FakeMessage(3, offset, topic) for offset in range(1000)]

    for _ in range(20):  # 5 s of batches, 10 messages each
        part.next_batch()
        clock.now += 0.25
    assert consumer.cached_asks == 5
    assert lag_of(topic, 3) == 1000 - 170, "read after the 17th batch"


def test_the_source_publishes_no_lag_before_any_fetch_response(lagging):
    part, consumer, _clock = lagging
    assert part.next_batch() == []
    assert consumer.cached_asks == 1
    assert lag_of(part._topic, 3) is None


def test_the_source_counts_lag_from_the_low_watermark_before_reading(lagging):
    part, consumer, _clock = lagging
    consumer.high[3] = 40
    part.next_batch()
    assert lag_of(part._topic, 3) == 40
