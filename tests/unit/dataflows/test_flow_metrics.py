"""Tests of the flow's Prometheus collectors, facade and consumer-lag helper."""

from __future__ import annotations

import random
import urllib.request

import pytest
from confluent_kafka import KafkaException
from prometheus_client import REGISTRY, CollectorRegistry, Histogram, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from dataflows import metrics
from dataflows.errors import BrokerUnavailable
from dataflows.metrics import (
    LATENCY_BUCKETS,
    BatchHistogram,
    LabelGuard,
    consumer_lag,
    fetch_watermarks,
    record_batch,
    record_consumer_lag,
    record_dead_letters,
    series_names,
)
from dataflows.scoring import ScoreStep

PERSONAL_LABELS = {"account_id", "account", "pan", "card", "email", "ip", "device_id"}


def sample(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def samples_without_created(registry: CollectorRegistry) -> dict:
    found = {}
    for family in text_string_to_metric_families(generate_latest(registry).decode()):
        for s in family.samples:
            if not s.name.endswith("_created"):
                found[s.name, tuple(sorted(s.labels.items()))] = s.value
    return found


def test_batch_histogram_exposes_exactly_what_a_prometheus_histogram_would():
    rng = random.Random(7)
    values = [rng.expovariate(30) for _ in range(2_000)] + list(LATENCY_BUCKETS)
    ours, theirs = CollectorRegistry(), CollectorRegistry()
    batch = BatchHistogram("lat_seconds", "Latency.", LATENCY_BUCKETS, registry=ours)
    reference = Histogram("lat_seconds", "Latency.", buckets=LATENCY_BUCKETS,
                          registry=theirs)  # fmt: skip

    batch.observe_many(values[:1000])
    batch.observe_many(values[1000:])
    for value in values:
        reference.observe(value)

    got, want = samples_without_created(ours), samples_without_created(theirs)
    assert got.keys() == want.keys()
    for key, value in want.items():
        assert got[key] == pytest.approx(value), key


def test_batch_histogram_skips_nan_and_counts_a_bound_in_its_own_bucket():
    histogram = BatchHistogram("h", "H.", [0.1, 1.0], registry=None)
    histogram.observe_many([float("nan"), 0.1, 1.0, 1.5])
    cumulative, total = histogram.snapshot()
    assert cumulative == [1, 2, 3]
    assert total == pytest.approx(2.6)


def test_batch_histogram_refuses_the_wrong_number_of_label_values():
    histogram = BatchHistogram("h", "H.", [1.0], labelnames=("stage",), registry=None)
    with pytest.raises(ValueError, match=r"expected labels \('stage',\)"):
        histogram.observe(0.5)


def test_record_batch_counts_a_batch_once_per_metric():
    before = {
        "scored": sample("fraudflow_transactions_total", outcome="scored"),
        "alerted": sample("fraudflow_transactions_total", outcome="alerted"),
        "block": sample("fraudflow_decisions_total", decision="block"),
        "latency": sample("fraudflow_e2e_latency_seconds_count"),
        "slow": sample("fraudflow_e2e_latency_seconds_bucket", le="0.05"),
        "batches": sample("fraudflow_batch_size_count"),
        "onnx": sample("fraudflow_stage_latency_seconds_count", stage="onnx"),
    }
    record_batch(
        latencies_s=[0.004, 0.049, 0.2],
        scores=[0.01, 0.97, 0.6],
        decisions=["approve", "block", "review"],
        alerted=2,
        stage_seconds={"onnx": 0.0004, "redis": 0.0002},
    )

    def delta(key: str, name: str, **labels: str) -> float:
        return sample(name, **labels) - before[key]

    assert delta("scored", "fraudflow_transactions_total", outcome="scored") == 3
    assert delta("alerted", "fraudflow_transactions_total", outcome="alerted") == 2
    assert delta("block", "fraudflow_decisions_total", decision="block") == 1
    assert delta("latency", "fraudflow_e2e_latency_seconds_count") == 3
    assert delta("slow", "fraudflow_e2e_latency_seconds_bucket", le="0.05") == 2
    assert delta("batches", "fraudflow_batch_size_count") == 1
    assert delta("onnx", "fraudflow_stage_latency_seconds_count", stage="onnx") == 1


def test_an_empty_batch_records_no_batch_size():
    before = sample("fraudflow_batch_size_count")
    record_batch(latencies_s=[], scores=[], decisions=[])
    assert sample("fraudflow_batch_size_count") == before


def test_dead_letters_count_by_reason_and_as_an_outcome():
    name, outcome = "fraudflow_dead_letters_total", "fraudflow_transactions_total"
    reason_before = sample(name, reason="luhn_failed")
    outcome_before = sample(outcome, outcome="dead_lettered")
    record_dead_letters(["luhn_failed", "malformed_json", "luhn_failed"])
    assert sample(name, reason="luhn_failed") - reason_before == 2
    assert sample(outcome, outcome="dead_lettered") - outcome_before == 3


def test_label_guard_reports_values_past_its_limit_as_other(caplog):
    guard = LabelGuard("reason", limit=2, known=["a"])
    got = [guard("a"), guard("b"), guard("c"), guard("b"), guard("d")]
    assert got == ["a", "b", "other", "b", "other"]
    assert caplog.text.count("label values refused label=reason") == 1


def test_series_names_match_what_the_registry_exposes():
    metrics.set_model_info("test-version")
    record_consumer_lag({("t", 0): 1}, {("t", 0): (0, 1)})
    metrics.PSI.labels("score").set(0.0)
    exposed = {
        sample.name
        for collector in metrics.COLLECTORS
        for family in collector.collect()
        for sample in family.samples
        if not sample.name.endswith("_created")
    }
    assert exposed == set(series_names())


def test_no_metric_carries_a_personal_label():
    for collector in metrics.COLLECTORS:
        labelnames = getattr(collector, "_labelnames", None) or getattr(
            collector, "labelnames", ()
        )
        assert not PERSONAL_LABELS & set(labelnames), collector


def test_consumer_lag_counts_from_the_position_or_the_low_watermark():
    positions = {("tx", 0): 95, ("tx", 1): -1001, ("tx", 3): 3}
    watermarks = {
        ("tx", 0): (0, 100),
        ("tx", 1): (10, 40),
        ("tx", 2): (0, 7),
        ("tx", 3): (5, 9),
    }
    assert consumer_lag(positions, watermarks) == {
        ("tx", 0): 5,
        ("tx", 1): 30,
        ("tx", 2): 7,
        ("tx", 3): 4,
    }


def test_record_consumer_lag_publishes_one_gauge_per_partition():
    record_consumer_lag({("lagged", 2): 10}, {("lagged", 2): (0, 250)})
    lag = sample("fraudflow_consumer_lag_messages", topic="lagged", partition="2")
    assert lag == 240


class FakeConsumer:
    def __init__(self, answer):
        self.answer = answer
        self.asked = []

    def get_watermark_offsets(self, partition, timeout=None, cached=None):
        self.asked.append((partition.topic, partition.partition, cached))
        if isinstance(self.answer, Exception):
            raise self.answer
        return self.answer


def test_fetch_watermarks_asks_the_broker_not_the_cache():
    consumer = FakeConsumer((3, 12))
    assert fetch_watermarks(consumer, [("tx", 1)]) == {("tx", 1): (3, 12)}
    assert consumer.asked == [("tx", 1, False)]


@pytest.mark.parametrize("answer", [None, KafkaException("broker down")])
def test_fetch_watermarks_raises_broker_unavailable_when_unanswered(answer):
    with pytest.raises(BrokerUnavailable, match="topic 'tx' partition 0"):
        fetch_watermarks(FakeConsumer(answer), [("tx", 0)], timeout_s=0.1)


def test_metrics_server_serves_the_default_registry():
    port = metrics.start_metrics_server(0, addr="127.0.0.1")
    url = f"http://127.0.0.1:{port}/metrics"
    with urllib.request.urlopen(url, timeout=5) as response:
        body = response.read().decode()
    assert "fraudflow_e2e_latency_seconds_bucket" in body
    assert 'fraudflow_sink_errors_total{sink="postgres"}' in body


def test_observing_one_value_at_a_time_bins_like_a_whole_batch():
    values = [0.0, 0.05, 0.0500001, 0.2, 3.0, 12.0, float("nan")]
    single = BatchHistogram("one", "One.", LATENCY_BUCKETS, registry=None)
    batch = BatchHistogram("many", "Many.", LATENCY_BUCKETS, registry=None)
    for value in values:
        single.observe(value)
    batch.observe_many(values)
    assert single.snapshot() == batch.snapshot()


def test_a_refused_model_reload_is_counted():
    before = sample("fraudflow_model_reload_failures_total")
    metrics.record_model_reload_failure()
    assert sample("fraudflow_model_reload_failures_total") - before == 1


class FakeCard:
    def as_dict(self):
        reference = {"edges": [0.0, 0.5, 1.0], "proportions": [0.5, 0.5]}
        return {"reference": {"score": reference}}


class FakeScorer:
    version = "fake-model"
    card = FakeCard()


def test_the_score_step_watches_drift_over_the_configured_window():
    step = ScoreStep(store=None, scorer=FakeScorer(), drift_window=2_500)
    assert step.drift.window == 2_500
    assert step.drift.min_count == 1_000

    small = ScoreStep(store=None, scorer=FakeScorer(), drift_window=300)
    assert small.drift.window == 300
    assert small.drift.min_count == 300
