"""The model card: what a model file is, what it expects and how it did.

``model_card.json`` sits next to ``model.onnx``. The scorer reads it to check
that the file is the one described (``version`` is the file's content hash)
and that the model expects the features the code computes, in the same order;
the flow reads its thresholds, reason references and drift references.
``model_card.md`` renders the same facts for people.

Reference distributions use quantile bins of the training rows: bin ``i``
holds ``edges[i] <= value < edges[i + 1]``, values past the outer edges fall
into the first or last bin, exactly as the drift monitor bins live traffic.

Example:
    >>> ref = reference_distribution(np.array([0.0, 0.0, 0.0, 1.0]))
    >>> ref.edges, ref.proportions
    ([0.0, 1.0, 2.0], [0.75, 0.25])
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Final

import msgspec
import numpy as np

from dataflows.errors import ModelError
from model.thresholds import OperatingPoint, Thresholds

MODEL_FILE: Final = "model.onnx"
CARD_FILE: Final = "model_card.json"
CARD_MARKDOWN: Final = "model_card.md"
REFERENCE_BINS: Final = 10
#: Points of the percentile grid kept per feature for ranking reasons.
PERCENTILE_POINTS: Final = 101


class Reference(msgspec.Struct, frozen=True):
    """A distribution binned on increasing edges (``len(edges) = bins + 1``)."""

    edges: list[float]
    proportions: list[float]


class DataSummary(msgspec.Struct, frozen=True):
    """Where the training and evaluation rows came from.

    Attributes:
        train_start: Event time of the first training transaction (ISO 8601).
        train_end: Event time of the last training transaction.
        eval_start: Event time of the first held-out transaction.
        eval_end: Event time of the last held-out transaction.
        train_rows: Training transactions.
        train_frauds: Fraudulent training transactions.
        eval_rows: Held-out transactions.
        eval_frauds: Fraudulent held-out transactions.
        days: Simulated days in the history.
        accounts: Simulated accounts.
        seed: Seed of the simulation.
    """

    train_start: str
    train_end: str
    eval_start: str
    eval_end: str
    train_rows: int
    train_frauds: int
    eval_rows: int
    eval_frauds: int
    days: int
    accounts: int
    seed: int


class HeldOutMetrics(msgspec.Struct, frozen=True):
    """Quality on the held-out days.

    Attributes:
        pr_auc: Area under the precision-recall curve (average precision).
        roc_auc: Area under the ROC curve.
        alert_rate: Share of held-out transactions reviewed or blocked.
        review: The review cut-off (flags review and block).
        block: The block cut-off.
    """

    pr_auc: float
    roc_auc: float
    alert_rate: float
    review: OperatingPoint
    block: OperatingPoint


class ModelCard(msgspec.Struct, frozen=True):
    """Everything the pipeline and its people need to know about one model.

    Attributes:
        version: First 12 hex digits of the SHA-256 of the ONNX file.
        feature_names: Input columns, in order.
        input_name: Name of the ONNX input (float32 ``[N, F]``).
        output_name: Name of the ONNX output (float32 ``[N]``).
        thresholds: Review and block cut-offs.
        defaults: Value used for a feature that is NaN, infinite or missing.
        reason_percentiles: Per feature, its training percentiles 0..100,
            used to tell how unusual a value is when choosing reasons.
        reference: Drift references for the score and key features.
        data: Training and evaluation windows and sizes.
        metrics: Held-out quality.
        hyperparameters: Training parameters of the booster.
        libraries: Versions of the libraries that built the file.
        model_file: File name of the ONNX model next to the card.
    """

    version: str
    feature_names: list[str]
    input_name: str
    output_name: str
    thresholds: Thresholds
    defaults: dict[str, float]
    reason_percentiles: dict[str, list[float]]
    reference: dict[str, Reference]
    data: DataSummary
    metrics: HeldOutMetrics
    hyperparameters: dict[str, Any]
    libraries: dict[str, str]
    model_file: str = MODEL_FILE

    def as_dict(self) -> dict[str, Any]:
        """Return the card as plain JSON-ready Python values."""
        return msgspec.to_builtins(self)


def reference_distribution(values: np.ndarray, bins: int = REFERENCE_BINS) -> Reference:
    """Bin ``values`` on their quantiles, with at least two bins.

    Heavily tied values (counts, 0/1 flags) collapse quantile edges; the
    distinct values then serve as edges so the result still has two or more
    bins with strictly increasing edges.
    """
    finite = np.asarray(values, dtype=np.float64)
    finite = finite[np.isfinite(finite)]
    if finite.size == 0:
        finite = np.zeros(1)

    quantiles = np.linspace(0.0, 1.0, bins + 1)
    edges = np.unique(np.quantile(finite, quantiles, method="inverted_cdf"))
    if edges.size < 3:
        distinct = np.unique(finite)
        edges = np.unique(np.concatenate([edges, distinct[:bins]]))
    if edges.size < 3:
        edges = np.unique(np.concatenate([edges, [edges[-1] + 1.0]]))
    if edges.size < 3:
        edges = np.concatenate([[edges[0] - 1.0], edges])

    counts = np.bincount(
        np.searchsorted(edges[1:-1], finite, side="right"), minlength=edges.size - 1
    )
    proportions = counts / counts.sum()
    return Reference(edges=edges.tolist(), proportions=proportions.tolist())


def percentile_grid(values: np.ndarray) -> list[float]:
    """Return the 0th..100th percentiles of the finite ``values``."""
    finite = np.asarray(values, dtype=np.float64)
    finite = finite[np.isfinite(finite)]
    if finite.size == 0:
        finite = np.zeros(1)
    return np.quantile(finite, np.linspace(0.0, 1.0, PERCENTILE_POINTS)).tolist()


def write_card(card: ModelCard, model_dir: Path) -> Path:
    """Write ``model_card.json`` (and the markdown rendering) into ``model_dir``."""
    path = model_dir / CARD_FILE
    replace_file(path, msgspec.json.format(msgspec.json.encode(card), indent=2) + b"\n")
    replace_file(model_dir / CARD_MARKDOWN, render_markdown(card).encode())
    return path


def replace_file(path: Path, content: bytes) -> None:
    """Write ``content`` to ``path`` so readers see the old or the new file."""
    partial = path.with_name(f".{path.name}.partial")
    partial.write_bytes(content)
    os.replace(partial, path)


def read_card(path: Path) -> ModelCard:
    """Read and validate a model card.

    Raises:
        ModelError: The file is missing, is not JSON or lacks a field.
    """
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise ModelError(f"model card {str(path)!r}: cannot read: {exc}") from exc
    try:
        return msgspec.json.decode(raw, type=ModelCard)
    except msgspec.DecodeError as exc:
        raise ModelError(f"model card {str(path)!r}: invalid: {exc}") from exc


def render_markdown(card: ModelCard) -> str:
    """Render the card for people, as Markdown."""
    data, metrics, cuts = card.data, card.metrics, card.thresholds
    lines = [
        f"# Model card: fraudflow scorer `{card.version}`",
        "",
        "LightGBM gradient-boosted trees exported to ONNX. Input "
        f"`{card.input_name}` (float32 `[N, {len(card.feature_names)}]`), output "
        f"`{card.output_name}` (float32 `[N]`, probability of fraud).",
        "",
        "## Data",
        "",
        f"- Simulated history: {data.days} days, {data.accounts:,} accounts, "
        f"seed {data.seed}.",
        f"- Training: {data.train_start} to {data.train_end}, "
        f"{data.train_rows:,} transactions, {data.train_frauds:,} fraudulent.",
        f"- Held out: {data.eval_start} to {data.eval_end}, "
        f"{data.eval_rows:,} transactions, {data.eval_frauds:,} fraudulent.",
        "",
        "## Held-out quality",
        "",
        f"- PR-AUC {metrics.pr_auc:.4f}, ROC-AUC {metrics.roc_auc:.4f}.",
        *_operating_lines(metrics),
        "",
        "## Decisions",
        "",
        f"- Review at score >= {cuts.review:.6f}, block at >= {cuts.block:.6f}.",
        f"- Chosen to flag {cuts.alert_rate:.2%} of traffic and block "
        f"{cuts.block_rate:.2%}, the most confident part, as score quantiles of "
        "the calibration day between the training and held-out days (labels "
        "play no part in the choice).",
        "- Flagged transactions carry up to three reasons: the features whose "
        "values are rarest in the training traffic.",
        "",
        "## Intended use and limits",
        "",
        "- Trained on simulated card traffic; retrain on real labelled history "
        "before relying on it.",
        "- Watch drift: `reference` in `model_card.json` holds the training "
        "distribution of the score and key features (10 quantile bins).",
        "",
        "## Features, in input order",
        "",
        *[f"{i}. `{name}`" for i, name in enumerate(card.feature_names)],
        "",
        "## Built with",
        "",
        *[f"- {name} {version}" for name, version in sorted(card.libraries.items())],
        "",
    ]
    return "\n".join(lines)


def _operating_lines(metrics: HeldOutMetrics) -> list[str]:
    lines = [f"- Alert rate (review or block): {metrics.alert_rate:.2%}."]
    for name, point in (("review", metrics.review), ("block", metrics.block)):
        lines.append(
            f"- At the {name} cut-off: precision {point.precision:.3f}, "
            f"recall {point.recall:.3f}, {point.rate:.2%} of traffic."
        )
    return lines
