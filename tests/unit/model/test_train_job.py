from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
from synthetic_model import column, synthetic_rows

from dataflows.errors import ModelError
from dataflows.simulator.history import LABEL_FILE, write_history
from model.baseline import rules_score
from model.bench import bench_scorer, sample_rows
from model.card import CARD_FILE, read_card
from model.report import (
    PLOT_FILE,
    REPORT_FILE,
    Assessment,
    Candidate,
    write_report,
)
from model.scorer import Scorer
from model.thresholds import OperatingPoint
from model.train import Options, check_margins, labelled_features, run


@pytest.fixture(scope="module")
def small_history(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("history")
    write_history(directory, days=3, accounts=400, seed=5)
    return directory


def options(history: Path, model_dir: Path, **changes: Any) -> Options:
    values: dict[str, Any] = {
        "history": history,
        "model_dir": model_dir,
        "days": 3,
        "accounts": 400,
        "seed": 5,
        "eval_days": 1,
        "calibration_days": 1,
        "alert_rate": 0.03,
        "block_rate": 0.01,
        "rounds": 15,
        "min_margin": -1.0,
    }
    return Options(**(values | changes))


def test_training_writes_a_model_the_scorer_accepts(
    small_history: Path, tmp_path: Path
) -> None:
    card = run(options(small_history, tmp_path))

    scorer = Scorer.load(tmp_path)
    assert scorer.version == card.version == read_card(tmp_path / CARD_FILE).version
    assert card.data.train_rows > card.data.eval_rows > 0
    assert (tmp_path / REPORT_FILE).read_text().count("| model |") == 2
    assert (tmp_path / PLOT_FILE).read_bytes().startswith(b"\x89PNG")


def test_training_twice_gives_the_same_file(
    small_history: Path, tmp_path: Path
) -> None:
    first = run(options(small_history, tmp_path / "a"))
    second = run(options(small_history, tmp_path / "b"))

    assert first.version == second.version


def test_a_history_without_labels_stops_training(
    small_history: Path, tmp_path: Path
) -> None:
    unlabelled = tmp_path / "unlabelled"
    unlabelled.mkdir()
    for path in small_history.iterdir():
        if path.name != LABEL_FILE:
            (unlabelled / path.name).write_bytes(path.read_bytes())

    with pytest.raises(ModelError, match="expected fraud labels"):
        labelled_features(unlabelled)


def test_the_quality_gate_refuses_a_model_no_better_than_rules(
    small_history: Path, tmp_path: Path
) -> None:
    with pytest.raises(ModelError, match="quality gate"):
        run(options(small_history, tmp_path, min_margin=1.0))


def assessment_with(name: str, pr_auc: float) -> Assessment:
    point = OperatingPoint(threshold=0.5, rate=0.01, precision=0.5, recall=0.5)
    return Assessment(name, pr_auc, point, {})


def test_margins_are_checked_against_every_comparison() -> None:
    model = assessment_with("model", 0.80)
    check_margins([model, assessment_with("rules", 0.70)], min_margin=0.05)

    with pytest.raises(ModelError, match="'no velocity'"):
        check_margins(
            [
                model,
                assessment_with("rules", 0.70),
                assessment_with("no velocity", 0.78),
            ],
            min_margin=0.05,
        )


def test_rules_score_bursts_and_big_amounts_above_ordinary_rows() -> None:
    rows, _ = synthetic_rows(500, seed=4)
    ordinary = rows[0].copy()
    ordinary[column("txn_count_1m")] = 1
    ordinary[column("txn_count_10m")] = 1
    ordinary[column("amount_vs_mean")] = 1
    ordinary[column("new_device")] = 0
    ordinary[column("new_country")] = 0
    burst = ordinary.copy()
    burst[column("txn_count_1m")] = 6
    big = ordinary.copy()
    big[column("amount_vs_mean")] = 12

    scores = rules_score(np.stack([ordinary, burst, big]))

    assert scores[1] > scores[0]
    assert scores[2] > scores[0]
    assert np.all((scores >= 0) & (scores <= 1))


def test_the_report_gives_recall_per_pattern(tmp_path: Path) -> None:
    patterns = np.array(["legit", "card_testing", "card_testing", "account_takeover"])
    is_fraud = (patterns != "legit").astype(np.int8)
    scores = np.array([0.1, 0.9, 0.2, 0.8])

    (assessment,) = write_report(
        [Candidate("model", scores, 0.5)], is_fraud, patterns, tmp_path
    )

    assert assessment.recall_by_pattern == {
        "account_takeover": 1.0,
        "card_testing": 0.5,
    }
    assert "| model | 1.000 | 0.500 |" in (tmp_path / REPORT_FILE).read_text()


def test_the_bench_reports_a_rate_per_batch_size(trained_dir: Path) -> None:
    rates = bench_scorer(trained_dir, batch_sizes=(1, 8), rows=64)

    assert set(rates) == {1, 8}
    assert all(rate > 0 for rate in rates.values())


def test_bench_rows_stay_within_the_training_range(trained_dir: Path) -> None:
    scorer = Scorer.load(trained_dir)

    rows = sample_rows(scorer, 1_000)

    for i, grid in enumerate(
        scorer.card.reason_percentiles.get(name) for name in scorer.card.feature_names
    ):
        if grid is not None:
            assert grid[0] <= rows[:, i].min() <= rows[:, i].max() <= grid[-1]
