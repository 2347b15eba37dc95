from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from model.thresholds import (
    Thresholds,
    choose_thresholds,
    decisions,
    operating_point,
)


def test_thresholds_flag_the_target_shares_of_traffic() -> None:
    scores = np.random.default_rng(0).beta(0.5, 8.0, 100_000)

    cuts = choose_thresholds(scores, alert_rate=0.015, block_rate=0.003)

    assert np.mean(scores >= cuts.review) == pytest.approx(0.015, abs=1e-4)
    assert np.mean(scores >= cuts.block) == pytest.approx(0.003, abs=1e-4)


@given(
    st.lists(st.floats(0.0, 1.0), min_size=1, max_size=200),
    st.floats(0.001, 0.5),
)
def test_block_is_never_below_review(scores: list[float], alert_rate: float) -> None:
    cuts = choose_thresholds(np.array(scores), alert_rate, alert_rate / 4)

    assert 0.0 <= cuts.review <= cuts.block <= 1.0


@pytest.mark.parametrize(
    ("alert_rate", "block_rate"), [(0.0, 0.0), (0.01, 0.02), (1.0, 0.1)]
)
def test_rates_out_of_range_are_refused(alert_rate: float, block_rate: float) -> None:
    with pytest.raises(ValueError, match="expected 0 < block_rate"):
        choose_thresholds(np.linspace(0, 1, 10), alert_rate, block_rate)


def test_a_block_cut_below_review_is_refused() -> None:
    with pytest.raises(ValueError, match="review <= block"):
        Thresholds(review=0.6, block=0.5)


def test_scores_at_a_cut_take_its_decision() -> None:
    cuts = Thresholds(review=0.5, block=0.9)

    found = decisions(np.array([0.0, 0.49, 0.5, 0.89, 0.9, 1.0]), cuts)

    assert found.tolist() == [0, 0, 1, 1, 2, 2]


def test_operating_point_counts_precision_and_recall() -> None:
    scores = np.array([0.9, 0.8, 0.7, 0.2, 0.1])
    fraud = np.array([1, 0, 1, 1, 0])

    point = operating_point(scores, fraud, threshold=0.7)

    assert point.rate == pytest.approx(3 / 5)
    assert point.precision == pytest.approx(2 / 3)
    assert point.recall == pytest.approx(2 / 3)
