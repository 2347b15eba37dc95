"""Decision thresholds chosen for a target alert rate, and how they perform.

A score at or above ``block`` blocks the transaction; at or above ``review``
(and below ``block``) sends it to a human; anything lower is allowed. The
thresholds are score quantiles of unlabelled traffic: ``review`` is set so
that review and block together flag ``alert_rate`` of transactions, ``block``
so that the most confident ``block_rate`` of them are blocked outright. Labels
play no part in the choice, so the operating point can be set on any day of
traffic and then judged on labelled days.

Example:
    >>> scores = np.linspace(0.0, 1.0, 1001)
    >>> chosen = choose_thresholds(scores, alert_rate=0.02, block_rate=0.005)
    >>> round(chosen.review, 3), round(chosen.block, 3)
    (0.98, 0.995)
"""

from __future__ import annotations

from typing import Final

import msgspec
import numpy as np

ALLOW: Final = "allow"
REVIEW: Final = "review"
BLOCK: Final = "block"
DECISIONS: Final = (ALLOW, REVIEW, BLOCK)

#: Share of traffic flagged for review or block: a review team's capacity.
#: More catches more fraud and costs more analyst time and friction.
DEFAULT_ALERT_RATE: Final = 0.02
#: Share blocked outright, the most confident part of the flagged share.
#: More stops more fraud before it settles and declines more good customers.
DEFAULT_BLOCK_RATE: Final = 0.005


class Thresholds(msgspec.Struct, frozen=True):
    """Score cut-offs of the review and block decisions.

    Attributes:
        review: Lowest score sent to review.
        block: Lowest score blocked; never below ``review``.
        alert_rate: Share of traffic the cut-offs were chosen to flag.
        block_rate: Share of traffic they were chosen to block.
    """

    review: float
    block: float
    alert_rate: float = DEFAULT_ALERT_RATE
    block_rate: float = DEFAULT_BLOCK_RATE

    def __post_init__(self) -> None:
        """Refuse cut-offs outside [0, 1] or a block below review."""
        if not 0.0 <= self.review <= self.block <= 1.0:
            got = f"review={self.review!r}, block={self.block!r}"
            raise ValueError(f"expected 0 <= review <= block <= 1, got {got}")


class OperatingPoint(msgspec.Struct, frozen=True):
    """How a cut-off performs on labelled transactions.

    Attributes:
        threshold: The cut-off (score at or above it is flagged).
        rate: Share of transactions flagged.
        precision: Share of flagged transactions that are fraud.
        recall: Share of fraudulent transactions flagged.
    """

    threshold: float
    rate: float
    precision: float
    recall: float


def choose_thresholds(
    scores: np.ndarray,
    alert_rate: float = DEFAULT_ALERT_RATE,
    block_rate: float = DEFAULT_BLOCK_RATE,
) -> Thresholds:
    """Pick the review and block cut-offs that flag the wanted shares.

    Args:
        scores: Scores of a representative stretch of traffic.
        alert_rate: Share to review or block, in (0, 1).
        block_rate: Share to block, in (0, ``alert_rate``].

    Returns:
        The cut-offs, with the rates they were chosen for.

    Raises:
        ValueError: The rates are out of range or there are no scores.
    """
    if not 0.0 < block_rate <= alert_rate < 1.0:
        got = f"alert_rate={alert_rate!r}, block_rate={block_rate!r}"
        raise ValueError(f"expected 0 < block_rate <= alert_rate < 1, got {got}")
    if len(scores) == 0:
        raise ValueError("expected scores to choose thresholds from, got none")

    review, block = np.quantile(
        np.asarray(scores, dtype=np.float64), [1.0 - alert_rate, 1.0 - block_rate]
    )
    return Thresholds(
        review=float(review),
        block=float(max(block, review)),
        alert_rate=alert_rate,
        block_rate=block_rate,
    )


def decisions(scores: np.ndarray, thresholds: Thresholds) -> np.ndarray:
    """Return the decision index of each score (0 allow, 1 review, 2 block)."""
    cuts = np.array([thresholds.review, thresholds.block], dtype=np.float64)
    return np.searchsorted(cuts, np.asarray(scores, dtype=np.float64), side="right")


def operating_point(
    scores: np.ndarray, is_fraud: np.ndarray, threshold: float
) -> OperatingPoint:
    """Measure the share flagged, precision and recall of one cut-off."""
    flagged = np.asarray(scores) >= threshold
    fraud = np.asarray(is_fraud).astype(bool)
    caught = int(np.count_nonzero(flagged & fraud))
    flagged_count = int(np.count_nonzero(flagged))
    return OperatingPoint(
        threshold=float(threshold),
        rate=flagged_count / max(len(flagged), 1),
        precision=caught / flagged_count if flagged_count else 0.0,
        recall=caught / max(int(np.count_nonzero(fraud)), 1),
    )
