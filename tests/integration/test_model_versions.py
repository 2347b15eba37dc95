from __future__ import annotations

from pathlib import Path

import numpy as np
import psycopg
import pytest

from dataflows.config import Settings
from featurestore.definitions import FEATURE_NAMES
from model.card import DataSummary, ModelCard
from model.registry import record_version
from model.thresholds import choose_thresholds
from model.training import evaluate, fit_booster, predict, save_model

pytestmark = pytest.mark.integration


def small_model(directory: Path) -> ModelCard:
    """Train a few trees on random rows whose label follows the first feature."""
    rng = np.random.default_rng(31)
    rows = rng.exponential(1.0, (2_000, len(FEATURE_NAMES))).astype(np.float32)
    labels = (rows[:, 0] + rng.normal(0.0, 0.3, len(rows)) > 3.0).astype(np.int8)
    booster = fit_booster(rows, labels, rounds=8)
    scores = predict(booster, rows)
    cuts = choose_thresholds(scores, alert_rate=0.05, block_rate=0.01)
    window = "2026-01-01T00:00:00+00:00"
    summary = DataSummary(window, window, window, window, 2_000, 0, 2_000, 0, 1, 1, 1)
    return save_model(
        booster, rows, summary, evaluate(scores, labels, cuts), cuts, directory
    )


def test_a_trained_version_lands_in_model_versions(
    settings: Settings, tmp_path: Path
) -> None:
    card = small_model(tmp_path)
    # The same seed trains the same model: forget it, in case an earlier
    # session on this (reused) stack recorded it.
    record_version(card, settings.database_url)
    with psycopg.connect(settings.database_url) as conn:
        conn.execute("DELETE FROM model_versions WHERE version = %s", (card.version,))

    first = record_version(card, settings.database_url)
    again = record_version(card, settings.database_url)

    with psycopg.connect(settings.database_url) as conn:
        rows = conn.execute(
            "SELECT card FROM model_versions WHERE version = %s", (card.version,)
        ).fetchall()
    assert (first, again) == (True, False)
    assert len(rows) == 1
    stored = rows[0][0]
    assert stored["version"] == card.version
    assert stored["feature_names"] == list(FEATURE_NAMES)
    assert stored["thresholds"]["review"] == card.thresholds.review
