"""Prometheus metrics of the scoring flow, recorded once per micro-batch.

Every collector lives in the default ``prometheus_client`` registry, which the
Bytewax API server (``BYTEWAX_DATAFLOW_API_ENABLED=1``, port 3030) serves next
to Bytewax's own metrics; :func:`start_metrics_server` serves the same registry
when a flow runs without that server. Labels are bounded: step, stage, outcome,
reason, decision, sink, topic, partition, feature and model version. An account
id, card number, email, IP or device id is never a label.

The flow calls a small facade per batch rather than touching collectors per
transaction. ``Histogram.observe`` costs about 2.7 us a call here, which for two
per-transaction histograms is a sixth of the ~35 us budget of a transaction at
30k tx/s; :class:`BatchHistogram` bins a whole batch with numpy for well under
0.1 us a value.

Example:
    >>> record_batch(
    ...     latencies_s=[0.012, 0.018],
    ...     scores=[0.03, 0.91],
    ...     decisions=["approve", "block"],
    ...     alerted=1,
    ... )
    >>> record_dead_letters(["malformed_json"])

Drift is watched by :class:`PsiMonitor` (population stability index of the
score and key features against the model card's reference distributions), and
consumer lag by :func:`record_consumer_lag`.
"""

from __future__ import annotations

import bisect
import contextlib
import logging
import math
import threading
import time
from collections import Counter as Tally
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import Any, Final, Protocol

import numpy as np
from confluent_kafka import KafkaException, TopicPartition
from numpy.typing import ArrayLike
from prometheus_client import REGISTRY, CollectorRegistry, Counter, Gauge, Info
from prometheus_client import start_http_server as _start_http_server
from prometheus_client.metrics_core import HistogramMetricFamily, Metric
from prometheus_client.utils import floatToGoString

from dataflows.errors import BrokerUnavailable, ModelError

logger = logging.getLogger(__name__)

#: Stages timed per batch. ``alert_delivery`` ends when the broker confirms.
STAGES: Final = ("decode", "state", "redis", "onnx", "postgres", "alert_delivery")
#: Outcomes of a transaction; ``alerted`` is a subset of ``scored``.
OUTCOMES: Final = ("scored", "alerted", "dead_lettered")
#: Sinks that retry and can fail: the table, the alert topic, the DLQ topic.
SINKS: Final = ("postgres", "alerts", "dlq")

#: Dense between 1 and 100 ms, where the 50 ms objective is judged; a few
#: wide buckets up to 10 s show how bad a backlog is. 0.05 must stay a bound:
#: the latency burn-rate rules read the ``le="0.05"`` bucket.
LATENCY_BUCKETS: Final = (
    0.001, 0.002, 0.003, 0.005, 0.0075, 0.01, 0.0125, 0.015, 0.02, 0.025,
    0.03, 0.035, 0.04, 0.045, 0.05, 0.06, 0.075, 0.1, 0.25, 0.5, 1.0, 2.5,
    5.0, 10.0,
)  # fmt: skip
#: Stage times of one batch: 50 us (a Redis pipeline of a few keys) to 1 s.
STAGE_BUCKETS: Final = (
    0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025,
    0.05, 0.1, 0.25, 0.5, 1.0,
)  # fmt: skip
#: Twenty equal bins, so the dashboard heatmap shows the score distribution.
SCORE_BUCKETS: Final = tuple(round(0.05 * i, 2) for i in range(1, 21))
#: Transactions per batch, from one (a trickle) to a drained backlog.
BATCH_SIZE_BUCKETS: Final = (1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000)

#: Distinct values one label may take before new ones are reported as
#: ``other``: a guard against a programming error turning an unbounded value
#: into a label and the time-series database into a log.
MAX_LABEL_VALUES: Final = 64
OTHER: Final = "other"


class LabelGuard:
    """Admits up to ``limit`` distinct values of one label, then ``other``.

    Args:
        label: The label name, for the warning.
        limit: How many distinct values to admit.
        known: Values admitted from the start.
    """

    def __init__(
        self, label: str, limit: int = MAX_LABEL_VALUES, known: Iterable[str] = ()
    ) -> None:
        self.label = label
        self.limit = limit
        self._seen = set(known)
        self._warned = False
        self._lock = threading.Lock()

    def __call__(self, value: str) -> str:
        """Return ``value`` if admitted, else :data:`OTHER`."""
        if value in self._seen:
            return value
        with self._lock:
            if len(self._seen) < self.limit:
                self._seen.add(value)
                return value
            warn, self._warned = not self._warned, True
        if warn:  # once: the refused values may keep coming every batch
            logger.warning(
                "label values refused label=%s limit=%d reported_as=%s",
                self.label,
                self.limit,
                OTHER,
            )
        return OTHER


class BatchHistogram:
    """A Prometheus histogram observed a whole batch of values at a time.

    It exposes the same series as ``prometheus_client.Histogram``
    (``_bucket``, ``_sum``, ``_count``) but bins a batch with one numpy call.
    Label values are passed positionally, in ``labelnames`` order.

    Args:
        name: Metric name, without suffixes.
        documentation: Help text.
        buckets: Upper bounds; ``+Inf`` is added.
        labelnames: Names of the labels, if any.
        registry: Where to register; ``None`` registers nowhere.

    Example:
        >>> h = BatchHistogram("demo_seconds", "Demo.", [0.1, 1.0], registry=None)
        >>> h.observe_many([0.05, 0.5, 7.0])
        >>> h.snapshot()
        ([1, 2, 3], 7.55)
    """

    def __init__(
        self,
        name: str,
        documentation: str,
        buckets: Sequence[float],
        labelnames: Sequence[str] = (),
        registry: CollectorRegistry | None = REGISTRY,
    ) -> None:
        self.name = name
        self.documentation = documentation
        self.labelnames = tuple(labelnames)
        self._upper = np.array(sorted({*buckets, math.inf}), dtype=np.float64)
        self._bounds = self._upper.tolist()
        self._le = [floatToGoString(bound) for bound in self._bounds]
        self._counts: dict[tuple[str, ...], np.ndarray] = {}
        self._sums: dict[tuple[str, ...], float] = {}
        self._lock = threading.Lock()
        if not self.labelnames:
            self.labels()
        if registry is not None:
            registry.register(self)

    def labels(self, *labelvalues: str) -> tuple[str, ...]:
        """Create the child for these label values (so its series exist)."""
        key = tuple(labelvalues)
        if len(key) != len(self.labelnames):
            detail = f"expected labels {self.labelnames!r}, got {key!r}"
            raise ValueError(f"{self.name}: {detail}")
        with self._lock:
            if key not in self._counts:
                self._counts[key] = np.zeros(len(self._upper), dtype=np.int64)
                self._sums[key] = 0.0
        return key

    def observe_many(self, values: ArrayLike, *labelvalues: str) -> None:
        """Add every value of ``values`` (NaN is skipped)."""
        batch = np.asarray(values, dtype=np.float64).ravel()
        batch = batch[~np.isnan(batch)]
        if batch.size == 0:
            return
        # side="left": a value equal to a bound belongs in that bound's bucket.
        bins = np.searchsorted(self._upper, batch, side="left")
        counts = np.bincount(bins, minlength=len(self._upper))
        total = float(batch.sum())

        key = self.labels(*labelvalues)
        with self._lock:
            self._counts[key] += counts
            self._sums[key] += total

    def observe(self, value: float, *labelvalues: str) -> None:
        """Add one value (without numpy: a few times cheaper for one)."""
        if math.isnan(value):
            return
        index = bisect.bisect_left(self._bounds, value)
        key = self.labels(*labelvalues)
        with self._lock:
            self._counts[key][index] += 1
            self._sums[key] += value

    def snapshot(self, *labelvalues: str) -> tuple[list[int], float]:
        """Return the cumulative bucket counts and the sum of one child."""
        key = tuple(labelvalues)
        with self._lock:
            counts, total = self._counts[key].copy(), self._sums[key]
        return np.cumsum(counts).tolist(), total

    def describe(self) -> Iterator[Metric]:
        """Declare the metric family without its samples (for the registry)."""
        yield HistogramMetricFamily(
            self.name, self.documentation, labels=self.labelnames
        )

    def collect(self) -> Iterator[Metric]:
        """Yield the current samples of every child."""
        family = HistogramMetricFamily(
            self.name, self.documentation, labels=self.labelnames
        )
        with self._lock:
            children = sorted(self._counts)
        for key in children:
            cumulative, total = self.snapshot(*key)
            buckets = list(zip(self._le, cumulative, strict=True))
            family.add_metric(list(key), buckets, total)
        yield family


E2E_LATENCY = BatchHistogram(
    "fraudflow_e2e_latency_seconds",
    "Time from a transaction entering Kafka to its decision being recorded.",
    LATENCY_BUCKETS,
)
STAGE_LATENCY = BatchHistogram(
    "fraudflow_stage_latency_seconds",
    "Wall time one stage took for one micro-batch.",
    STAGE_BUCKETS,
    labelnames=("stage",),
)
SCORES = BatchHistogram(
    "fraudflow_score", "Fraud probability given by the model.", SCORE_BUCKETS
)
BATCH_SIZE = BatchHistogram(
    "fraudflow_batch_size", "Transactions scored per micro-batch.", BATCH_SIZE_BUCKETS
)
TRANSACTIONS = Counter(
    "fraudflow_transactions",
    "Transactions by outcome; alerted ones are also counted as scored.",
    ["outcome"],
)
DEAD_LETTERS = Counter(
    "fraudflow_dead_letters", "Records sent to the dead-letter topic.", ["reason"]
)
DECISIONS = Counter("fraudflow_decisions", "Scoring decisions.", ["decision"])
REDIS_DEGRADED = Counter(
    "fraudflow_redis_degraded",
    "Transactions scored with default profile features because Redis failed.",
)
SINK_RETRIES = Counter(
    "fraudflow_sink_retries", "Writes a sink retried after a failure.", ["sink"]
)
SINK_ERRORS = Counter(
    "fraudflow_sink_errors",
    "Writes a sink gave up on after its retries, or could never retry.",
    ["sink"],
)
MODEL = Info("fraudflow_model", "The model the flow scores with.")
MODEL_RELOAD_FAILURES = Counter(
    "fraudflow_model_reload_failures",
    "Replaced model files refused at reload; the previous model kept scoring.",
)
PSI = Gauge(
    "fraudflow_psi",
    "Population stability index of a rolling window against the model's "
    "reference distribution.",
    ["feature"],
)
CONSUMER_LAG = Gauge(
    "fraudflow_consumer_lag_messages",
    "Messages in a partition the flow has not taken yet (high watermark from "
    "the last fetch response - next offset to read), read at most once a "
    "second per partition. A broker's watermark request can under-report "
    "after batched (idempotent) production; fetch responses do not.",
    ["topic", "partition"],
)

#: Every collector defined here, so tests and checks can list their series.
COLLECTORS: Final = (
    E2E_LATENCY,
    STAGE_LATENCY,
    SCORES,
    BATCH_SIZE,
    TRANSACTIONS,
    DEAD_LETTERS,
    DECISIONS,
    REDIS_DEGRADED,
    SINK_RETRIES,
    SINK_ERRORS,
    MODEL,
    MODEL_RELOAD_FAILURES,
    PSI,
    CONSUMER_LAG,
)

_stage = LabelGuard("stage", known=STAGES)
_reason = LabelGuard("reason")
_decision = LabelGuard("decision")
_sink = LabelGuard("sink", known=SINKS)
_feature = LabelGuard("feature")
_topic = LabelGuard("topic")

# Children with a known, fixed set of label values are created up front, so
# their series exist (at zero) before the first event and rates are defined.
for _name in STAGES:
    STAGE_LATENCY.labels(_name)
for _name in OUTCOMES:
    TRANSACTIONS.labels(_name)
for _name in SINKS:
    SINK_RETRIES.labels(_name)
    SINK_ERRORS.labels(_name)
_SCORED = TRANSACTIONS.labels("scored")
_ALERTED = TRANSACTIONS.labels("alerted")
_DEAD_LETTERED = TRANSACTIONS.labels("dead_lettered")

_SERIES_SUFFIXES: Final = {
    "counter": ("_total",),
    "gauge": ("",),
    "histogram": ("_bucket", "_sum", "_count"),
    "info": ("_info",),
}


def series_names(collectors: Iterable[Any] = COLLECTORS) -> frozenset[str]:
    """Return the names of the series the given collectors expose.

    ``_created`` series are left out: nothing should query them.

    Example:
        >>> "fraudflow_e2e_latency_seconds_bucket" in series_names()
        True
    """
    names: set[str] = set()
    for collector in collectors:
        for family in collector.describe():
            suffixes = _SERIES_SUFFIXES[family.type]
            names.update(family.name + suffix for suffix in suffixes)
    return frozenset(names)


def record_batch(
    *,
    latencies_s: ArrayLike,
    scores: ArrayLike,
    decisions: Iterable[str],
    alerted: int = 0,
    redis_degraded: int = 0,
    stage_seconds: Mapping[str, float] | None = None,
) -> None:
    """Record one scored micro-batch.

    Args:
        latencies_s: End-to-end latency of each transaction, in seconds.
        scores: The model's fraud probability of each transaction.
        decisions: The decision of each transaction (``approve``, ...).
        alerted: How many were sent to the alert topic.
        redis_degraded: How many were scored with default profile features.
        stage_seconds: Wall time of each stage for this batch.
    """
    batch = np.asarray(scores, dtype=np.float64)
    if batch.size:
        SCORES.observe_many(batch)
        BATCH_SIZE.observe(batch.size)
        _SCORED.inc(batch.size)
    E2E_LATENCY.observe_many(latencies_s)

    for decision, count in Tally(decisions).items():
        DECISIONS.labels(_decision(decision)).inc(count)
    if alerted:
        _ALERTED.inc(alerted)
    if redis_degraded:
        REDIS_DEGRADED.inc(redis_degraded)
    for stage, seconds in (stage_seconds or {}).items():
        observe_stage(stage, seconds)


def record_dead_letters(reasons: Iterable[str]) -> None:
    """Count records sent to the dead-letter topic, one reason each."""
    for reason, count in Tally(reasons).items():
        DEAD_LETTERS.labels(_reason(reason)).inc(count)
        _DEAD_LETTERED.inc(count)


def observe_stage(stage: str, seconds: float) -> None:
    """Record the wall time one stage took for one batch."""
    STAGE_LATENCY.observe(seconds, _stage(stage))


@contextlib.contextmanager
def stage_timer(stage: str) -> Iterator[None]:
    """Time the enclosed block as one batch's pass through ``stage``.

    Example:
        >>> with stage_timer("onnx"):
        ...     pass
    """
    start = time.perf_counter()
    try:
        yield
    finally:
        observe_stage(stage, time.perf_counter() - start)


def record_sink_retry(sink: str, count: int = 1) -> None:
    """Count writes ``sink`` retried."""
    SINK_RETRIES.labels(_sink(sink)).inc(count)


def record_sink_error(sink: str, count: int = 1) -> None:
    """Count writes ``sink`` gave up on."""
    SINK_ERRORS.labels(_sink(sink)).inc(count)


def record_model_reload_failure() -> None:
    """Count a replaced model file that was refused (the old model stays)."""
    MODEL_RELOAD_FAILURES.inc()


def set_model_info(model_version: str, **details: str) -> None:
    """Publish the version (and other short facts) of the loaded model."""
    MODEL.info({"model_version": model_version, **details})


def start_metrics_server(port: int, addr: str = "0.0.0.0") -> int:  # noqa: S104
    """Serve the default registry on ``/metrics`` from a daemon thread.

    For flows run without Bytewax's API server, which serves the same
    registry on port 3030 when ``BYTEWAX_DATAFLOW_API_ENABLED=1``.

    Args:
        port: TCP port; 0 picks a free one.
        addr: Address to bind; all interfaces by default, as a pod needs.

    Returns:
        The port actually bound.
    """
    server, _thread = _start_http_server(port, addr=addr)
    bound = server.server_port
    logger.info("metrics server started addr=%s port=%d", addr, bound)
    return bound


#: Proportions are floored at this before the logarithm: an empty bin would
#: otherwise make the index infinite on a single missing value.
PSI_FLOOR: Final = 1e-4


def population_stability_index(
    expected: ArrayLike, actual: ArrayLike, floor: float = PSI_FLOOR
) -> float:
    """Return the PSI of ``actual`` proportions against ``expected`` ones.

    ``sum((actual - expected) * ln(actual / expected))`` over the bins, with
    both sides floored at ``floor``. Below 0.1 is usually read as stable,
    0.1-0.2 as a moderate shift, above 0.2 as a shift worth acting on.

    Example:
        >>> round(population_stability_index([0.5, 0.5], [0.25, 0.75]), 4)
        0.2747
    """
    want = np.clip(np.asarray(expected, dtype=np.float64), floor, None)
    got = np.clip(np.asarray(actual, dtype=np.float64), floor, None)
    return float(np.sum((got - want) * np.log(got / want)))


class _RollingBins:
    """Bin counts of the last ``window`` values of one feature.

    A ring buffer holds each value's bin; one extra bin marks empty slots,
    so evicting a slot is the same step whether it was filled or not.
    """

    def __init__(self, edges: np.ndarray, window: int) -> None:
        self.inner_edges = edges[1:-1]
        self.bins = len(edges) - 1
        self.window = window
        self._ring = np.full(window, self.bins, dtype=np.int32)
        self._counts = np.bincount(self._ring, minlength=self.bins + 1)
        self._pos = 0

    def add(self, values: ArrayLike) -> None:
        batch = np.asarray(values, dtype=np.float64).ravel()
        batch = batch[~np.isnan(batch)][-self.window :]
        if batch.size == 0:
            return
        # side="right": bin i holds edges[i] <= value < edges[i + 1]; values
        # beyond the outer edges fall into the first or last bin.
        bins = np.searchsorted(self.inner_edges, batch, side="right")
        slots = (self._pos + np.arange(bins.size)) % self.window

        evicted = self._ring[slots]
        self._counts -= np.bincount(evicted, minlength=self.bins + 1)
        self._ring[slots] = bins
        self._counts += np.bincount(bins, minlength=self.bins + 1)
        self._pos = int(slots[-1] + 1) % self.window

    @property
    def filled(self) -> int:
        return int(self.window - self._counts[self.bins])

    def proportions(self) -> np.ndarray:
        return self._counts[: self.bins] / max(self.filled, 1)


def _reference_bins(
    name: str, spec: Mapping[str, Sequence[float]]
) -> tuple[np.ndarray, np.ndarray]:
    """Validate one reference distribution; return its edges and proportions."""
    where = f"model card reference[{name!r}]"
    edges = np.asarray(spec.get("edges", ()), dtype=np.float64)
    proportions = np.asarray(spec.get("proportions", ()), dtype=np.float64)
    if proportions.size < 2 or edges.size != proportions.size + 1:
        detail = f"{edges.size} edges for {proportions.size} proportions"
        raise ModelError(f"{where}: expected n+1 edges for n>=2 bins, got {detail}")
    if np.any(np.diff(edges) <= 0):
        raise ModelError(f"{where}: expected increasing edges, got {edges.tolist()!r}")
    total = float(proportions.sum())
    if np.any(proportions < 0) or not math.isclose(total, 1.0, abs_tol=1e-3):
        detail = f"{proportions.tolist()!r} (sum {total!r})"
        raise ModelError(f"{where}: expected proportions summing to 1, got {detail}")
    return edges, proportions / total


class PsiMonitor:
    """Population stability index of rolling windows against a reference.

    Keeps the last ``window`` values of each watched feature (and of the
    score) binned on the reference's edges, and publishes the index as
    ``fraudflow_psi{feature=...}`` once ``min_count`` values have arrived.
    Thread-safe; one monitor per process is enough.

    Args:
        reference: ``{name: {"edges": [...], "proportions": [...]}}``, with
            n+1 increasing edges for n proportions summing to 1.
        window: Values kept per feature. A bigger window is steadier and
            slower to notice a shift; memory is 4 bytes a value.
        min_count: Values needed before a feature's index is published; a
            small sample gives a noisy, inflated index.
        gauge: Where to publish; ``None`` publishes nowhere.
        refresh_s: Least time between two computations of the indices. The
            window moves slowly, so once a second is plenty; 0 recomputes on
            every batch (about 40 us a feature).
        clock: Monotonic seconds; tests pass a fake.

    Raises:
        ModelError: A reference distribution is malformed.

    Example:
        >>> monitor = PsiMonitor(
        ...     {"score": {"edges": [0, 0.5, 1], "proportions": [0.5, 0.5]}},
        ...     window=4, min_count=4, gauge=None, refresh_s=0)
        >>> monitor.observe({"score": [0.1, 0.6, 0.7, 0.8]})
        {'score': 0.2747}
    """

    def __init__(
        self,
        reference: Mapping[str, Mapping[str, Sequence[float]]],
        window: int = 10_000,
        min_count: int = 1_000,
        gauge: Gauge | None = PSI,
        refresh_s: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.min_count = min(min_count, window)
        self.refresh_s = refresh_s
        self._gauge = gauge
        self._clock = clock
        self._refreshed_at = -math.inf
        self._published: dict[str, float] = {}
        self._expected: dict[str, np.ndarray] = {}
        self._rolling: dict[str, _RollingBins] = {}
        for name, spec in reference.items():
            edges, proportions = _reference_bins(name, spec)
            self._expected[name] = proportions
            self._rolling[name] = _RollingBins(edges, window)
        self._lock = threading.Lock()

    @classmethod
    def from_model_card(cls, card: Mapping[str, Any], **options: Any) -> PsiMonitor:
        """Build a monitor from a model card's ``reference`` section."""
        reference = card.get("reference")
        if not isinstance(reference, Mapping) or not reference:
            got = type(reference).__name__
            raise ModelError(f"model card: expected a 'reference' mapping, got {got}")
        return cls(reference, **options)

    @property
    def features(self) -> tuple[str, ...]:
        """The watched names, in reference order."""
        return tuple(self._rolling)

    @property
    def window(self) -> int:
        """Values kept per watched name."""
        return next(iter(self._rolling.values())).window

    def observe(self, columns: Mapping[str, ArrayLike]) -> dict[str, float]:
        """Add a batch of values per name; publish indices if ``refresh_s`` passed.

        Names without a reference are ignored.

        Returns:
            The last published index of every watched name with enough
            values, to 4 places.
        """
        with self._lock:
            for name, values in columns.items():
                if name in self._rolling:
                    self._rolling[name].add(values)
            now = self._clock()
            if now - self._refreshed_at < self.refresh_s:
                return dict(self._published)
            self._refreshed_at = now
            self._published = self._indices()
        if self._gauge is not None:
            for name, index in self._published.items():
                self._gauge.labels(_feature(name)).set(index)
        return dict(self._published)

    def _indices(self) -> dict[str, float]:
        indices = {}
        for name, rolling in self._rolling.items():
            if rolling.filled >= self.min_count:
                psi = population_stability_index(
                    self._expected[name], rolling.proportions()
                )
                indices[name] = round(psi, 4)
        return indices


class WatermarkSource(Protocol):
    """The part of a confluent-kafka ``Consumer`` the lag helper uses."""

    def get_watermark_offsets(
        self, partition: Any, timeout: float = ..., cached: bool = ...
    ) -> tuple[int, int] | None:
        """Return the low and high watermark of one partition."""


def consumer_lag(
    positions: Mapping[tuple[str, int], int],
    watermarks: Mapping[tuple[str, int], tuple[int, int]],
) -> dict[tuple[str, int], int]:
    """Return, per partition, how many messages are not yet processed.

    Args:
        positions: Next offset to process per ``(topic, partition)`` (last
            processed offset + 1, Kafka's committed-offset convention). A
            partition missing here, or with a negative offset, has
            processed nothing.
        watermarks: ``(low, high)`` watermark per ``(topic, partition)``.

    Example:
        >>> consumer_lag({("t", 0): 90}, {("t", 0): (0, 100), ("t", 1): (5, 8)})
        {('t', 0): 10, ('t', 1): 3}
    """
    lags = {}
    for key, (low, high) in watermarks.items():
        position = max(positions.get(key, low), low)
        lags[key] = max(high - position, 0)
    return lags


def record_consumer_lag(
    positions: Mapping[tuple[str, int], int],
    watermarks: Mapping[tuple[str, int], tuple[int, int]],
) -> dict[tuple[str, int], int]:
    """Compute :func:`consumer_lag` and publish it as a gauge per partition."""
    lags = consumer_lag(positions, watermarks)
    for (topic, partition), lag in lags.items():
        CONSUMER_LAG.labels(_topic(topic), str(partition)).set(lag)
    return lags


def fetch_watermarks(
    consumer: WatermarkSource,
    partitions: Iterable[tuple[str, int]],
    timeout_s: float = 1.0,
) -> dict[tuple[str, int], tuple[int, int]]:
    """Ask the broker for the current watermarks of ``partitions``.

    This is a request to the broker per partition, for tools and checks. The
    flow itself reads the cached watermarks of its fetch responses instead
    (see ``dataflows.source``): the local development broker answers this
    request with the first offset of the last record batch plus one, which
    under-reports the high watermark after batched or idempotent production.

    Raises:
        BrokerUnavailable: The broker did not answer within ``timeout_s``.
    """
    watermarks = {}
    for topic, partition in partitions:
        where = f"topic {topic!r} partition {partition}"
        try:
            offsets = consumer.get_watermark_offsets(
                TopicPartition(topic, partition), timeout=timeout_s, cached=False
            )
        except KafkaException as exc:
            raise BrokerUnavailable(f"watermarks of {where}: {exc}") from exc
        if offsets is None:
            detail = f"no answer within {timeout_s!r} s"
            raise BrokerUnavailable(f"watermarks of {where}: {detail}")
        low, high = offsets
        watermarks[topic, partition] = (low, high)
    return watermarks
