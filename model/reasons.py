"""Human-readable reasons why a transaction was flagged.

Each rule watches one feature in one direction ("high" or "low") and only
applies past a gate (one transaction in a minute is never a reason). How
unusual a value is comes from the training traffic: the share of training
rows at least as extreme, read off the model card's percentile grid. The up to
three rarest applicable features of a flagged row become its reasons, rarest
first; a feature that a quarter or more of training rows match is not
unusual enough to name.

Example:
    >>> book = ReasonBook({name: np.linspace(0, 2, 101) for name in REASON_FEATURES})
    >>> row = np.ones(len(FEATURE_NAMES), dtype=np.float32)
    >>> row[FEATURE_NAMES.index("txn_count_1m")] = 9
    >>> book.explain(row[None, :])
    [('9 transactions in the last minute',)]
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Final, NamedTuple

import numpy as np

from dataflows.errors import ModelError
from featurestore.definitions import FEATURE_NAMES

MAX_REASONS: Final = 3
#: A value shared by at least this share of training rows is not unusual.
MAX_TAIL_SHARE: Final = 0.25
#: Said of a flagged row when no single feature stands out.
COMBINED_REASON: Final = "unusual combination of account activity"


class ReasonRule(NamedTuple):
    """When and how to name one feature as a reason.

    Attributes:
        feature: The feature's name.
        high: True when large values are suspicious, False for small ones.
        gate: The value must be at least (``high``) or at most (not ``high``)
            this to be named at all.
        text: Turns the value into the reason's words.
    """

    feature: str
    high: bool
    gate: float
    text: Callable[[float], str]


def _seconds_after(value: float) -> str:
    unit = "second" if round(value) == 1 else "seconds"
    return f"only {value:.0f} {unit} after the previous transaction"


def _times(value: float) -> str:
    return f"{value:.0f}" if value >= 10 else f"{value:.1f}"


RULES: Final[tuple[ReasonRule, ...]] = (
    ReasonRule(
        "txn_count_1m", True, 2, lambda v: f"{v:.0f} transactions in the last minute"
    ),
    ReasonRule(
        "txn_count_10m",
        True,
        3,
        lambda v: f"{v:.0f} transactions in the last 10 minutes",
    ),
    ReasonRule(
        "txn_count_1h", True, 4, lambda v: f"{v:.0f} transactions in the last hour"
    ),
    ReasonRule(
        "txn_count_24h", True, 8, lambda v: f"{v:.0f} transactions in the last day"
    ),
    ReasonRule(
        "distinct_merchants_1h",
        True,
        3,
        lambda v: f"{v:.0f} different merchants in the last hour",
    ),
    ReasonRule(
        "distinct_countries_24h",
        True,
        2,
        lambda v: f"{v:.0f} countries in the last 24 hours",
    ),
    ReasonRule(
        "seconds_since_prev",
        False,
        120,
        _seconds_after,
    ),
    ReasonRule(
        "tiny_count_10m",
        True,
        2,
        lambda v: f"{v:.0f} card-testing sized charges in 10 minutes",
    ),
    ReasonRule(
        "amount_vs_mean",
        True,
        3,
        lambda v: f"amount {_times(v)}x the account's usual",
    ),
    ReasonRule(
        "amount_z_vs_30d",
        True,
        3,
        lambda v: f"amount {v:.1f} standard deviations above the 30-day mean",
    ),
    ReasonRule("new_device", True, 1, lambda v: "new device"),
    ReasonRule("new_country", True, 1, lambda v: "first transaction from this country"),
    ReasonRule("has_profile", False, 0, lambda v: "no history for this account"),
    ReasonRule(
        "account_age_days", False, 30, lambda v: f"account only {v:.0f} days old"
    ),
    ReasonRule(
        "is_home_country", False, 0, lambda v: "outside the account's home country"
    ),
    ReasonRule(
        "mcc_is_usual",
        False,
        0,
        lambda v: "unusual merchant category for this account",
    ),
    ReasonRule(
        "prior_chargebacks",
        True,
        1,
        lambda v: f"{v:.0f} earlier fraud reports on this account",
    ),
)

#: Features a reason can name; the model card must carry their percentiles.
REASON_FEATURES: Final = tuple(rule.feature for rule in RULES)


class ReasonBook:
    """Explains flagged rows using the training percentiles of each feature.

    Args:
        percentiles: ``{feature: sorted percentile grid}`` from the model card;
            every feature in :data:`REASON_FEATURES` must be present.

    Raises:
        ModelError: A reason feature has no percentile grid.
    """

    def __init__(self, percentiles: Mapping[str, Sequence[float]]) -> None:
        missing = [name for name in REASON_FEATURES if name not in percentiles]
        if missing:
            raise ModelError(
                f"model card reason_percentiles: expected every reason feature, "
                f"missing {missing!r}"
            )
        self._columns = np.array([FEATURE_NAMES.index(r.feature) for r in RULES])
        self._grids = [np.asarray(percentiles[r.feature], float) for r in RULES]

    def explain(self, rows: np.ndarray) -> list[tuple[str, ...]]:
        """Return up to three reasons for each row of ``rows`` ``[K, F]``."""
        if len(rows) == 0:
            return []
        tails = self._tail_shares(np.asarray(rows, dtype=np.float64))
        order = np.argsort(tails, axis=1, kind="stable")[:, :MAX_REASONS]

        explained = []
        for i, picks in enumerate(order):
            named = tuple(
                RULES[k].text(float(rows[i, self._columns[k]]))
                for k in picks
                if tails[i, k] < MAX_TAIL_SHARE
            )
            explained.append(named or (COMBINED_REASON,))
        return explained

    def _tail_shares(self, rows: np.ndarray) -> np.ndarray:
        """Share of training rows at least as extreme, ``inf`` when gated out."""
        tails = np.full((len(rows), len(RULES)), np.inf)
        for k, (rule, grid) in enumerate(zip(RULES, self._grids, strict=True)):
            values = rows[:, self._columns[k]]
            if rule.high:
                share = 1.0 - np.searchsorted(grid, values, side="left") / grid.size
                applies = values >= rule.gate
            else:
                share = np.searchsorted(grid, values, side="right") / grid.size
                applies = (values <= rule.gate) & (values >= 0)
            tails[:, k] = np.where(applies, share, np.inf)
        return tails
