"""The scoring dataflow: Kafka transactions to stored, scored, alerted decisions.

Run it with::

    python -m bytewax.run dataflows.scoring:flow

configured from the environment (see :class:`~dataflows.config.Settings`).
Steps::

    transactions (Kafka) -> decode + mask -+-> velocity (state per account)
                                           |     -> score (Redis profiles,
                                           |        one ONNX call per batch,
                                           |        decisions and reasons)
                                           |        -> PostgreSQL rows
                                           |        -> fraud-alerts (review/block)
                                           +-> transactions-dlq (bad records)

Processes and Kafka partitions are the unit of scale: run several processes
(``-i/-a``, or ``BYTEWAX_PROCESS_ID``/``BYTEWAX_ADDRESSES``) over a topic with at
least as many partitions. Worker threads (``-w``) share one interpreter lock
and add no throughput.

Recovery (``-r DIR -s SNAPSHOT_S -b BACKUP_S`` or the ``BYTEWAX_RECOVERY_*``
variables) makes state and input offsets exactly-once; outputs are
at-least-once and made effectively-once by idempotent rows (``txn_id``) and
deterministic alert ids.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import TypeGuard, cast

import bytewax.operators as op
import numpy as np
from bytewax.dataflow import Dataflow, Stream
from bytewax.inputs import Source
from bytewax.outputs import DynamicSink

from dataflows import metrics, runtime
from dataflows.config import Settings
from dataflows.errors import ModelError
from dataflows.masking import Masker
from dataflows.pending import DecodeStep, Pending, Rejected
from dataflows.records import (
    ScoredTransaction,
    Verdict,
    alert_for,
    dead_letter,
    masked_row,
)
from dataflows.sinks import (
    KafkaDeliverySink,
    OutboundMessage,
    PostgresSink,
    alert_message,
    dead_letter_message,
)
from dataflows.source import RawRecord, TransactionSource
from dataflows.velocity_step import velocity_builder
from featurestore.definitions import FEATURE_NAMES
from featurestore.profiles import profile_features
from featurestore.store import ProfileStore
from featurestore.velocity import VelocityUpdate
from model.scorer import Scorer

LOG = logging.getLogger(__name__)

FLAGGED = frozenset({"review", "block"})

#: Features whose drift is watched, besides the score.
DRIFT_FEATURES = ("amount_vs_mean", "txn_count_1h", "amount_z_vs_30d")
_DRIFT_COLUMNS = {name: FEATURE_NAMES.index(name) for name in DRIFT_FEATURES}

Velocity = tuple[str, tuple[Pending, VelocityUpdate]]


class ScoreStep:
    """Score one micro-batch: profiles, one model call, decisions, rows.

    Args:
        store: The online profile store (one batched read per call).
        scorer: The loaded model.
        reload_every_s: Least seconds between checks for a replaced model.
        clock: Wall clock in seconds.
        drift_window: Recent values per feature the drift monitor compares
            with the model card's reference distributions.
    """

    def __init__(
        self,
        store: ProfileStore,
        scorer: Scorer,
        reload_every_s: float = 30.0,
        clock: Callable[[], float] = time.time,
        drift_window: int = 10_000,
    ):
        self.drift_window = drift_window
        self.store = store
        self.scorer = scorer
        self.reload_every_s = reload_every_s
        self.clock = clock
        self.next_reload = clock() + reload_every_s
        self.drift = metrics.PsiMonitor.from_model_card(
            scorer.card.as_dict(), window=drift_window
        )
        metrics.set_model_info(scorer.version)

    def __call__(self, items: list[Velocity]) -> list[ScoredTransaction]:
        """Score every transaction of the batch with one ONNX call."""
        if not items:
            return []
        self._maybe_reload()
        pendings = [pending for _account, (pending, _update) in items]

        started = time.perf_counter()
        lookups = self.store.read_many([p.account_id for p in pendings])
        fetched = time.perf_counter()
        matrix = np.array(
            [
                update.features
                + profile_features(
                    lookup.profile, p.amount_minor, p.mcc, p.merchant_country
                )
                for (_a, (p, update)), lookup in zip(items, lookups, strict=True)
            ],
            dtype=np.float32,
        )
        scores = self.scorer.score(matrix)
        decisions = self.scorer.decide(scores, matrix)
        scored = time.perf_counter()

        degraded = [lookup.degraded for lookup in lookups]
        rows = self._rows(pendings, matrix, scores, decisions, degraded)
        self._record(matrix, scores, rows, sum(degraded))
        metrics.observe_stage("redis", fetched - started)
        metrics.observe_stage("onnx", scored - fetched)
        return rows

    def _rows(self, pendings, matrix, scores, decisions, degraded):
        scored_at = datetime.fromtimestamp(self.clock(), UTC)
        version = self.scorer.version
        features = matrix.tolist()
        return [
            _row(p, float(s), d.decision, list(d.reasons), version, f, g, scored_at)
            for p, s, d, f, g in zip(
                pendings, scores.tolist(), decisions, features, degraded, strict=True
            )
        ]

    def _record(self, matrix, scores, rows, degraded: int) -> None:
        columns = {"score": scores}
        for name, column in _DRIFT_COLUMNS.items():
            columns[name] = matrix[:, column]
        self.drift.observe(columns)
        metrics.record_batch(
            latencies_s=[],
            scores=scores,
            decisions=[row.decision for row in rows],
            alerted=sum(row.decision in FLAGGED for row in rows),
            redis_degraded=degraded,
        )

    def _maybe_reload(self) -> None:
        now = self.clock()
        if now < self.next_reload:
            return
        self.next_reload = now + self.reload_every_s
        try:
            if self.scorer.reload_if_changed():
                metrics.set_model_info(self.scorer.version)
                self.drift = metrics.PsiMonitor.from_model_card(
                    self.scorer.card.as_dict(), window=self.drift_window
                )
        except ModelError:
            metrics.record_model_reload_failure()


def _row(
    pending: Pending,
    score: float,
    decision: str,
    reasons: list[str],
    version: str,
    features: list[float],
    degraded: bool,
    scored_at: datetime,
) -> ScoredTransaction:
    """Build the stored row of one scored transaction."""
    verdict = Verdict(
        score=score,
        decision=decision,  # type: ignore[arg-type]
        reasons=reasons,
        model_version=version,
        features=dict(zip(FEATURE_NAMES, features, strict=True)),
        degraded=degraded,
    )
    return masked_row(
        pending,
        pending.identity,
        verdict,
        event_time=datetime.fromtimestamp(pending.event_ms / 1000, UTC),
        kafka_timestamp_ms=pending.kafka_timestamp_ms,
        scored_at=scored_at,
    )


def alert_messages(rows: list[ScoredTransaction]) -> list[OutboundMessage]:
    """One alert message per review or block decision."""
    return [alert_message(alert_for(row)) for row in rows if row.decision in FLAGGED]


class DeadLetterStep:
    """Turn rejected records into scrubbed dead-letter messages.

    Args:
        topic: The source topic, named in each dead letter.
    """

    def __init__(self, topic: str):
        self.topic = topic

    def __call__(self, rejected: list[Rejected]) -> list[OutboundMessage]:
        """Build one dead-letter message per rejected record."""
        metrics.record_dead_letters(item.error.reason for item in rejected)
        return [self._message(item) for item in rejected]

    def _message(self, item: Rejected) -> OutboundMessage:
        record = item.record
        letter = dead_letter(
            record.value,
            item.error,
            topic=self.topic,
            partition=record.partition,
            offset=record.offset,
        )
        LOG.warning(
            "dead letter partition=%s offset=%s field=%s reason=%s",
            record.partition,
            record.offset,
            letter.field,
            letter.reason,
        )
        return dead_letter_message(letter, record.key)


def _is_decoded(
    item: tuple[str, Pending] | Rejected,
) -> TypeGuard[tuple[str, Pending]]:
    """Tell a decoded ``(account_id, Pending)`` pair from a rejected record."""
    return not isinstance(item, Rejected)


def build_flow(
    settings: Settings,
    source: Source[RawRecord] | None = None,
    rows_sink: DynamicSink[ScoredTransaction] | None = None,
    alerts_sink: DynamicSink[OutboundMessage] | None = None,
    dlq_sink: DynamicSink[OutboundMessage] | None = None,
    scorer: Scorer | None = None,
) -> Dataflow:
    """Build the scoring dataflow; tests may swap the source and sinks.

    Args:
        settings: Service locations, topics and tuning.
        source: Raw records; defaults to the transactions topic.
        rows_sink: Scored rows; defaults to PostgreSQL.
        alerts_sink: Alert messages; defaults to the alert topic.
        dlq_sink: Dead-letter messages; defaults to the dead-letter topic.
        scorer: The model; defaults to loading ``settings.model_dir``.

    Returns:
        The dataflow, ready for ``bytewax.run`` or ``bytewax.testing``.

    Raises:
        ConfigurationError: the masking key is unusable outside dev mode.
        ModelError: the model or its card cannot be loaded.
    """
    masker = Masker.from_settings(settings)
    scorer = scorer or Scorer.load(settings.model_dir, settings.onnx_threads)
    runtime.model_loaded(lambda: scorer.version)
    store = ProfileStore.from_url(settings.redis_url)
    source = source or TransactionSource(
        settings.kafka_bootstrap_servers,
        settings.topic_transactions,
        tail=settings.tail,
        batch_size=settings.source_batch_size,
        extra_config={"fetch.wait.max.ms": settings.fetch_wait_max_ms},
    )

    flow = Dataflow("fraudflow_scoring")
    records = op.input("transactions", flow, source)
    decoded = op.flat_map_batch("decode", records, DecodeStep(masker))
    valid = op.branch("valid", decoded, _is_decoded)
    # The branch's typing narrows only the true side; the false side holds
    # exactly the Rejected records.
    rejected = cast("Stream[Rejected]", valid.falses)
    state = op.stateful_batch("velocity", valid.trues, velocity_builder(settings))
    rows = op.flat_map_batch(
        "score",
        state,
        ScoreStep(
            store,
            scorer,
            settings.model_reload_s,
            drift_window=settings.drift_window,
        ),
    )
    alerts = op.flat_map_batch("flag", rows, alert_messages)
    dead = op.flat_map_batch(
        "reject", rejected, DeadLetterStep(settings.topic_transactions)
    )

    op.output("rows", rows, rows_sink or PostgresSink(settings))
    op.output(
        "alerts",
        alerts,
        alerts_sink or KafkaDeliverySink(settings, settings.topic_alerts),
    )
    op.output(
        "dead_letters",
        dead,
        dlq_sink or KafkaDeliverySink(settings, settings.topic_dlq),
    )
    return flow


def __getattr__(name: str) -> Dataflow:
    """Build ``flow`` on first access, so importing this module has no effects.

    ``python -m bytewax.run dataflows.scoring:flow`` reads the attribute once;
    tests import :func:`build_flow` without starting servers or loading models.
    """
    if name != "flow":
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    from dataflows import runtime

    settings = runtime.start_process()
    dataflow = build_flow(settings)
    runtime.settle_heap()
    globals()["flow"] = dataflow
    return dataflow
