"""Sink plumbing that needs no broker or database: columns, config, retries."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

import pytest
from confluent_kafka import KafkaError

from dataflows import metrics
from dataflows.config import Settings
from dataflows.errors import BrokerUnavailable
from dataflows.masking import Masker
from dataflows.records import (
    ScoredTransaction,
    Verdict,
    alert_for,
    dead_letter,
    scored_transaction,
)
from dataflows.schema import example_transaction
from dataflows.sinks import (
    COLUMN_TYPES,
    ConfirmedProducer,
    OutboundMessage,
    _RowPartition,
    alert_message,
    dead_letter_message,
    producer_config,
)
from tests.pii import find_pii


class FlakyProducer:
    """Stands in for confluent_kafka.Producer: fails the first N deliveries."""

    def __init__(self, failures: int, error: KafkaError | None = None) -> None:
        self.failures = failures
        self.error = error or KafkaError(KafkaError._MSG_TIMED_OUT)
        self.queued: list[tuple[bytes, Callable[..., None]]] = []
        self.delivered: list[bytes] = []
        self.produced = 0

    def produce(self, topic, value, key, headers, on_delivery) -> None:
        self.produced += 1
        self.queued.append((value, on_delivery))

    def poll(self, timeout: float) -> int:
        queued, self.queued = self.queued, []
        for value, on_delivery in queued:
            if self.failures > 0:
                self.failures -= 1
                on_delivery(self.error, None)
            else:
                self.delivered.append(value)
                on_delivery(None, None)
        return len(queued)

    def flush(self, timeout: float) -> int:
        return self.poll(timeout)

    def purge(self) -> None:
        self.queued = []


def messages(count: int) -> list[OutboundMessage]:
    return [OutboundMessage(b"acct", f"m{i}".encode()) for i in range(count)]


def test_the_insert_covers_every_field_of_a_scored_row():
    assert list(COLUMN_TYPES) == list(ScoredTransaction.__struct_fields__)


class SlowWriter:
    """A row writer whose every write takes ``seconds`` on a fake clock."""

    def __init__(self, clock: list[float], seconds: float) -> None:
        self.clock = clock
        self.seconds = seconds

    def write(self, rows) -> int:
        self.clock[0] += self.seconds
        return len(rows)

    def close(self) -> None:
        pass


def test_end_to_end_latency_is_observed_after_the_write_so_it_includes_it():
    clock = [1_700_000_000.0]
    partition = _RowPartition(SlowWriter(clock, 0.040), clock=lambda: clock[0])
    row = scored_transaction(
        example_transaction(),
        Masker(b"k" * 32),
        Verdict(0.1, "allow", [], "m-1", {}),
        kafka_timestamp_ms=int(clock[0] * 1000) - 10,
        scored_at=datetime.now(UTC),
    )
    counts_before, sum_before = metrics.E2E_LATENCY.snapshot()

    partition.write_batch([row])

    counts_after, sum_after = metrics.E2E_LATENCY.snapshot()
    assert counts_after[-1] - counts_before[-1] == 1
    assert sum_after - sum_before == pytest.approx(0.050), "10 ms queued + 40 ms write"


def test_failed_deliveries_are_sent_again_until_confirmed():
    fake = FlakyProducer(failures=3)
    producer = ConfirmedProducer(lambda: fake, "alerts", budget_s=30.0)

    producer.send(messages(5))

    assert sorted(fake.delivered) == [f"m{i}".encode() for i in range(5)]
    assert fake.produced == 8


def test_a_batch_never_confirmed_raises_broker_unavailable():
    fake = FlakyProducer(failures=10**9)
    producer = ConfirmedProducer(lambda: fake, "alerts", budget_s=0.3)

    with pytest.raises(BrokerUnavailable, match=r"'alerts'.*_MSG_TIMED_OUT"):
        producer.send(messages(2))
    assert fake.delivered == []


@pytest.mark.parametrize(
    "error",
    [
        KafkaError(KafkaError._FATAL, "out of sequence", fatal=True),
        KafkaError(KafkaError.PRODUCER_FENCED, "epoch not accepted"),
    ],
)
def test_a_producer_that_cannot_deliver_is_replaced(error: KafkaError):
    broken = FlakyProducer(failures=10**9, error=error)
    fresh = FlakyProducer(failures=0)
    producers = iter([broken, fresh])
    producer = ConfirmedProducer(lambda: next(producers), "alerts", budget_s=30.0)

    producer.send(messages(3))

    assert broken.delivered == []
    assert len(fresh.delivered) == 3


def test_producer_settings_favour_confirmed_low_latency_delivery():
    settings = Settings(kafka_delivery_budget_s=9.0, producer_linger_ms=3.0)

    config = producer_config(settings)

    assert config["acks"] == "all"
    assert config["enable.idempotence"] is True
    assert config["linger.ms"] == 3.0
    assert config["message.timeout.ms"] == 3000


def test_an_alert_is_keyed_by_account_and_tagged_with_its_id():
    row = scored_transaction(
        example_transaction(),
        Masker(b"k" * 32),
        Verdict(0.99, "block", ["velocity"], "m-1", {}),
        kafka_timestamp_ms=0,
        scored_at=datetime(2026, 12, 1, tzinfo=UTC),
    )
    alert = alert_for(row)

    message = alert_message(alert)

    assert message.key == b"acct-000001"
    assert message.headers == (("alert_id", alert.alert_id.encode()),)
    assert find_pii(message.value.decode()) == []


def test_a_dead_letter_keeps_its_source_key_scrubbed():
    letter = dead_letter(b"{", ValueError("x"), topic="t", partition=0, offset=3)

    assert dead_letter_message(letter, b"acct-1").key == b"acct-1"
    assert dead_letter_message(letter, b"4111111111111111").key != b"4111111111111111"
    assert dead_letter_message(letter, None).key is None
