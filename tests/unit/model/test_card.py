from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from dataflows.errors import ModelError
from dataflows.metrics import PsiMonitor
from featurestore.definitions import FEATURE_NAMES
from model.card import (
    CARD_FILE,
    CARD_MARKDOWN,
    percentile_grid,
    read_card,
    reference_distribution,
)
from model.export import model_version


@given(st.lists(st.floats(-1e6, 1e6), min_size=1, max_size=300))
def test_references_have_two_or_more_bins_on_increasing_edges(
    values: list[float],
) -> None:
    reference = reference_distribution(np.array(values))

    assert len(reference.edges) == len(reference.proportions) + 1
    assert len(reference.proportions) >= 2
    assert np.all(np.diff(reference.edges) > 0)
    assert sum(reference.proportions) == pytest.approx(1.0)


def test_a_continuous_feature_gets_ten_even_bins() -> None:
    values = np.random.default_rng(1).normal(size=10_000)

    reference = reference_distribution(values)

    assert len(reference.proportions) == 10
    assert np.allclose(reference.proportions, 0.1, atol=0.002)


def test_a_flag_gets_one_bin_per_value() -> None:
    reference = reference_distribution(np.array([0.0] * 9 + [1.0]))

    assert reference.proportions == [0.9, 0.1]


def test_percentile_grids_ignore_non_finite_values() -> None:
    grid = percentile_grid(np.array([np.nan, 1.0, np.inf, 3.0]))

    assert len(grid) == 101
    assert grid[0] == 1.0
    assert grid[-1] == 3.0


def test_the_saved_card_describes_its_model_file(trained_dir: Path) -> None:
    card = read_card(trained_dir / CARD_FILE)

    assert card.version == model_version((trained_dir / card.model_file).read_bytes())
    assert tuple(card.feature_names) == FEATURE_NAMES
    assert card.version in (trained_dir / CARD_MARKDOWN).read_text()


def test_the_card_references_feed_the_drift_monitor(trained_dir: Path) -> None:
    card = read_card(trained_dir / CARD_FILE)

    monitor = PsiMonitor.from_model_card(card.as_dict(), gauge=None)

    assert "score" in monitor.features
    assert "txn_count_1m" in monitor.features


def test_a_card_missing_a_field_is_refused(tmp_path: Path) -> None:
    path = tmp_path / CARD_FILE
    path.write_text('{"version": "abc"}')

    with pytest.raises(ModelError, match="invalid"):
        read_card(path)
