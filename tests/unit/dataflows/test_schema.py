import calendar
import contextlib
import random
from datetime import UTC, datetime, timedelta

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dataflows.errors import InvalidTransaction
from dataflows.schema import (
    MAX_PAYLOAD_BYTES,
    decode,
    encode,
    example_transaction,
    luhn_valid,
    valid_ip,
)

NOW = datetime(2026, 12, 1, 12, 5, tzinfo=UTC)
VALID = msgspec.json.decode(encode(example_transaction()))


def payload(**changes):
    fields = {**VALID, **changes}
    return msgspec.json.encode({k: v for k, v in fields.items() if v is not ...})


def reason_of(raw):
    with pytest.raises(InvalidTransaction) as raised:
        decode(raw, NOW)
    return raised.value.field, raised.value.reason


def test_a_valid_transaction_round_trips_exactly():
    txn = example_transaction()
    assert decode(encode(txn), NOW) == txn
    assert txn.event_ms == calendar.timegm((2026, 12, 1, 12, 0, 0)) * 1000 + 123


@pytest.mark.parametrize("millis", [0, 1, 123, 999])
def test_event_ms_is_exact_to_the_millisecond(millis):
    moment = datetime(2026, 11, 30, 23, 59, 59, millis * 1000, tzinfo=UTC)
    txn = example_transaction(event_time=moment)
    assert txn.event_ms == calendar.timegm(moment.timetuple()) * 1000 + millis


@pytest.mark.parametrize(
    ("raw", "field", "reason"),
    [
        (b"\x00\xff garbage", "$", "malformed_json"),
        (encode(example_transaction())[:-9], "$", "malformed_json"),
        (b"[]", "$", "invalid_value"),
        (payload(txn_id=...), "$", "invalid_value"),
        (payload(extra="x"), "$", "unknown_field"),
        (payload(amount_minor="12.50"), "amount_minor", "invalid_value"),
        (payload(amount_minor=12.5), "amount_minor", "invalid_value"),
        (payload(amount_minor=-5), "amount_minor", "out_of_range"),
        (payload(amount_minor=10**12), "amount_minor", "out_of_range"),
        (payload(currency="ZZZ"), "currency", "unknown_currency"),
        (payload(merchant_country="XX"), "merchant_country", "unknown_country"),
        (payload(pan="4111111111111112"), "pan", "luhn_failed"),
        (payload(pan="4111-1111-1111-1111"), "pan", "not_digits"),
        (payload(mcc="54a1"), "mcc", "not_digits"),
        (payload(channel="telepathy"), "channel", "invalid_value"),
        (payload(email="not-an-email"), "email", "malformed"),
        (payload(ip="300.1.1.1"), "ip", "malformed"),
        (payload(event_time="2027-06-01T00:00:00Z"), "event_time", "in_future"),
        (payload(event_time="1999-01-01T00:00:00Z"), "event_time", "too_old"),
        (payload(event_time="2026-12-01T12:00:00"), "event_time", "missing_timezone"),
        (payload(schema_version=2), "schema_version", "unsupported_version"),
        (b"{" + b" " * MAX_PAYLOAD_BYTES + b"}", "$", "too_large"),
        (b"x" * 1_000_000, "$", "too_large"),
    ],
)
def test_bad_input_gives_a_typed_error_naming_field_and_reason(raw, field, reason):
    assert reason_of(raw) == (field, reason)


def test_a_missing_field_is_named():
    fields = dict(VALID)
    del fields["merchant_id"]
    field, reason = reason_of(msgspec.json.encode(fields))
    assert (field, reason) == ("$", "invalid_value")
    with pytest.raises(InvalidTransaction, match="merchant_id"):
        decode(msgspec.json.encode(fields), NOW)


def test_an_offset_time_is_normalised_to_utc():
    txn = decode(payload(event_time="2026-12-01T13:00:00.500+01:00"), NOW)
    assert txn.event_time == datetime(2026, 12, 1, 12, 0, 0, 500000, tzinfo=UTC)
    assert txn.event_time.tzinfo is UTC


def test_errors_never_echo_a_card_number():
    with pytest.raises(InvalidTransaction) as raised:
        decode(payload(pan="4111111111111112"), NOW)
    assert "4111111111111112" not in str(raised.value)


@pytest.mark.parametrize(
    ("digits", "valid"),
    [
        ("4111111111111111", True),
        ("5500005555555559", True),
        ("79927398713", True),
        ("4111111111111112", False),
        ("1234567812345678", False),
    ],
)
def test_luhn_matches_known_numbers(digits, valid):
    assert luhn_valid(digits) is valid


@pytest.mark.parametrize(
    ("text", "valid"),
    [
        ("203.0.113.7", True),
        ("0.0.0.0", True),
        ("2001:db8::1", True),
        ("01.2.3.4", False),
        ("256.1.1.1", False),
        ("1.2.3", False),
        ("::g", False),
    ],
)
def test_ip_check_agrees_with_the_standard_library(text, valid):
    assert valid_ip(text) is valid


def _mutations(seed: int, count: int):
    """Deterministic corruptions of a valid payload: flips, cuts, splices."""
    rng = random.Random(seed)
    base = encode(example_transaction())
    for _ in range(count):
        raw = bytearray(base)
        kind = rng.randrange(4)
        if kind == 0:
            for _ in range(rng.randint(1, 8)):
                raw[rng.randrange(len(raw))] = rng.randrange(256)
        elif kind == 1:
            del raw[rng.randrange(len(raw)) :]
        elif kind == 2:
            start = rng.randrange(len(raw))
            raw[start:start] = rng.randbytes(rng.randint(1, 40))
        else:
            raw = bytearray(rng.randbytes(rng.randint(0, 600)))
        yield bytes(raw)


def test_ten_thousand_corrupted_payloads_all_give_typed_errors_or_valid_records():
    errors = []
    for raw in _mutations(seed=20261203, count=10_000):
        try:
            decode(raw, NOW)
        except InvalidTransaction as error:  # anything else fails the test
            errors.append(error)
    assert len(errors) > 9_000
    assert all(error.reason for error in errors)
    assert all(error.field for error in errors)


@settings(max_examples=500, deadline=None)
@given(st.binary(max_size=2000))
def test_arbitrary_bytes_never_raise_anything_but_a_typed_error(raw):
    with contextlib.suppress(InvalidTransaction):
        decode(raw, NOW)


@settings(max_examples=300, deadline=None)
@given(
    st.dictionaries(
        st.sampled_from([*VALID, "other"]),
        st.one_of(st.none(), st.integers(), st.floats(), st.text(max_size=30)),
    )
)
def test_arbitrary_json_objects_never_raise_anything_but_a_typed_error(fields):
    with contextlib.suppress(InvalidTransaction):
        decode(msgspec.json.encode({**VALID, **fields}), NOW)


def test_a_future_clock_skew_within_five_minutes_is_accepted():
    soon = (NOW + timedelta(minutes=4)).isoformat().replace("+00:00", "Z")
    assert decode(payload(event_time=soon), NOW).event_time > NOW
