"""A rules-only fraud score: the yardstick the trained model must beat.

A handful of rules an analyst would write by hand from the same velocity and
amount features, each worth a few points; the score is the share of points
a transaction earns, with the amount ratio breaking ties. It needs no
training, so it shows how much the learnt model adds over common sense.

Example:
    >>> rows = np.ones((2, len(FEATURE_NAMES)), dtype=np.float32)
    >>> rows[1, FEATURE_NAMES.index("txn_count_1m")] = 5
    >>> scores = rules_score(rows)
    >>> bool(scores[1] > scores[0])
    True
"""

from __future__ import annotations

from typing import Final, NamedTuple

import numpy as np

from featurestore.definitions import FEATURE_NAMES


class Rule(NamedTuple):
    """A feature at or above a bound earns ``points``."""

    feature: str
    at_least: float
    points: float


RULES: Final[tuple[Rule, ...]] = (
    Rule("txn_count_1m", 3, 3.0),
    Rule("txn_count_10m", 5, 2.0),
    Rule("tiny_count_10m", 2, 2.0),
    Rule("amount_vs_mean", 5, 2.0),
    Rule("distinct_countries_24h", 2, 1.0),
    Rule("new_device", 1, 1.0),
    Rule("new_country", 1, 1.0),
)
_TOTAL: Final = sum(rule.points for rule in RULES)
#: Cap of the amount ratio in the tie-breaker, so it never outweighs a rule.
_RATIO_CAP: Final = 50.0


def rules_score(matrix: np.ndarray) -> np.ndarray:
    """Score ``[N, F]`` feature rows in [0, 1] with the hand-written rules."""
    points = np.zeros(len(matrix), dtype=np.float64)
    for rule in RULES:
        column = matrix[:, FEATURE_NAMES.index(rule.feature)]
        points += np.where(column >= rule.at_least, rule.points, 0.0)

    ratio = matrix[:, FEATURE_NAMES.index("amount_vs_mean")].astype(np.float64)
    tie_break = np.clip(np.nan_to_num(ratio), 0.0, _RATIO_CAP) / _RATIO_CAP
    return (points + tie_break) / (_TOTAL + 1.0)
