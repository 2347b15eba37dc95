"""Bytewax sinks that lose nothing: scored rows to PostgreSQL, alerts to Kafka.

Both sinks write a whole Bytewax batch at once, retry transient failures with
backoff, and after a bounded budget raise a
:class:`~dataflows.errors.DependencyUnavailable` so the flow stops and resumes
from its last snapshot instead of dropping records. Both are idempotent (rows
on ``txn_id``; alerts carry a deterministic ``alert_id``), because a resumed
flow replays up to one epoch of output.

- :class:`PostgresSink` sends each batch as one JSON document to one
  ``INSERT ... SELECT FROM jsonb_to_recordset(...) ON CONFLICT DO NOTHING``:
  one statement, one round trip, through a ``psycopg_pool`` pool.
- :class:`KafkaDeliverySink` produces each message with a delivery callback and
  polls until the broker has confirmed every one; failed messages are sent
  again until the budget runs out. (Bytewax's stock ``KafkaSink`` flushes
  without checking the outcome, so a broker outage loses its messages.)

Example:
    >>> flow = Dataflow("scoring")  # doctest: +SKIP
    >>> op.output("rows", scored, PostgresSink(settings))  # doctest: +SKIP
    >>> op.output("alerts", messages, KafkaDeliverySink(settings, "fraud-alerts"))
    ... # doctest: +SKIP
"""

from __future__ import annotations

import itertools
import logging
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from typing import Any, Final

import msgspec
import psycopg
from bytewax.outputs import DynamicSink, StatelessSinkPartition
from confluent_kafka import KafkaError, Message, Producer
from prometheus_client import Counter, Histogram
from psycopg import sql
from psycopg_pool import ConnectionPool
from tenacity import (
    RetryCallState,
    Retrying,
    retry_if_exception_type,
    stop_after_delay,
    wait_exponential_jitter,
)

from dataflows import metrics
from dataflows.config import Settings
from dataflows.errors import BrokerUnavailable, DatabaseUnavailable
from dataflows.masking import scrub_digits
from dataflows.records import Alert, DeadLetter, ScoredTransaction, scrub_text

logger = logging.getLogger(__name__)

SINK_RECORDS = Counter(
    "fraudflow_sink_records_total",
    "Records handed to a sink, by outcome (written, duplicate, retried).",
    ["sink", "outcome"],
)
SINK_BATCH_SECONDS = Histogram(
    "fraudflow_sink_batch_seconds",
    "Time to write and confirm one batch, retries included.",
    ["sink"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0, 5.0),
)

#: Column types of ``scored_transactions`` filled from :class:`ScoredTransaction`,
#: in its field order.
COLUMN_TYPES: Final = {
    "txn_id": "text",
    "account_id": "text",
    "pan_masked": "text",
    "pan_token": "text",
    "email_masked": "text",
    "email_token": "text",
    "ip_masked": "text",
    "ip_token": "text",
    "device_token": "text",
    "amount_minor": "bigint",
    "currency": "text",
    "merchant_id": "text",
    "mcc": "text",
    "merchant_country": "text",
    "channel": "text",
    "event_time": "timestamptz",
    "score": "double precision",
    "decision": "text",
    "reasons": "text[]",
    "model_version": "text",
    "features": "jsonb",
    "degraded": "boolean",
    "kafka_timestamp_ms": "bigint",
    "scored_at": "timestamptz",
}

#: ``latency_ms`` is stamped by the database as each row is inserted, so it
#: runs from the Kafka message timestamp to the write itself. A stamp taken in
#: Python could only come before the statement (missing the insert) or after
#: it (too late to store). Broker, flow and database read one host clock here;
#: across hosts the stamp carries their clock offset.
WRITE_LATENCY_MS: Final = sql.SQL(
    "extract(epoch FROM clock_timestamp()) * 1000 - kafka_timestamp_ms"
)

INSERT_ROWS: Final = sql.SQL(
    "INSERT INTO scored_transactions ({columns}, latency_ms) "
    "SELECT {columns}, {latency} "
    "FROM jsonb_to_recordset(%s::jsonb) AS batch({record}) "
    "ON CONFLICT (txn_id) DO NOTHING"
).format(
    columns=sql.SQL(", ").join(map(sql.Identifier, COLUMN_TYPES)),
    latency=WRITE_LATENCY_MS,
    record=sql.SQL(", ").join(
        sql.SQL("{} {}").format(sql.Identifier(name), sql.SQL(kind))
        for name, kind in COLUMN_TYPES.items()
    ),
)


#: Batches at least this large are written as two concurrent halves; below
#: it one statement is cheaper than a thread hand-off.
SPLIT_MIN_ROWS: Final = 200


def _log_retry(sink: str, state: RetryCallState) -> None:
    """Log a failed attempt that will be retried (tenacity ``before_sleep``)."""
    SINK_RECORDS.labels(sink, "retried").inc()
    error = state.outcome.exception() if state.outcome else None
    logger.warning(
        "retrying write sink=%s attempt=%s error=%s detail=%s",
        sink,
        state.attempt_number,
        type(error).__name__,
        scrub_text(str(error)).strip(),
    )


class ScoredRowWriter:
    """Writes batches of scored rows to ``scored_transactions``, idempotently.

    Args:
        conninfo: libpq connection string or URI.
        retry_budget_s: How long to retry transient failures before raising.
        min_size: Connections the pool keeps open.
        max_size: Most connections the pool opens.
        name: Pool name, shown in PostgreSQL's and the pool's logs.
    """

    def __init__(
        self,
        conninfo: str,
        *,
        retry_budget_s: float = 30.0,
        min_size: int = 1,
        max_size: int = 2,
        name: str = "fraudflow-sink",
    ) -> None:
        self._budget_s = retry_budget_s
        self._pool = ConnectionPool(
            conninfo,
            min_size=min_size,
            max_size=max_size,
            kwargs={"autocommit": True, "application_name": name},
            # Several attempts fit in the budget, each waiting for a connection.
            timeout=max(0.5, min(5.0, retry_budget_s / 4)),
            name=name,
            open=False,
        )
        # Open without waiting: an unreachable database is then reported by
        # the first write, inside its retry budget.
        self._pool.open(wait=False)
        self._encoder = msgspec.json.Encoder()
        # Composed once: psycopg renders a Composed query (here ~50 quoted
        # identifiers) again on every execute, 2 % of the worker at 1,000 tx/s.
        self._query = sql.SQL(INSERT_ROWS.as_string())
        # A second statement in flight needs a second connection.
        self._helper = (
            ThreadPoolExecutor(1, thread_name_prefix=name) if max_size > 1 else None
        )

    @classmethod
    def from_settings(cls, settings: Settings, name: str) -> ScoredRowWriter:
        """Build a writer from the database URL, pool sizes and retry budget."""
        return cls(
            settings.database_url,
            retry_budget_s=settings.db_retry_budget_s,
            min_size=settings.db_pool_min_size,
            max_size=settings.db_pool_max_size,
            name=name,
        )

    def write(self, rows: Sequence[ScoredTransaction]) -> int:
        """Insert rows whose ``txn_id`` is not stored yet; return how many were.

        Raises:
            DatabaseUnavailable: PostgreSQL failed for the whole retry budget.
        """
        if not rows:
            return 0
        started = time.perf_counter()
        try:
            inserted = self._write_split(rows)
        except psycopg.OperationalError as exc:
            raise self._unavailable(len(rows), exc) from exc

        SINK_RECORDS.labels("postgres", "written").inc(inserted)
        SINK_RECORDS.labels("postgres", "duplicate").inc(len(rows) - inserted)
        SINK_BATCH_SECONDS.labels("postgres").observe(time.perf_counter() - started)
        return inserted

    def _write_split(self, rows: Sequence[ScoredTransaction]) -> int:
        """Insert a large batch as two halves on two connections at once.

        PostgreSQL spends most of an insert parsing and indexing rows in one
        backend; two statements use two cores while this worker waits. Rows
        are split by a hash of their id, so a repeated id stays in one half
        and the two statements never wait on each other's rows. Both halves
        are stored (or the error raised) before this returns.
        """
        if self._helper is None or len(rows) < SPLIT_MIN_ROWS:
            return self._retrying(rows)
        halves: tuple[list[ScoredTransaction], list[ScoredTransaction]] = ([], [])
        for row in rows:
            halves[hash(row.txn_id) & 1].append(row)
        other = self._helper.submit(self._retrying, halves[1])
        try:
            inserted = self._retrying(halves[0])
        finally:
            inserted_other = other.result()
        return inserted + inserted_other

    def _retrying(self, rows: Sequence[ScoredTransaction]) -> int:
        """Insert with retries on transient failures, within the budget."""
        if not rows:
            return 0
        retrying = Retrying(
            retry=retry_if_exception_type(psycopg.OperationalError),
            wait=wait_exponential_jitter(multiplier=0.05, max=2.0, jitter=0.05),
            stop=stop_after_delay(self._budget_s),
            before_sleep=partial(_log_retry, "postgres"),
            reraise=True,
        )
        return retrying(self._insert, rows)

    def _insert(self, rows: Sequence[ScoredTransaction]) -> int:
        """One attempt: insert the batch in one statement."""
        batch = self._encoder.encode(rows)

        with self._pool.connection() as conn:
            cursor = conn.execute(self._query, (batch.decode(),), prepare=True)
            return cursor.rowcount

    def _unavailable(self, count: int, exc: Exception) -> DatabaseUnavailable:
        detail = scrub_text(str(exc)).strip()
        return DatabaseUnavailable(
            f"expected PostgreSQL to accept a batch of {count} rows within "
            f"{self._budget_s:g} s, got {type(exc).__name__}: {detail}"
        )

    def close(self) -> None:
        """Close the pool's connections."""
        if self._helper is not None:
            self._helper.shutdown()
        self._pool.close()


class _RowPartition(StatelessSinkPartition[ScoredTransaction]):
    def __init__(
        self, writer: ScoredRowWriter, clock: Callable[[], float] = time.time
    ) -> None:
        self._writer = writer
        self._clock = clock

    def write_batch(self, items: list[ScoredTransaction]) -> None:
        started = time.perf_counter()
        self._writer.write(items)
        metrics.observe_stage("postgres", time.perf_counter() - started)
        # Observed once the batch is stored, so the write itself is included.
        stored_ms = self._clock() * 1000.0
        metrics.E2E_LATENCY.observe_many(
            [(stored_ms - row.kafka_timestamp_ms) / 1000.0 for row in items]
        )

    def close(self) -> None:
        self._writer.close()


class PostgresSink(DynamicSink[ScoredTransaction]):
    """Writes :class:`ScoredTransaction` rows; each worker has its own pool."""

    def __init__(self, settings: Settings) -> None:
        """Keep the settings; connections open when a worker builds its part."""
        self._settings = settings

    def build(
        self, step_id: str, worker_index: int, worker_count: int
    ) -> StatelessSinkPartition[ScoredTransaction]:
        """Open a writer (and its pool) for one worker."""
        name = f"fraudflow-{step_id}-{worker_index}"
        return _RowPartition(ScoredRowWriter.from_settings(self._settings, name))


class OutboundMessage(msgspec.Struct, frozen=True):
    """A Kafka message ready to produce: key, value and headers."""

    key: bytes | None
    value: bytes
    headers: tuple[tuple[str, bytes], ...] = ()


_json = msgspec.json.Encoder()


def alert_message(alert: Alert) -> OutboundMessage:
    """Key an alert by account (per-account order) and tag it with its id."""
    return OutboundMessage(
        key=alert.account_id.encode(),
        value=_json.encode(alert),
        headers=(("alert_id", alert.alert_id.encode()),),
    )


def dead_letter_message(letter: DeadLetter, key: bytes | None) -> OutboundMessage:
    """Key a dead letter by its source message's key, itself scrubbed."""
    scrubbed_key = None if key is None else scrub_digits(key)
    return OutboundMessage(
        key=scrubbed_key,
        value=_json.encode(letter),
        headers=(("error_type", letter.error_type.encode()),),
    )


def producer_config(settings: Settings) -> dict[str, Any]:
    """Return librdkafka settings for a confirmed, low-latency producer.

    ``message.timeout.ms`` is a third of the delivery budget, so a message the
    broker cannot take is reported failed in time to be sent again twice.
    See librdkafka's CONFIGURATION.md for each property.
    """
    budget_ms = settings.kafka_delivery_budget_s * 1000
    return {
        "bootstrap.servers": settings.kafka_bootstrap_servers,
        "acks": "all",
        "enable.idempotence": settings.producer_idempotence,
        "linger.ms": settings.producer_linger_ms,
        "message.timeout.ms": max(1000, int(budget_ms / 3)),
        "socket.keepalive.enable": True,
        "client.id": "fraudflow-sink",
    }


_UNCONFIRMED: Final = KafkaError(KafkaError._MSG_TIMED_OUT, "not confirmed in time")


#: Errors after which a producer cannot deliver again: an idempotent producer
#: whose epoch the broker no longer accepts (seen after an outage on brokers
#: that do not support epoch bumps), or one that hit a fatal error.
_PRODUCER_BROKEN: Final = frozenset(
    {KafkaError.PRODUCER_FENCED, KafkaError.INVALID_PRODUCER_EPOCH, KafkaError._FENCED}
)


class ConfirmedProducer:
    """Produces batches and returns only when the broker confirmed all of them.

    Args:
        new_producer: Makes a producer, e.g. ``partial(Producer, config)``; called
            again to replace one that can no longer deliver.
        topic: Topic every message goes to.
        budget_s: How long one batch may take, resends included.
    """

    def __init__(
        self, new_producer: Callable[[], Producer], topic: str, budget_s: float
    ) -> None:
        self._new_producer = new_producer
        self._producer = new_producer()
        self._topic = topic
        self._budget_s = budget_s

    def send(self, messages: Sequence[OutboundMessage]) -> None:
        """Produce every message and wait for its delivery report.

        Raises:
            BrokerUnavailable: some message was not confirmed within the budget.
        """
        started = time.monotonic()
        deadline = started + self._budget_s
        pending = list(messages)
        for attempt in itertools.count(1):
            failures = self._send_once(pending, deadline)
            if not failures:
                break
            pending = [message for message, _ in failures]
            self._check_retry(failures, attempt, deadline)
            SINK_RECORDS.labels(self._topic, "retried").inc(len(pending))
            time.sleep(
                min(0.05 * 2**attempt, 1.0, max(0.0, deadline - time.monotonic()))
            )

        SINK_RECORDS.labels(self._topic, "written").inc(len(messages))
        SINK_BATCH_SECONDS.labels(self._topic).observe(time.monotonic() - started)

    def _send_once(
        self, messages: list[OutboundMessage], deadline: float
    ) -> list[tuple[OutboundMessage, KafkaError]]:
        """Produce once and collect the messages that failed or stayed unconfirmed."""
        reports: dict[int, KafkaError | None] = {}
        for index, message in enumerate(messages):
            self._produce(message, partial(_record, reports, index), deadline)

        # flush() sends at once, not after linger.ms as poll() would: the
        # worker waits for this batch anyway, so lingering only adds latency.
        self._producer.flush(max(0.0, deadline - time.monotonic()))
        while len(reports) < len(messages) and time.monotonic() < deadline:
            self._producer.poll(min(0.1, max(0.0, deadline - time.monotonic())))
        return [
            (message, error)
            for index, message in enumerate(messages)
            if (error := reports.get(index, _UNCONFIRMED)) is not None
        ]

    def _produce(
        self,
        message: OutboundMessage,
        on_delivery: Callable[..., None],
        deadline: float,
    ) -> None:
        """Hand one message to librdkafka, waiting while its queue is full."""
        while True:
            try:
                self._producer.produce(
                    self._topic,
                    message.value,
                    message.key,
                    headers=list(message.headers),
                    on_delivery=on_delivery,
                )
                return
            except BufferError:
                if time.monotonic() >= deadline:
                    on_delivery(_UNCONFIRMED, None)
                    return
                self._producer.poll(0.05)

    def _check_retry(
        self,
        failures: list[tuple[OutboundMessage, KafkaError]],
        attempt: int,
        deadline: float,
    ) -> None:
        """Raise when the budget is spent; otherwise prepare to resend."""
        error = failures[0][1]
        if time.monotonic() >= deadline:
            detail = (
                f"expected the broker to confirm {len(failures)} message(s) on "
                f"topic {self._topic!r} within {self._budget_s:g} s, got "
                f"{error.name()} after {attempt} attempt(s)"
            )
            raise BrokerUnavailable(detail)
        logger.warning(
            "resending topic=%s messages=%s attempt=%s error=%s",
            self._topic,
            len(failures),
            attempt,
            error.name(),
        )
        if error.fatal() or error.code() in _PRODUCER_BROKEN:
            self._replace_producer(error)

    def _replace_producer(self, error: KafkaError) -> None:
        """Drop a producer that cannot deliver any more and start a new one."""
        logger.warning(
            "replacing producer topic=%s error=%s fatal=%s",
            self._topic,
            error.name(),
            error.fatal(),
        )
        # Its queued messages are in ``pending`` and will be sent again.
        self._producer.purge()
        self._producer = self._new_producer()

    def close(self, timeout_s: float = 5.0) -> None:
        """Flush what is still queued."""
        self._producer.flush(timeout_s)


def _record(
    reports: dict[int, KafkaError | None],
    index: int,
    error: KafkaError | None,
    _message: Message | None,
) -> None:
    reports[index] = error


class _MessagePartition(StatelessSinkPartition[OutboundMessage]):
    def __init__(self, producer: ConfirmedProducer) -> None:
        self._producer = producer

    def write_batch(self, items: list[OutboundMessage]) -> None:
        started = time.perf_counter()
        self._producer.send(items)
        metrics.observe_stage("alert_delivery", time.perf_counter() - started)

    def close(self) -> None:
        self._producer.close()


class KafkaDeliverySink(DynamicSink[OutboundMessage]):
    """Produces :class:`OutboundMessage` items to one topic, confirmed per batch."""

    def __init__(self, settings: Settings, topic: str) -> None:
        """Keep the settings; the producer is created per worker."""
        self._settings = settings
        self._topic = topic

    def build(
        self, step_id: str, worker_index: int, worker_count: int
    ) -> StatelessSinkPartition[OutboundMessage]:
        """Create one worker's producer."""
        config = producer_config(self._settings)
        config["client.id"] = f"fraudflow-{step_id}-{worker_index}"
        budget_s = self._settings.kafka_delivery_budget_s
        producer = ConfirmedProducer(partial(Producer, config), self._topic, budget_s)
        return _MessagePartition(producer)
