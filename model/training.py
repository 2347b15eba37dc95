"""Train the booster, export it with its card, and judge it on held-out days.

The pieces the training job strings together, kept free of command-line and
progress concerns so tests can run them on small synthetic frames:

* :func:`time_split` keeps the last days for evaluation, so the model is
  judged on transactions that happened after everything it learnt from;
* :func:`fit_booster` trains LightGBM deterministically (same data, same
  file);
* :func:`evaluate` measures PR-AUC, ROC-AUC and the two operating points;
* :func:`save_model` exports to ONNX, refuses an export that disagrees with
  LightGBM, and writes the model file and its card atomically.

Example:
    >>> booster = fit_booster(train_matrix, train_labels)  # doctest: +SKIP
    >>> card = save_model(booster, train_matrix, summary, metrics, cuts, directory)
    ... # doctest: +SKIP
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from importlib.metadata import version as installed_version
from pathlib import Path
from typing import Any, Final

import lightgbm as lgb
import numpy as np
import polars as pl
from sklearn.metrics import average_precision_score, roc_auc_score

from dataflows.errors import ModelError
from featurestore.definitions import DAY_MS, FEATURE_NAMES
from model.card import (
    MODEL_FILE,
    DataSummary,
    HeldOutMetrics,
    ModelCard,
    Reference,
    percentile_grid,
    reference_distribution,
    replace_file,
    write_card,
)
from model.export import (
    INPUT_NAME,
    OUTPUT_NAME,
    booster_to_onnx,
    check_parity,
    model_version,
)
from model.reasons import REASON_FEATURES
from model.thresholds import Thresholds, operating_point

logger = logging.getLogger(__name__)

#: Booster parameters. More leaves or rounds fit finer patterns and cost
#: training time and scoring time per row; ``deterministic`` with a fixed
#: thread count makes the same data give the same file.
PARAMS: Final[dict[str, Any]] = {
    "objective": "binary",
    "learning_rate": 0.1,
    "num_leaves": 31,
    "min_data_in_leaf": 100,
    "max_bin": 63,
    "feature_fraction": 0.9,
    "bagging_fraction": 0.5,
    "bagging_freq": 1,
    "lambda_l2": 1.0,
    "seed": 7,
    "deterministic": True,
    "force_row_wise": True,
    "num_threads": 2,
    "verbose": -1,
}
ROUNDS: Final = 150
#: Features watched for drift, besides the score.
DRIFT_FEATURES: Final = (
    "txn_count_1m",
    "txn_count_1h",
    "amount_sum_24h",
    "seconds_since_prev",
    "amount_vs_mean",
    "new_device",
    "new_country",
    "has_profile",
    "amount_z_vs_30d",
)
#: Rows compared between ONNX Runtime and LightGBM before a model is saved.
PARITY_ROWS: Final = 20_000
LIBRARIES: Final = ("lightgbm", "onnxmltools", "onnx", "onnxruntime", "numpy")


def time_split(
    frame: pl.DataFrame, eval_days: int, time_column: str = "event_time"
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Split rows into training and the last ``eval_days`` days of evaluation.

    Raises:
        ModelError: One side of the split would be empty.
    """
    last = frame.get_column(time_column).max()
    cut = last - pl.duration(milliseconds=eval_days * DAY_MS)
    cutoff = frame.select(cut.alias("cut")).item()
    train = frame.filter(pl.col(time_column) <= cutoff)
    held_out = frame.filter(pl.col(time_column) > cutoff)
    if train.is_empty() or held_out.is_empty():
        raise ModelError(
            f"time split: expected rows before and after {cutoff!s}, got "
            f"{train.height} and {held_out.height}"
        )
    return train, held_out


def feature_matrix(
    frame: pl.DataFrame, names: tuple[str, ...] = FEATURE_NAMES
) -> np.ndarray:
    """Return the ``names`` columns as a C-ordered float32 matrix."""
    return np.ascontiguousarray(frame.select(names).to_numpy(), dtype=np.float32)


def fit_booster(
    matrix: np.ndarray,
    labels: np.ndarray,
    names: tuple[str, ...] = FEATURE_NAMES,
    rounds: int = ROUNDS,
    params: dict[str, Any] | None = None,
    callbacks: list[Callable[..., None]] | None = None,
) -> lgb.Booster:
    """Train a binary LightGBM booster on ``matrix`` (columns ``names``).

    ``callbacks`` are LightGBM callbacks, called after every round (progress).
    """
    dataset = lgb.Dataset(
        matrix, label=labels, feature_name=list(names), free_raw_data=True
    )
    booster = lgb.train(
        {**PARAMS, **(params or {})},
        dataset,
        num_boost_round=rounds,
        callbacks=callbacks,
    )
    logger.info("booster trained rows=%d rounds=%d", len(matrix), rounds)
    return booster


def predict(booster: lgb.Booster, matrix: np.ndarray) -> np.ndarray:
    """Return the booster's fraud probability of each row as a float64 array."""
    return np.asarray(booster.predict(matrix), dtype=np.float64)


def evaluate(
    scores: np.ndarray, is_fraud: np.ndarray, thresholds: Thresholds
) -> HeldOutMetrics:
    """Measure ranking quality and both operating points on labelled rows."""
    review = operating_point(scores, is_fraud, thresholds.review)
    return HeldOutMetrics(
        pr_auc=float(average_precision_score(is_fraud, scores)),
        roc_auc=float(roc_auc_score(is_fraud, scores)),
        alert_rate=review.rate,
        review=review,
        block=operating_point(scores, is_fraud, thresholds.block),
    )


def save_model(
    booster: lgb.Booster,
    train_matrix: np.ndarray,
    data: DataSummary,
    metrics: HeldOutMetrics,
    thresholds: Thresholds,
    model_dir: Path,
) -> ModelCard:
    """Export ``booster`` to ``model_dir/model.onnx`` and write its card.

    The ONNX export is compared with LightGBM on up to
    :data:`PARITY_ROWS` training rows first; nothing is written if they
    disagree.

    Raises:
        ModelError: The export disagrees with LightGBM.
    """
    onnx_bytes = booster_to_onnx(booster, len(FEATURE_NAMES)).SerializeToString()
    check_parity(onnx_bytes, booster, _spread_rows(train_matrix, PARITY_ROWS))
    card = ModelCard(
        version=model_version(onnx_bytes),
        feature_names=list(FEATURE_NAMES),
        input_name=INPUT_NAME,
        output_name=OUTPUT_NAME,
        thresholds=thresholds,
        defaults=_medians(train_matrix),
        reason_percentiles={
            name: percentile_grid(train_matrix[:, FEATURE_NAMES.index(name)])
            for name in REASON_FEATURES
        },
        reference=_references(train_matrix, predict(booster, train_matrix)),
        data=data,
        metrics=metrics,
        hyperparameters={**PARAMS, "rounds": booster.num_trees()},
        libraries={name: installed_version(name) for name in LIBRARIES},
    )
    model_dir.mkdir(parents=True, exist_ok=True)
    replace_file(model_dir / MODEL_FILE, onnx_bytes)
    write_card(card, model_dir)
    logger.info("model saved version=%s dir=%s", card.version, model_dir)
    return card


def _spread_rows(matrix: np.ndarray, count: int) -> np.ndarray:
    """Return up to ``count`` rows spread evenly over ``matrix``."""
    if len(matrix) <= count:
        return matrix
    return matrix[np.linspace(0, len(matrix) - 1, count).astype(np.int64)]


def _medians(matrix: np.ndarray) -> dict[str, float]:
    medians = np.nan_to_num(np.nanmedian(matrix, axis=0), nan=0.0)
    return {name: float(v) for name, v in zip(FEATURE_NAMES, medians, strict=True)}


def _references(matrix: np.ndarray, scores: np.ndarray) -> dict[str, Reference]:
    references = {"score": reference_distribution(scores)}
    for name in DRIFT_FEATURES:
        column = matrix[:, FEATURE_NAMES.index(name)]
        references[name] = reference_distribution(column)
    return references
