"""The simulated card holders: who they are and how their habits drift.

Each account is a row across numpy arrays (home country, spending level,
favourite merchants, time-of-day habit, channel mix) plus a few Python lists
of strings (card number, e-mail, devices, current IP) that are gathered per
batch without building an object per transaction. Once per simulated day,
:meth:`Accounts.new_day` lets a few holders travel, come home, move to a new
IP address or receive a reissued card.

Account ids depend only on the account's number, and every habit only on the
seed, so a history written with one seed and a live stream started with the
same seed describe the same people.
"""

from __future__ import annotations

from typing import Final

import numpy as np

from dataflows.schema import CHANNELS
from dataflows.simulator import catalog

FAVOURITES: Final = 5
#: Share of holders who gamble regularly: a betting site is a favourite, so
#: gambling alone is not a fraud signal.
GAMBLER_SHARE: Final = 0.02
#: Chance that an everyday purchase at home is at one of the favourites.
FAVOURITE_SHARE: Final = 0.6
#: Daily chances of starting a trip, moving to a new home IP, a card reissue.
TRAVEL_PER_DAY: Final = 1 / 45
NEW_IP_PER_DAY: Final = 1 / 40
REISSUE_PER_DAY: Final = 1 / 700
TRIP_DAYS: Final = (2, 10)

#: Typical channel mix (order of :data:`dataflows.schema.CHANNELS`); each
#: account draws its own around it.
CHANNEL_MIX: Final = np.array([0.36, 0.30, 0.24, 0.02, 0.08])

#: Local-time activity by hour for four habits: daytime, evening, early bird,
#: night owl. Rows are rescaled to average 1.
_HABITS: Final = np.array(
    [
        [
            1,
            0,
            0,
            0,
            0,
            1,
            3,
            6,
            8,
            9,
            10,
            11,
            12,
            11,
            10,
            10,
            10,
            11,
            10,
            8,
            6,
            4,
            3,
            2,
        ],
        [2, 1, 0, 0, 0, 0, 1, 3, 5, 6, 7, 9, 10, 8, 7, 7, 8, 11, 13, 14, 13, 11, 8, 4],
        [0, 0, 0, 0, 2, 5, 10, 12, 12, 10, 9, 9, 10, 9, 8, 8, 7, 7, 6, 4, 3, 2, 1, 0],
        [6, 5, 4, 3, 1, 0, 0, 1, 2, 3, 4, 5, 6, 6, 6, 6, 7, 8, 9, 10, 11, 11, 10, 8],
    ],
    dtype=float,
)
HABITS: Final = _HABITS / _HABITS.mean(axis=1, keepdims=True)
HABIT_SHARE: Final = np.array([0.45, 0.30, 0.15, 0.10])

_FIRST: Final = (
    "alex",
    "ana",
    "ben",
    "chen",
    "dana",
    "eli",
    "emma",
    "femi",
    "hana",
    "ivan",
    "jae",
    "kai",
    "lena",
    "luca",
    "maya",
    "mei",
    "nia",
    "noah",
    "omar",
    "priya",
    "rosa",
    "sam",
    "sara",
    "tom",
    "uma",
    "yuki",
    "zoe",
)
_LAST: Final = (
    "abe",
    "baker",
    "costa",
    "diaz",
    "evans",
    "fischer",
    "garcia",
    "hill",
    "ito",
    "jones",
    "khan",
    "kim",
    "lopez",
    "meyer",
    "moreau",
    "nowak",
    "okafor",
    "patel",
    "rossi",
    "silva",
    "smith",
    "tanaka",
    "weber",
)
_DOMAINS: Final = ("example.com", "example.org", "example.net")
#: Issuer prefixes the synthetic card numbers start with.
_BINS: Final = ("400022", "412345", "455701", "510510", "522233", "540178")


def luhn_complete(body: str) -> str:
    """Append the Luhn check digit to a string of digits."""
    total = 0
    for position, char in enumerate(reversed(body)):
        digit = int(char)
        if position % 2 == 0:
            digit = digit * 2 - 9 if digit > 4 else digit * 2
        total += digit
    return body + str(-total % 10)


def account_id(number: int) -> str:
    """Return the account id of account ``number`` (stable across seeds)."""
    return f"acct-{number:06d}"


class Accounts:
    """Profiles and current state of every simulated account.

    Attributes:
        ids: Account ids (object array of ``str``).
        home: Home country index.
        daily_rate: Mean transactions per day, between 5 and 20.
        log_spend: Mean of log typical amount in US dollars.
        spread: Standard deviation of log amount.
        favourites: ``(accounts, FAVOURITES)`` merchant indexes at home.
        channel_cdf: ``(accounts, channels)`` cumulative channel mix.
        hourly_weight: ``(24, accounts)`` activity by UTC hour.
        devices: ``(accounts, 2)`` device ids; column 1 repeats column 0 for
            holders with one device.
        pan, email, ip: Current card number, e-mail and IP address.
        trip: Country index of the current trip, or -1 at home.
    """

    def __init__(
        self,
        rng: np.random.Generator,
        merchants: catalog.MerchantCatalog,
        count: int,
    ) -> None:
        """Draw ``count`` account profiles from ``rng``."""
        self._rng = rng
        self.ids = np.array([account_id(n) for n in range(count)], dtype=object)
        share = catalog.RESIDENT_SHARE / catalog.RESIDENT_SHARE.sum()
        self.home = rng.choice(len(share), size=count, p=share)
        self.daily_rate = np.clip(rng.lognormal(np.log(10.0), 0.4, count), 5, 20)
        self.log_spend = rng.normal(np.log(30.0), 0.6, count)
        self.spread = rng.uniform(0.5, 1.0, count)
        self.favourites = self._draw_favourites(merchants)
        self.channel_cdf = np.cumsum(rng.dirichlet(CHANNEL_MIX * 40, count), axis=1)
        self.hourly_weight = self._draw_hourly_weight()
        self._draw_identities()
        self.trip = np.full(count, -1)
        self._trip_end = np.zeros(count, dtype=np.int64)

    def __len__(self) -> int:
        """Return the number of accounts."""
        return len(self.ids)

    def _draw_favourites(self, merchants: catalog.MerchantCatalog) -> np.ndarray:
        """Pick each holder's favourite merchants among those of their country."""
        shape = (len(self.ids), FAVOURITES)
        offset = self._rng.random(shape) * merchants.count[self.home][:, None]
        favourites = merchants.start[self.home][:, None] + offset.astype(np.int64)

        gamblers = np.flatnonzero(self._rng.random(len(self.ids)) < GAMBLER_SHARE)
        betting = catalog.RISKY_MERCHANTS_PER_COUNTRY // 2
        pick = self._rng.integers(0, betting, len(gamblers))
        favourites[gamblers, 0] = merchants.risky_start[self.home[gamblers]] + pick
        return favourites

    def _draw_hourly_weight(self) -> np.ndarray:
        """Combine a habit with the home time zone into weights by UTC hour."""
        habit = self._rng.choice(len(HABIT_SHARE), size=len(self.ids), p=HABIT_SHARE)
        utc_hour = np.arange(24)[:, None]
        local_hour = (utc_hour + catalog.UTC_OFFSET[self.home][None, :]) % 24
        return HABITS[habit[None, :], local_hour]

    def _draw_identities(self) -> None:
        """Draw card numbers, e-mail addresses, devices and home IPs."""
        count = len(self.ids)
        self.pan = [self._new_pan() for _ in range(count)]
        self.email = [self._new_email(n) for n in range(count)]
        first = [self._new_device() for _ in range(count)]
        two = self._rng.random(count) < 0.4
        second = [self._new_device() if two[n] else first[n] for n in range(count)]
        self.devices = np.array([first, second], dtype=object).T
        self.home_ip = [self._new_ip(self.home[n]) for n in range(count)]
        self.ip = np.array(self.home_ip, dtype=object)

    def _new_pan(self) -> str:
        """Return a fresh Luhn-valid 16-digit card number."""
        prefix = _BINS[self._rng.integers(len(_BINS))]
        body = "".join(map(str, self._rng.integers(0, 10, 9)))
        return luhn_complete(prefix + body)

    def _new_email(self, number: int) -> str:
        """Return an e-mail address at a reserved domain."""
        first = _FIRST[self._rng.integers(len(_FIRST))]
        last = _LAST[self._rng.integers(len(_LAST))]
        domain = _DOMAINS[number % len(_DOMAINS)]
        return f"{first}.{last}{number}@{domain}"

    def _new_device(self) -> str:
        """Return a fresh device id."""
        return f"dev-{int(self._rng.integers(1 << 62)):016x}"

    def _new_ip(self, country: int) -> str:
        """Return a fresh address in a country's block."""
        return catalog.ip_in(int(country), int(self._rng.integers(1 << 16)))

    def new_day(self, day: int) -> None:
        """Advance habits to simulated day number ``day``: trips, IPs, cards."""
        count = len(self.ids)
        coming_home = np.flatnonzero((self.trip >= 0) & (self._trip_end <= day))
        self.trip[coming_home] = -1
        self.ip[coming_home] = [self.home_ip[n] for n in coming_home]

        at_home = self.trip < 0
        for n in np.flatnonzero(at_home & (self._rng.random(count) < NEW_IP_PER_DAY)):
            self.home_ip[n] = self._new_ip(self.home[n])
            self.ip[n] = self.home_ip[n]
        for n in np.flatnonzero(self._rng.random(count) < REISSUE_PER_DAY):
            self.pan[n] = self._new_pan()

        leaving = np.flatnonzero(at_home & (self._rng.random(count) < TRAVEL_PER_DAY))
        self._start_trips(leaving, day)

    def _start_trips(self, leaving: np.ndarray, day: int) -> None:
        """Send the ``leaving`` accounts abroad for a few days."""
        countries = len(catalog.COUNTRY_TABLE)
        shift = self._rng.integers(1, countries, len(leaving))
        self.trip[leaving] = (self.home[leaving] + shift) % countries
        self._trip_end[leaving] = day + self._rng.integers(*TRIP_DAYS, len(leaving))
        for n in leaving:
            self.ip[n] = self._new_ip(self.trip[n])

    def channel_of(self, accounts: np.ndarray, draws: np.ndarray) -> np.ndarray:
        """Map uniform draws to channel indexes with each account's mix."""
        below = draws[:, None] > self.channel_cdf[accounts]
        return np.minimum(below.sum(axis=1), len(CHANNELS) - 1)
