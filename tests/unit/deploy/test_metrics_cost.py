"""Tests of the switch that turns metrics recording off for the cost measurement."""

from __future__ import annotations

from prometheus_client import REGISTRY

from dataflows import metrics
from deploy.metrics_cost import metrics_disabled


def scored() -> float:
    return REGISTRY.get_sample_value(
        "fraudflow_transactions_total", {"outcome": "scored"}
    )


def latency_count() -> float:
    return REGISTRY.get_sample_value("fraudflow_e2e_latency_seconds_count")


def record_one_of_everything() -> None:
    metrics.record_batch(latencies_s=[0.01], scores=[0.2], decisions=["approve"])
    metrics.E2E_LATENCY.observe_many([0.01, 0.02])
    metrics.observe_stage("onnx", 0.001)


def test_nothing_is_recorded_while_disabled_and_everything_after():
    monitor = metrics.PsiMonitor(
        {"score": {"edges": [0, 0.5, 1], "proportions": [0.5, 0.5]}},
        window=2, min_count=2, gauge=None, refresh_s=0,
    )  # fmt: skip
    before = (scored(), latency_count())
    with metrics_disabled():
        record_one_of_everything()
        assert monitor.observe({"score": [0.1, 0.9]}) == {}
    assert (scored(), latency_count()) == before

    record_one_of_everything()
    assert scored() == before[0] + 1
    assert latency_count() == before[1] + 3
    assert monitor.observe({"score": [0.1, 0.9]}) == {"score": 0.0}
    assert "observe_many" not in vars(metrics.E2E_LATENCY)
