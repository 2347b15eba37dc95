"""Labelled fraud episodes and the ground-truth record that names them.

A fraud *episode* is a short run of transactions on one victim's card that
follows a recognisable pattern:

``card_testing``
    A fraudster checks a stolen card with a burst of tiny online payments at
    many different merchants, from a device and address the holder never used.
``account_takeover``
    Someone logs in from a new device in another country, makes a small probe
    payment, then buys expensive, easily resold goods.
``high_velocity``
    Many ordinary-looking local purchases within minutes.
``category_anomaly``
    Sudden gambling (MCC 7995) or crypto-exchange (MCC 6051) spending.

Ground truth never travels inside a transaction: each one gets a separate
:class:`Label`, published on its own topic.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Final, Literal, NamedTuple

import msgspec
import numpy as np

from dataflows.schema import CHANNELS
from dataflows.simulator import catalog
from dataflows.simulator.accounts import Accounts

Pattern = Literal[
    "legit", "card_testing", "account_takeover", "high_velocity", "category_anomaly"
]
PATTERNS: Final[tuple[str, ...]] = Pattern.__args__  # type: ignore[attr-defined]
LEGIT: Final = 0

ECOMMERCE: Final = CHANNELS.index("ecommerce")


class Label(msgspec.Struct, frozen=True, gc=False):
    """Ground truth for one simulated transaction.

    Keyed like the transaction (by account id) on the labels topic, so a
    consumer can join the two streams on ``txn_id``.
    """

    txn_id: str
    account_id: str
    is_fraud: bool
    pattern: Pattern
    event_time: datetime


class Row(NamedTuple):
    """One fraudulent transaction before it is merged into a batch."""

    event_ms: int
    account: int
    pattern: int
    amount_minor: int
    merchant: int
    channel: int
    currency_country: int
    device_id: str
    ip: str


class Purchase(NamedTuple):
    """What a fraudulent transaction buys, before it is given a time."""

    amount_minor: int
    merchant: int
    channel: int
    currency_country: int


@dataclass(frozen=True)
class PatternSpec:
    """How often a pattern occurs and how long its episodes are.

    Attributes:
        share: Fraction of all fraudulent transactions that follow it.
        length: Inclusive range of transactions per episode.
        gap_s: Mean seconds between transactions of an episode.
    """

    share: float
    length: tuple[int, int]
    gap_s: float

    @property
    def mean_length(self) -> float:
        """Return the mean number of transactions per episode."""
        return sum(self.length) / 2


SPECS: Final = {
    "card_testing": PatternSpec(0.30, (8, 24), 15.0),
    "account_takeover": PatternSpec(0.20, (3, 6), 120.0),
    "high_velocity": PatternSpec(0.30, (10, 30), 20.0),
    "category_anomaly": PatternSpec(0.20, (2, 6), 600.0),
}


class EpisodeMaker:
    """Builds fraud episodes against the accounts and merchants of a world."""

    def __init__(
        self,
        rng: np.random.Generator,
        accounts: Accounts,
        merchants: catalog.MerchantCatalog,
    ) -> None:
        """Remember the shared generator, accounts and merchants."""
        self._rng = rng
        self._accounts = accounts
        self._merchants = merchants
        self._builders: dict[str, Callable[[int, list[int]], list[Row]]] = {
            "card_testing": self._card_testing,
            "account_takeover": self._account_takeover,
            "high_velocity": self._high_velocity,
            "category_anomaly": self._category_anomaly,
        }

    def episodes(self, start_ms: int, end_ms: int, expected: float) -> list[Row]:
        """Draw the episodes starting in ``[start_ms, end_ms)``.

        Args:
            start_ms: Start of the time slice, epoch milliseconds.
            end_ms: End of the time slice (exclusive).
            expected: Expected number of fraudulent transactions in the slice.

        Returns:
            Every row of every episode, possibly running past ``end_ms``.
        """
        rows: list[Row] = []
        for name, spec in SPECS.items():
            count = self._rng.poisson(expected * spec.share / spec.mean_length)
            for _ in range(count):
                start = int(self._rng.integers(start_ms, end_ms))
                rows += self._episode(name, spec, start)
        return rows

    def _episode(self, name: str, spec: PatternSpec, start_ms: int) -> list[Row]:
        """Draw one episode of pattern ``name`` on a random victim."""
        victim = int(self._rng.integers(len(self._accounts)))
        length = int(self._rng.integers(spec.length[0], spec.length[1] + 1))
        gaps = self._rng.exponential(spec.gap_s * 1000, length)
        gaps[0] = 0.0
        times = (start_ms + np.cumsum(gaps)).astype(np.int64).tolist()
        return self._builders[name](victim, times)

    def _local_merchant(self, country: int) -> int:
        """Return a random everyday merchant of ``country``."""
        merchants = self._merchants
        offset = int(self._rng.integers(merchants.count[country]))
        return int(merchants.start[country]) + offset

    def _typical_usd(self, victim: int) -> float:
        """Return one draw of the victim's usual spending, in dollars."""
        accounts = self._accounts
        log_amount = self._rng.normal(
            accounts.log_spend[victim], accounts.spread[victim]
        )
        return float(np.exp(log_amount))

    def _minor(self, usd: float, country: int) -> int:
        """Convert dollars to minor units of a country's currency (at least 1)."""
        return max(1, round(usd * catalog.MINOR_PER_USD[country]))

    def _stranger(self, country: int) -> tuple[str, str]:
        """Return a device and an address the victim has never used."""
        device = f"dev-{int(self._rng.integers(1 << 62)):016x}"
        return device, catalog.ip_in(country, int(self._rng.integers(1 << 16)))

    def _rows(
        self,
        victim: int,
        pattern: str,
        times: list[int],
        purchases: list[Purchase],
        identity: tuple[str, str],
    ) -> list[Row]:
        """Stamp purchases with times, victim, pattern, device and address."""
        index = PATTERNS.index(pattern)
        return [
            Row(event_ms, victim, index, *purchase, *identity)
            for event_ms, purchase in zip(times, purchases, strict=True)
        ]

    def _own_identity(self, victim: int) -> tuple[str, str]:
        """Return the victim's main device and current address."""
        accounts = self._accounts
        return accounts.devices[victim, 0], accounts.ip[victim]

    def _card_testing(self, victim: int, times: list[int]) -> list[Row]:
        """Tiny dollar payments at a different web shop each time."""
        countries = len(catalog.COUNTRY_TABLE)
        identity = self._stranger(int(self._rng.integers(countries)))
        us = catalog.country_index("US")
        purchases = [
            Purchase(
                int(self._rng.integers(50, 300)),
                self._local_merchant(int(self._rng.integers(countries))),
                ECOMMERCE,
                us,
            )
            for _ in times
        ]
        return self._rows(victim, "card_testing", times, purchases, identity)

    def _account_takeover(self, victim: int, times: list[int]) -> list[Row]:
        """A small probe from abroad, then large cash-out purchases."""
        countries = len(catalog.COUNTRY_TABLE)
        home = int(self._accounts.home[victim])
        country = (home + int(self._rng.integers(1, countries))) % countries
        probe = Purchase(
            self._minor(self._rng.uniform(1, 5), country),
            self._local_merchant(country),
            ECOMMERCE,
            country,
        )
        purchases = [probe] + [
            self._cash_out(victim, country) for _ in range(len(times) - 1)
        ]
        identity = self._stranger(country)
        return self._rows(victim, "account_takeover", times, purchases, identity)

    def _cash_out(self, victim: int, country: int) -> Purchase:
        """Return a large purchase of easily resold goods in ``country``."""
        cash_out = self._merchants.cash_out[country]
        merchant = self._local_merchant(country)
        if len(cash_out):
            merchant = int(cash_out[self._rng.integers(len(cash_out))])
        usd = self._typical_usd(victim) * self._rng.uniform(8, 30)
        return Purchase(self._minor(usd, country), merchant, ECOMMERCE, country)

    def _high_velocity(self, victim: int, times: list[int]) -> list[Row]:
        """Ordinary local purchases, but far too many in a few minutes."""
        home = int(self._accounts.home[victim])
        draws = self._rng.random(len(times))
        channels = self._accounts.channel_of(np.full(len(times), victim), draws)
        purchases = [
            Purchase(
                self._minor(self._typical_usd(victim), home),
                self._local_merchant(home),
                channel,
                home,
            )
            for channel in channels.tolist()
        ]
        identity = self._own_identity(victim)
        return self._rows(victim, "high_velocity", times, purchases, identity)

    def _category_anomaly(self, victim: int, times: list[int]) -> list[Row]:
        """Gambling or crypto purchases from the holder's own device."""
        home = int(self._accounts.home[victim])
        half = catalog.RISKY_MERCHANTS_PER_COUNTRY // 2
        kind = int(self._rng.integers(2))
        first = int(self._merchants.risky_start[home]) + half * kind
        purchases = [
            Purchase(
                self._minor(self._typical_usd(victim) * self._rng.uniform(3, 15), home),
                first + int(self._rng.integers(half)),
                ECOMMERCE,
                home,
            )
            for _ in times
        ]
        identity = self._own_identity(victim)
        return self._rows(victim, "category_anomaly", times, purchases, identity)
