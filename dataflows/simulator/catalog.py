"""Reference tables of the simulated world: countries, currencies, merchants.

Everything here is fixed or drawn once from the simulator's seeded generator,
so the same seed builds the same world. Amounts are modelled in US dollars and
converted with the rough exchange rates below; the point is plausible spending,
not accurate money.

IP addresses are drawn from the shared address space ``100.64.0.0/10`` (RFC
6598), one ``/16`` per country, so an address hints at a country the way
geolocation would, and no generated address belongs to a real customer.
E-mail addresses use the reserved ``example`` domains (RFC 2606).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

import numpy as np


@dataclass(frozen=True)
class Country:
    """A country accounts live in or travel to.

    Attributes:
        code: ISO 3166 alpha-2 code.
        currency: ISO 4217 code of the local currency.
        per_usd: Units of the local currency per US dollar (rough).
        minor_digits: Digits of the minor unit (2 for cents, 0 for yen).
        utc_offset: Hours from UTC of the main time zone.
        residents: Relative share of accounts living there (0 = visitors only).
    """

    code: str
    currency: str
    per_usd: float
    minor_digits: int
    utc_offset: int
    residents: float


COUNTRY_TABLE: Final = (
    Country("US", "USD", 1.0, 2, -5, 30),
    Country("GB", "GBP", 0.79, 2, 0, 10),
    Country("DE", "EUR", 0.92, 2, 1, 8),
    Country("FR", "EUR", 0.92, 2, 1, 7),
    Country("ES", "EUR", 0.92, 2, 1, 4),
    Country("IT", "EUR", 0.92, 2, 1, 4),
    Country("NL", "EUR", 0.92, 2, 1, 3),
    Country("CA", "CAD", 1.36, 2, -5, 5),
    Country("AU", "AUD", 1.52, 2, 10, 4),
    Country("JP", "JPY", 150.0, 0, 9, 5),
    Country("BR", "BRL", 5.0, 2, -3, 4),
    Country("MX", "MXN", 17.0, 2, -6, 3),
    Country("IN", "INR", 83.0, 2, 5, 5),
    Country("SG", "SGD", 1.34, 2, 8, 2),
    Country("CH", "CHF", 0.88, 2, 1, 2),
    Country("SE", "SEK", 10.5, 2, 1, 2),
    Country("PL", "PLN", 4.0, 2, 1, 2),
    Country("TH", "THB", 35.0, 2, 7, 0),
    Country("AE", "AED", 3.67, 2, 4, 0),
    Country("TR", "TRY", 32.0, 2, 3, 0),
    Country("PT", "EUR", 0.92, 2, 0, 0),
    Country("GR", "EUR", 0.92, 2, 2, 0),
)

#: Countries whose web shops sell abroad; cross-border e-commerce goes there.
ONLINE_HUBS: Final = ("US", "GB", "NL")


@dataclass(frozen=True)
class Category:
    """A merchant category (ISO 18245 MCC) and how people spend there.

    Attributes:
        mcc: The four-digit merchant category code.
        weight: Relative share of everyday merchants in this category.
        spend: Multiplier on an account's typical amount.
    """

    mcc: str
    weight: float
    spend: float


CATEGORY_TABLE: Final = (
    Category("5411", 20, 1.0),  # grocery stores
    Category("5812", 12, 0.9),  # restaurants
    Category("5814", 10, 0.3),  # fast food
    Category("5541", 8, 1.1),  # fuel
    Category("5912", 5, 0.5),  # pharmacies
    Category("5311", 5, 1.5),  # department stores
    Category("5999", 6, 0.8),  # miscellaneous retail
    Category("4111", 6, 0.1),  # local transport
    Category("4121", 4, 0.5),  # taxis and ride hailing
    Category("5651", 4, 1.5),  # clothing
    Category("5968", 3, 0.4),  # subscriptions
    Category("5815", 3, 0.2),  # digital goods
    Category("5732", 2, 4.0),  # electronics
    Category("7832", 2, 0.5),  # cinemas
    Category("4814", 2, 1.2),  # telecom
    Category("5942", 2, 0.5),  # book shops
    Category("4511", 1, 8.0),  # airlines
    Category("7011", 1, 5.0),  # hotels
    Category("5944", 0.3, 6.0),  # jewellery
)

ATM_MCC: Final = "6011"
GAMBLING_MCC: Final = "7995"
CRYPTO_MCC: Final = "6051"
#: Categories account takeovers cash out through: easy to resell or move.
CASH_OUT_MCCS: Final = ("5732", "5944", "5311")

MERCHANTS_PER_RESIDENT_SHARE: Final = 60
ATMS_PER_COUNTRY: Final = 40
RISKY_MERCHANTS_PER_COUNTRY: Final = 10


@dataclass(frozen=True)
class MerchantCatalog:
    """Every merchant of the simulated world, grouped by country.

    Merchants of country ``c`` occupy rows ``start[c]`` to ``start[c] +
    count[c]`` of the id, category and country arrays, so a random local
    merchant is one index computation away.

    Attributes:
        merchant_id: Merchant ids (object array of ``str``).
        mcc: Category code per merchant (object array of ``str``).
        spend: Amount multiplier per merchant, from its category.
        country: Country index per merchant.
        start: First everyday merchant of each country.
        count: Number of everyday merchants of each country.
        atm_start: First ATM of each country (``ATMS_PER_COUNTRY`` each).
        risky_start: First gambling or crypto merchant of each country.
        cash_out: Per country, the everyday merchants in :data:`CASH_OUT_MCCS`.
    """

    merchant_id: np.ndarray
    mcc: np.ndarray
    spend: np.ndarray
    country: np.ndarray
    start: np.ndarray
    count: np.ndarray
    atm_start: np.ndarray
    risky_start: np.ndarray
    cash_out: tuple[np.ndarray, ...]


def _everyday_count(country: Country) -> int:
    """Return how many everyday merchants a country gets (visitors need some)."""
    return int(max(country.residents, 2) * MERCHANTS_PER_RESIDENT_SHARE)


def build_catalog(rng: np.random.Generator) -> MerchantCatalog:
    """Draw every country's merchants: everyday shops, ATMs, then risky ones."""
    weights = np.array([category.weight for category in CATEGORY_TABLE])
    weights /= weights.sum()
    ids: list[str] = []
    mccs: list[str] = []
    countries: list[int] = []
    starts, counts, atm_starts, risky_starts = [], [], [], []

    for index, country in enumerate(COUNTRY_TABLE):
        everyday = _everyday_count(country)
        drawn = rng.choice(len(CATEGORY_TABLE), size=everyday, p=weights)
        local_mccs = [CATEGORY_TABLE[i].mcc for i in drawn]
        local_mccs += [ATM_MCC] * ATMS_PER_COUNTRY
        half = RISKY_MERCHANTS_PER_COUNTRY // 2
        local_mccs += [GAMBLING_MCC] * half + [CRYPTO_MCC] * half

        starts.append(len(ids))
        counts.append(everyday)
        atm_starts.append(len(ids) + everyday)
        risky_starts.append(len(ids) + everyday + ATMS_PER_COUNTRY)
        ids += [f"m-{country.code}{n:05d}" for n in range(len(local_mccs))]
        mccs += local_mccs
        countries += [index] * len(local_mccs)

    spend_of = {category.mcc: category.spend for category in CATEGORY_TABLE}
    mcc_array = np.array(mccs, dtype=object)
    cashable = np.isin(mcc_array, CASH_OUT_MCCS)
    return MerchantCatalog(
        merchant_id=np.array(ids, dtype=object),
        mcc=mcc_array,
        spend=np.array([spend_of.get(mcc, 1.0) for mcc in mccs]),
        country=np.array(countries, dtype=np.int16),
        start=np.array(starts),
        count=np.array(counts),
        atm_start=np.array(atm_starts),
        risky_start=np.array(risky_starts),
        cash_out=tuple(
            np.flatnonzero(cashable[start : start + count]) + start
            for start, count in zip(starts, counts, strict=True)
        ),
    )


def country_index(code: str) -> int:
    """Return the row of ``code`` in :data:`COUNTRY_TABLE`."""
    for index, country in enumerate(COUNTRY_TABLE):
        if country.code == code:
            return index
    raise KeyError(code)


COUNTRY_CODES: Final = np.array([c.code for c in COUNTRY_TABLE], dtype=object)
COUNTRY_CURRENCY: Final = np.array([c.currency for c in COUNTRY_TABLE], dtype=object)
#: Minor units per US dollar, per country: dollars times this is the amount.
MINOR_PER_USD: Final = np.array([c.per_usd * 10**c.minor_digits for c in COUNTRY_TABLE])
#: ATMs hand out multiples of this many minor units, per country.
ATM_STEP_MINOR: Final = np.array(
    [round(20 * c.per_usd) * 10**c.minor_digits for c in COUNTRY_TABLE]
)
RESIDENT_SHARE: Final = np.array([c.residents for c in COUNTRY_TABLE], dtype=float)
UTC_OFFSET: Final = np.array([c.utc_offset for c in COUNTRY_TABLE])
HUB_INDEX: Final = np.array([country_index(code) for code in ONLINE_HUBS])


def ip_in(country: int, host: int) -> str:
    """Return the address number ``host`` (0-65535) in a country's block."""
    return f"100.{64 + country}.{host >> 8}.{host & 255}"
