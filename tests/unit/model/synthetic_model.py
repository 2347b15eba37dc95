"""Synthetic feature rows and a small model trained on them, saved like the real one."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from featurestore.definitions import FEATURE_NAMES
from model.card import DataSummary
from model.thresholds import choose_thresholds
from model.training import evaluate, fit_booster, predict, save_model


def column(name: str) -> int:
    return FEATURE_NAMES.index(name)


def synthetic_rows(count: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Rows of plausible feature values; fraud is bursts or big odd amounts."""
    rng = np.random.default_rng(seed)
    rows = np.zeros((count, len(FEATURE_NAMES)), dtype=np.float32)
    for name in ("txn_count_1m", "txn_count_10m", "txn_count_1h", "txn_count_24h"):
        rows[:, column(name)] = 1 + rng.poisson(0.2, count)
    rows[:, column("amount_sum_1h")] = rng.gamma(2.0, 3000.0, count)
    rows[:, column("amount_sum_24h")] = rng.gamma(3.0, 5000.0, count)
    rows[:, column("distinct_merchants_1h")] = 1 + rng.poisson(0.2, count)
    rows[:, column("distinct_countries_24h")] = 1
    rows[:, column("seconds_since_prev")] = rng.exponential(20_000.0, count)
    rows[:, column("amount_vs_mean")] = rng.lognormal(0.0, 0.5, count)
    rows[:, column("new_device")] = rng.random(count) < 0.05
    rows[:, column("new_country")] = rng.random(count) < 0.03
    rows[:, column("has_profile")] = rng.random(count) < 0.97
    rows[:, column("account_age_days")] = rng.uniform(30.0, 900.0, count)
    rows[:, column("txn_count_30d")] = rng.poisson(40.0, count)
    rows[:, column("amount_z_vs_30d")] = rng.normal(0.0, 1.0, count)
    rows[:, column("is_home_country")] = rng.random(count) < 0.95
    rows[:, column("mcc_is_usual")] = rng.random(count) < 0.8

    burst = rng.random(count) < 0.02
    rows[burst, column("txn_count_1m")] += rng.integers(3, 9, burst.sum())
    odd = rng.random(count) < 0.01
    rows[odd, column("amount_vs_mean")] *= rng.uniform(8.0, 20.0, odd.sum())
    rows[odd, column("new_country")] = 1
    return rows, (burst | odd).astype(np.int8)


def summary(train_rows: int, eval_rows: int) -> DataSummary:
    return DataSummary(
        train_start="2026-01-01T00:00:00+00:00",
        train_end="2026-01-05T23:59:59+00:00",
        eval_start="2026-01-06T00:00:00+00:00",
        eval_end="2026-01-06T23:59:59+00:00",
        train_rows=train_rows,
        train_frauds=0,
        eval_rows=eval_rows,
        eval_frauds=0,
        days=6,
        accounts=100,
        seed=1,
    )


def train_into(directory: Path, seed: int, rounds: int = 30) -> None:
    """Train a small model on synthetic rows and save it into ``directory``."""
    train, train_labels = synthetic_rows(6_000, seed)
    held_out, held_out_labels = synthetic_rows(2_000, seed + 1)
    booster = fit_booster(train, train_labels, rounds=rounds)
    scores = predict(booster, held_out)
    cuts = choose_thresholds(scores, alert_rate=0.05, block_rate=0.01)
    metrics = evaluate(scores, held_out_labels, cuts)
    save_model(
        booster, train, summary(len(train), len(held_out)), metrics, cuts, directory
    )
