"""The model's input features: names, meanings and their fixed order.

This module is the contract between feature computation (online in the
scoring flow, offline for training) and the model. The model reads a row of
floats in exactly the order of :data:`FEATURE_NAMES`: the velocity features
first, then the profile features. Changing the order or the meaning of a
feature means retraining the model; the scorer refuses a model whose card lists
other names (see :class:`~dataflows.errors.FeatureMismatch`).

Amounts are integer minor units of the transaction's currency, summed as they
come: the simulator and the card processor report one currency per account,
so sums stay meaningful per account.

Example:
    >>> FEATURE_NAMES[:2]
    ('txn_count_1m', 'txn_count_10m')
    >>> len(FEATURE_NAMES) == len(VELOCITY_FEATURES) + len(PROFILE_FEATURES)
    True
"""

from __future__ import annotations

from typing import Final, NamedTuple


class Feature(NamedTuple):
    """One model input: its column name and what it measures."""

    name: str
    meaning: str


MINUTE_MS: Final = 60_000
HOUR_MS: Final = 60 * MINUTE_MS
DAY_MS: Final = 24 * HOUR_MS

#: An amount below this many minor units (2.00 in a two-decimal currency) is
#: "tiny": fraudsters test stolen cards with such charges.
TINY_AMOUNT_MINOR: Final = 200

#: An account whose next transaction comes this long (or longer) after its
#: previous one starts afresh: the running mean, seen devices and countries
#: restart. The flow may then discard the account's state, so online and
#: offline computation agree whether or not it did.
IDLE_RESET_MS: Final = DAY_MS

#: Value of ``seconds_since_prev`` when the account has no earlier transaction
#: (first ever, or first after an idle reset).
NO_PREVIOUS_SECONDS: Final = -1.0

#: Value of ``amount_vs_mean`` when there is no earlier amount to compare with.
NO_MEAN_RATIO: Final = 1.0

VELOCITY_FEATURES: Final[tuple[Feature, ...]] = (
    Feature("txn_count_1m", "transactions in the last minute, this one included"),
    Feature("txn_count_10m", "transactions in the last 10 minutes, this one included"),
    Feature("txn_count_1h", "transactions in the last hour, this one included"),
    Feature("txn_count_24h", "transactions in the last 24 hours, this one included"),
    Feature("amount_sum_1h", "sum of amounts (minor units) in the last hour"),
    Feature("amount_sum_24h", "sum of amounts (minor units) in the last 24 hours"),
    Feature("distinct_merchants_1h", "distinct merchant ids in the last hour"),
    Feature("distinct_countries_24h", "distinct merchant countries in 24 hours"),
    Feature("seconds_since_prev", "seconds since the previous transaction, or -1"),
    Feature("tiny_count_10m", "transactions under 200 minor units in 10 minutes"),
    Feature("amount_vs_mean", "amount / mean of all earlier amounts, or 1"),
    Feature("new_device", "1 if the account has not used this device before"),
    Feature("new_country", "1 if the account has not paid in this country before"),
)

#: Window length of each windowed velocity feature, in milliseconds. Windows
#: end at the transaction's own event time and include it: (t - length, t].
WINDOW_MS: Final[dict[str, int]] = {
    "txn_count_1m": MINUTE_MS,
    "txn_count_10m": 10 * MINUTE_MS,
    "txn_count_1h": HOUR_MS,
    "txn_count_24h": DAY_MS,
    "amount_sum_1h": HOUR_MS,
    "amount_sum_24h": DAY_MS,
    "distinct_merchants_1h": HOUR_MS,
    "distinct_countries_24h": DAY_MS,
    "tiny_count_10m": 10 * MINUTE_MS,
}

#: The longest window; state older than this (plus the allowed lateness) is
#: never read again.
LONGEST_WINDOW_MS: Final = max(WINDOW_MS.values())

PROFILE_FEATURES: Final[tuple[Feature, ...]] = (
    Feature("has_profile", "1 if a profile was found for the account, else 0"),
    Feature("account_age_days", "days since the account's first transaction"),
    Feature("txn_count_30d", "transactions in the 30 days before the profile date"),
    Feature("amount_z_vs_30d", "(amount - 30-day mean) / 30-day std dev, or 0"),
    Feature("is_home_country", "1 if paid in the account's most frequent country"),
    Feature("mcc_is_usual", "1 if the category is among the account's top ones"),
    Feature("prior_chargebacks", "fraud-labelled transactions before the profile"),
)

FEATURES: Final[tuple[Feature, ...]] = VELOCITY_FEATURES + PROFILE_FEATURES

#: Column names in model input order: the contract with the model and scorer.
FEATURE_NAMES: Final[tuple[str, ...]] = tuple(feature.name for feature in FEATURES)
VELOCITY_NAMES: Final = tuple(feature.name for feature in VELOCITY_FEATURES)
PROFILE_NAMES: Final = tuple(feature.name for feature in PROFILE_FEATURES)
