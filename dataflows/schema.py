"""The card-transaction event: one definition, its JSON wire form and its checks.

A transaction travels as a UTF-8 JSON object on the ``transactions`` topic,
keyed by ``account_id``. :func:`decode` turns bytes into a :class:`Transaction`
or raises :class:`~dataflows.errors.InvalidTransaction` naming the field and the
problem; it never lets any other exception out, whatever the bytes.

Example:
    >>> txn = decode(encode(example_transaction()))
    >>> txn.amount_minor
    1250
"""

from __future__ import annotations

import ipaddress
import re
from datetime import UTC, datetime, timedelta
from typing import Annotated, Final, Literal

import msgspec
import pycountry

from dataflows.errors import InvalidTransaction

SCHEMA_VERSION: Final = 1

#: Payloads above this size are refused before parsing; a real transaction is
#: ~300 bytes, so anything this large is a bug or an attack.
MAX_PAYLOAD_BYTES: Final = 4096

#: Largest accepted amount in minor units (10 million in major units): larger
#: values are data errors, not purchases.
MAX_AMOUNT_MINOR: Final = 1_000_000_000

#: Events stamped further than this ahead of the decoder's clock are refused.
MAX_CLOCK_SKEW: Final = timedelta(minutes=5)

EARLIEST_EVENT_TIME: Final = datetime(2000, 1, 1, tzinfo=UTC)
_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)
_ONE_MS: Final = timedelta(milliseconds=1)

COUNTRIES: Final = frozenset(country.alpha_2 for country in pycountry.countries)
CURRENCIES: Final = frozenset(currency.alpha_3 for currency in pycountry.currencies)

Channel = Literal["card_present", "contactless", "ecommerce", "moto", "atm"]
CHANNELS: Final[tuple[str, ...]] = Channel.__args__  # type: ignore[attr-defined]

Identifier = Annotated[str, msgspec.Meta(min_length=1, max_length=64)]
Text = Annotated[str, msgspec.Meta(min_length=1, max_length=254)]


class Transaction(msgspec.Struct, forbid_unknown_fields=True, gc=False):
    """One card authorisation as it arrives from the card processor.

    Amounts are integer minor units (cents for USD, yen for JPY): floats
    cannot hold money exactly. ``pan``, ``email``, ``ip`` and ``device_id`` are
    personal data and must be masked before anything is stored or sent on.
    """

    txn_id: Identifier
    account_id: Identifier
    pan: Annotated[str, msgspec.Meta(min_length=12, max_length=19)]
    amount_minor: int
    currency: Annotated[str, msgspec.Meta(min_length=3, max_length=3)]
    merchant_id: Identifier
    mcc: Annotated[str, msgspec.Meta(min_length=4, max_length=4)]
    merchant_country: Annotated[str, msgspec.Meta(min_length=2, max_length=2)]
    channel: Channel
    device_id: Identifier
    ip: Annotated[str, msgspec.Meta(min_length=2, max_length=45)]
    email: Text
    event_time: datetime
    schema_version: int = SCHEMA_VERSION

    @property
    def event_ms(self) -> int:
        """Event time as integer milliseconds since the Unix epoch."""
        # Integer arithmetic: float seconds * 1000 can truncate to ms - 1.
        return (self.event_time - _EPOCH) // _ONE_MS


_decoder = msgspec.json.Decoder(Transaction)
_encoder = msgspec.json.Encoder()

# Luhn: digits in odd positions from the right count as themselves, the others
# are doubled and their digits summed. Translating each digit to the character
# whose code is 48 + its contribution lets one sum over bytes do the work.
_DOUBLED = str.maketrans("0123456789", "0246813579")


def luhn_valid(digits: str) -> bool:
    """Return whether a string of ASCII digits passes the Luhn checksum."""
    reversed_digits = digits[::-1]
    kept = reversed_digits[0::2]
    doubled = reversed_digits[1::2].translate(_DOUBLED)
    total = sum(kept.encode()) + sum(doubled.encode()) - 48 * len(digits)
    return total % 10 == 0


_OCTET = r"(?:25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])"
_IPV4 = re.compile(rf"{_OCTET}(?:\.{_OCTET}){{3}}")


def valid_ip(text: str) -> bool:
    """Return whether ``text`` is an IPv4 or IPv6 address.

    Dotted IPv4, by far the common case, is matched by a compiled pattern at a
    sixth of the cost of :func:`ipaddress.ip_address`, which judges the rest.
    """
    if _IPV4.fullmatch(text):
        return True
    if ":" not in text:
        return False
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


def _field_of(message: str) -> str:
    """Extract the field name from a msgspec error message (``at `$.name```)."""
    _, marker, path = message.rpartition("at `$.")
    if not marker:
        return "$"
    return path.split("`", 1)[0].split("[", 1)[0].split(".", 1)[0]


def _check(txn: Transaction, now: datetime) -> None:
    """Apply the checks the type system cannot express; raise on the first."""
    if txn.schema_version != SCHEMA_VERSION:
        detail = f"expected {SCHEMA_VERSION}, got {txn.schema_version!r}"
        raise InvalidTransaction("schema_version", "unsupported_version", detail)
    if not txn.pan.isdigit() or not txn.pan.isascii():
        raise InvalidTransaction("pan", "not_digits", "expected 12-19 digits")
    if not luhn_valid(txn.pan):
        raise InvalidTransaction("pan", "luhn_failed", "check digit does not match")
    if not 0 < txn.amount_minor <= MAX_AMOUNT_MINOR:
        detail = f"expected 1..{MAX_AMOUNT_MINOR} minor units, got {txn.amount_minor}"
        raise InvalidTransaction("amount_minor", "out_of_range", detail)
    if txn.currency not in CURRENCIES:
        detail = f"{txn.currency!r} is not an ISO 4217 code"
        raise InvalidTransaction("currency", "unknown_currency", detail)
    if txn.merchant_country not in COUNTRIES:
        detail = f"{txn.merchant_country!r} is not an ISO 3166 alpha-2 code"
        raise InvalidTransaction("merchant_country", "unknown_country", detail)
    if not (txn.mcc.isdigit() and txn.mcc.isascii()):
        detail = f"expected 4 digits, got {txn.mcc!r}"
        raise InvalidTransaction("mcc", "not_digits", detail)
    _check_contact(txn)
    _check_time(txn.event_time, now)


def _check_contact(txn: Transaction) -> None:
    """Check the email and IP fields without echoing their values."""
    local, at, domain = txn.email.rpartition("@")
    if not at or not local or "." not in domain or " " in txn.email:
        raise InvalidTransaction("email", "malformed", "expected local@domain.tld")
    if not valid_ip(txn.ip):
        detail = "expected an IPv4 or IPv6 address"
        raise InvalidTransaction("ip", "malformed", detail)


def _check_time(event_time: datetime, now: datetime) -> None:
    """Require an explicit UTC offset and a plausible instant."""
    offset = event_time.utcoffset()
    if offset is None:
        detail = "expected an RFC 3339 time with an offset, e.g. ...Z"
        raise InvalidTransaction("event_time", "missing_timezone", detail)
    if event_time > now + MAX_CLOCK_SKEW:
        detail = f"{event_time.isoformat()} is ahead of the clock ({now.isoformat()})"
        raise InvalidTransaction("event_time", "in_future", detail)
    if event_time < EARLIEST_EVENT_TIME:
        detail = f"{event_time.isoformat()} is before {EARLIEST_EVENT_TIME.date()}"
        raise InvalidTransaction("event_time", "too_old", detail)


def decode(payload: bytes, now: datetime | None = None) -> Transaction:
    """Decode and validate one JSON transaction.

    Args:
        payload: The raw Kafka message value.
        now: The clock to judge future timestamps against; defaults to the
            current UTC time.

    Returns:
        The validated transaction, with ``event_time`` normalised to UTC.

    Raises:
        InvalidTransaction: for any payload that is not a valid transaction.
    """
    if payload is None:
        raise InvalidTransaction("$", "empty", "message has no value")
    if len(payload) > MAX_PAYLOAD_BYTES:
        detail = f"{len(payload)} bytes, limit is {MAX_PAYLOAD_BYTES}"
        raise InvalidTransaction("$", "too_large", detail)
    try:
        txn = _decoder.decode(payload)
    except msgspec.ValidationError as exc:
        message = str(exc)
        field = _field_of(message)
        reason = "unknown_field" if "unknown field" in message else "invalid_value"
        raise InvalidTransaction(field, reason, message) from None
    except msgspec.DecodeError as exc:
        raise InvalidTransaction("$", "malformed_json", str(exc)) from None

    _check(txn, now or datetime.now(UTC))
    if txn.event_time.tzinfo is not UTC:
        txn.event_time = txn.event_time.astimezone(UTC)
    return txn


def encode(txn: Transaction) -> bytes:
    """Encode a transaction as compact JSON (the wire form)."""
    return _encoder.encode(txn)


def example_transaction(**overrides: object) -> Transaction:
    """Return a valid transaction, with fields replaced by ``overrides``.

    Used by documentation and tests; the card number is a well-known test PAN.
    """
    fields: dict[str, object] = {
        "txn_id": "t-0001",
        "account_id": "acct-000001",
        "pan": "4111111111111111",
        "amount_minor": 1250,
        "currency": "USD",
        "merchant_id": "m-00042",
        "mcc": "5411",
        "merchant_country": "US",
        "channel": "card_present",
        "device_id": "dev-7f3a",
        "ip": "203.0.113.7",
        "email": "jane.doe@example.com",
        "event_time": datetime(2026, 12, 1, 12, 0, 0, 123000, tzinfo=UTC),
    }
    fields.update(overrides)
    return Transaction(**fields)  # type: ignore[arg-type]
