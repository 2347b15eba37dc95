"""Tests of the population stability index and the rolling drift monitor."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry, Gauge

from dataflows.errors import ModelError
from dataflows.metrics import PsiMonitor, _RollingBins, population_stability_index

HALVES = {"edges": [0.0, 0.5, 1.0], "proportions": [0.5, 0.5]}


def test_identical_distributions_have_an_index_of_zero():
    proportions = [0.1, 0.2, 0.3, 0.4]
    assert population_stability_index(proportions, proportions) == 0.0


def test_a_known_shift_gives_its_known_index():
    # (0.25 - 0.5) ln(0.25 / 0.5) + (0.75 - 0.5) ln(0.75 / 0.5)
    want = 0.25 * math.log(2) + 0.25 * math.log(1.5)
    assert population_stability_index([0.5, 0.5], [0.25, 0.75]) == pytest.approx(want)
    assert want == pytest.approx(0.27465, abs=1e-5)


def test_an_empty_bin_gives_a_finite_index():
    assert math.isfinite(population_stability_index([0.5, 0.5], [0.0, 1.0]))


def test_monitor_publishes_nothing_before_min_count():
    monitor = PsiMonitor(
        {"score": HALVES}, window=100, min_count=10, gauge=None, refresh_s=0
    )
    assert monitor.observe({"score": [0.1] * 9}) == {}
    want = 0.4 * math.log(0.9 / 0.5) - 0.4 * math.log(0.1 / 0.5)
    assert monitor.observe({"score": [0.9]}) == {"score": pytest.approx(want, 1e-3)}


def test_monitor_sees_only_the_last_window():
    monitor = PsiMonitor(
        {"score": HALVES}, window=8, min_count=8, gauge=None, refresh_s=0
    )
    monitor.observe({"score": [0.1] * 8})
    indices = monitor.observe({"score": [0.2, 0.3, 0.6, 0.7] * 2})
    assert indices == {"score": 0.0}


def test_values_beyond_the_outer_edges_fall_into_the_end_bins():
    monitor = PsiMonitor(
        {"amount": HALVES}, window=4, min_count=4, gauge=None, refresh_s=0
    )
    assert monitor.observe({"amount": [-5.0, 0.2, 0.7, 99.0]}) == {"amount": 0.0}


def test_monitor_sets_one_gauge_per_feature_and_ignores_unknown_names():
    gauge = Gauge("psi", "PSI.", ["feature"], registry=CollectorRegistry())
    reference = {"score": HALVES, "amount": HALVES}
    monitor = PsiMonitor(reference, window=4, min_count=4, gauge=gauge, refresh_s=0)
    monitor.observe({"score": [0.1, 0.6, 0.7, 0.8], "unknown": [1.0] * 4})
    assert gauge.labels("score")._value.get() == pytest.approx(0.2747)
    assert monitor.features == ("score", "amount")
    assert [m.samples[0].labels for m in gauge.collect()] == [{"feature": "score"}]


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ({"edges": [0, 1], "proportions": [1.0]}, "n\\+1 edges for n>=2 bins"),
        ({"edges": [0, 1, 2], "proportions": [0.5, 0.25, 0.25]}, "got 3 edges"),
        ({"edges": [0, 2, 1], "proportions": [0.5, 0.5]}, "increasing edges"),
        ({"edges": [0, 1, 2], "proportions": [0.5, 0.6]}, "summing to 1"),
    ],
)
def test_a_malformed_reference_is_refused_with_its_name(spec, message):
    with pytest.raises(ModelError, match=rf"reference\['velocity'\].*{message}"):
        PsiMonitor({"velocity": spec})


def test_a_model_card_without_reference_is_refused():
    with pytest.raises(
        ModelError, match="expected a 'reference' mapping, got NoneType"
    ):
        PsiMonitor.from_model_card({"version": "1"})


def test_a_model_card_reference_builds_a_monitor():
    monitor = PsiMonitor.from_model_card(
        {"reference": {"score": HALVES}}, gauge=None, refresh_s=0
    )
    assert monitor.features == ("score",)


@settings(max_examples=60, deadline=None)
@given(
    batches=st.lists(
        st.lists(st.floats(-1.0, 2.0), max_size=30), min_size=1, max_size=12
    ),
    window=st.integers(1, 40),
)
def test_rolling_bins_equal_a_recount_of_the_last_window(batches, window):
    edges = np.array([0.0, 0.25, 0.5, 1.0])
    rolling = _RollingBins(edges, window)
    for batch in batches:
        rolling.add(batch)

    recent = np.array([v for batch in batches for v in batch][-window:])
    want = np.bincount(np.searchsorted(edges[1:-1], recent, side="right"), minlength=3)
    assert rolling.filled == recent.size
    np.testing.assert_allclose(rolling.proportions(), want / max(recent.size, 1))


def test_monitor_recomputes_at_most_once_per_refresh_interval():
    now = [0.0]
    monitor = PsiMonitor(
        {"score": HALVES}, window=4, min_count=4, gauge=None, clock=lambda: now[0]
    )
    assert monitor.observe({"score": [0.1, 0.2, 0.6, 0.7]}) == {"score": 0.0}
    shifted = monitor.observe({"score": [0.9] * 4})
    assert shifted == {"score": 0.0}

    now[0] += 1.0
    assert monitor.observe({}) == {"score": pytest.approx(4.6, abs=0.1)}
