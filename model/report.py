"""The quality report: the model against simpler scorers on the same days.

Three candidates score the same held-out transactions: the trained model,
the same model trained without velocity features, and the hand-written rules
of :mod:`model.baseline`. Each flags the same target share of traffic, with a
cut-off chosen on the calibration day, so recalls compare like for like. The
report gives PR-AUC (average precision), the flagged share, precision and
recall of each, recall per fraud pattern, and a precision-recall plot.

Example:
    >>> write_report(candidates, held_out_labels, patterns, directory)
    ... # doctest: +SKIP
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Final

import numpy as np
from sklearn.metrics import average_precision_score, precision_recall_curve

from model.thresholds import OperatingPoint, operating_point

REPORT_FILE: Final = "quality_report.md"
PLOT_FILE: Final = "pr_curve.png"
LEGIT: Final = "legit"


@dataclass(frozen=True)
class Candidate:
    """One scorer's held-out scores and its flagging cut-off.

    Attributes:
        name: How the report names it.
        scores: Scores of the held-out transactions.
        threshold: Cut-off flagging the target share (chosen beforehand).
    """

    name: str
    scores: np.ndarray
    threshold: float


@dataclass(frozen=True)
class Assessment:
    """How one candidate did on the held-out days."""

    name: str
    pr_auc: float
    point: OperatingPoint
    recall_by_pattern: dict[str, float]


def assess(
    candidate: Candidate, is_fraud: np.ndarray, patterns: np.ndarray
) -> Assessment:
    """Measure one candidate on labelled held-out rows."""
    flagged = candidate.scores >= candidate.threshold
    recall_by_pattern = {
        str(pattern): float(np.mean(flagged[patterns == pattern]))
        for pattern in sorted(set(patterns.tolist()) - {LEGIT})
    }
    return Assessment(
        name=candidate.name,
        pr_auc=float(average_precision_score(is_fraud, candidate.scores)),
        point=operating_point(candidate.scores, is_fraud, candidate.threshold),
        recall_by_pattern=recall_by_pattern,
    )


def write_report(
    candidates: list[Candidate],
    is_fraud: np.ndarray,
    patterns: np.ndarray,
    directory: Path,
    context: str = "",
) -> list[Assessment]:
    """Write ``quality_report.md`` and ``pr_curve.png`` into ``directory``.

    Args:
        candidates: The trained model first, then what it is compared with.
        is_fraud: Ground truth of the held-out rows.
        patterns: Fraud pattern of each row (``"legit"`` for genuine ones).
        directory: Where to write.
        context: A paragraph saying which data the numbers come from.

    Returns:
        The assessment of each candidate, in order.
    """
    assessments = [assess(c, is_fraud, patterns) for c in candidates]
    plot_pr_curves(candidates, assessments, is_fraud, directory / PLOT_FILE)
    markdown = render_report(assessments, context)
    (directory / REPORT_FILE).write_text(markdown, encoding="utf-8")
    return assessments


def render_report(assessments: list[Assessment], context: str = "") -> str:
    """Render the assessments as a Markdown report."""
    model, *others = assessments
    patterns = list(model.recall_by_pattern)
    lines = ["# Model quality on held-out days", "", context, ""]
    lines += [
        "| scorer | PR-AUC | flagged | precision | recall |",
        "|---|---:|---:|---:|---:|",
        *[_summary_row(a) for a in assessments],
        "",
        "## Recall per fraud pattern, at the same flagged share",
        "",
        "| scorer | " + " | ".join(patterns) + " |",
        "|---|" + "---:|" * len(patterns),
        *[_pattern_row(a, patterns) for a in assessments],
        "",
        "## Margins",
        "",
        *[
            f"- {model.name} over {other.name}: PR-AUC "
            f"{model.pr_auc - other.pr_auc:+.4f}."
            for other in others
        ],
        "",
        f"![Precision-recall curves]({PLOT_FILE})",
        "",
    ]
    return "\n".join(lines)


def _summary_row(assessment: Assessment) -> str:
    point = assessment.point
    return (
        f"| {assessment.name} | {assessment.pr_auc:.4f} | {point.rate:.2%} | "
        f"{point.precision:.3f} | {point.recall:.3f} |"
    )


def _pattern_row(assessment: Assessment, patterns: list[str]) -> str:
    recalls = [f"{assessment.recall_by_pattern.get(p, 0.0):.3f}" for p in patterns]
    return f"| {assessment.name} | " + " | ".join(recalls) + " |"


def plot_pr_curves(
    candidates: list[Candidate],
    assessments: list[Assessment],
    is_fraud: np.ndarray,
    path: Path,
) -> None:
    """Plot each candidate's precision-recall curve and its operating point."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    figure, axes = plt.subplots(figsize=(7, 5), dpi=110)
    for candidate, assessment in zip(candidates, assessments, strict=True):
        precision, recall, _ = precision_recall_curve(is_fraud, candidate.scores)
        label = f"{candidate.name} (PR-AUC {assessment.pr_auc:.3f})"
        (line,) = axes.plot(recall, precision, label=label, linewidth=1.5)
        point = assessment.point
        axes.plot(point.recall, point.precision, "o", color=line.get_color())

    axes.set(xlabel="recall", ylabel="precision", xlim=(0, 1), ylim=(0, 1.02))
    axes.set_title("Held-out precision and recall (dots: flagging cut-off)")
    axes.grid(alpha=0.3)
    axes.legend(loc="lower left")
    figure.tight_layout()
    figure.savefig(path, metadata={"Software": None})
    plt.close(figure)
