"""Scored rows, alerts and dead letters: masked, deterministic, decodable."""

from __future__ import annotations

import base64
from datetime import UTC, datetime

import msgspec
import pytest

from dataflows.errors import InvalidTransaction
from dataflows.masking import DIGITS_MASK, Masker
from dataflows.records import (
    MAX_DEAD_LETTER_PAYLOAD,
    Alert,
    DeadLetter,
    ScoredTransaction,
    Verdict,
    alert_for,
    alert_id,
    dead_letter,
    scored_transaction,
    to_json,
)
from dataflows.schema import encode, example_transaction
from tests.pii import find_pii

SCORED_AT = datetime(2026, 12, 1, 12, 0, 1, tzinfo=UTC)
VERDICT = Verdict(0.91, "review", ["new_device"], "m-7", {"amount_z": 2.5})


@pytest.fixture
def row() -> ScoredTransaction:
    return scored_transaction(
        example_transaction(),
        Masker(b"k" * 32),
        VERDICT,
        kafka_timestamp_ms=1_796_126_400_150,
        scored_at=SCORED_AT,
    )


def test_a_scored_row_carries_the_verdict_and_masked_fields(row: ScoredTransaction):
    assert row.pan_masked == "411111******1111"
    assert row.email_masked == "j***@example.com"
    assert row.ip_masked == "203.0.113.0/24"
    assert (row.score, row.decision, row.model_version) == (0.91, "review", "m-7")


def test_a_scored_row_encodes_without_personal_data(row: ScoredTransaction):
    txn = example_transaction()
    text = to_json(row).decode()

    assert find_pii(text) == []
    assert txn.device_id not in text
    assert msgspec.json.decode(text, type=ScoredTransaction) == row


def test_alert_ids_are_deterministic_per_transaction_and_model():
    assert alert_id("t-1", "m-7") == alert_id("t-1", "m-7")
    assert alert_id("t-1", "m-7") != alert_id("t-1", "m-8")
    assert alert_id("t-1", "m-7") != alert_id("t-2", "m-7")


def test_an_alert_summarises_its_row(row: ScoredTransaction):
    alert = alert_for(row)
    decoded = msgspec.json.decode(to_json(alert), type=Alert)

    assert decoded.alert_id == alert_id(row.txn_id, row.model_version)
    assert (decoded.txn_id, decoded.account_id) == (row.txn_id, row.account_id)
    assert decoded.reasons == ["new_device"]
    assert find_pii(to_json(alert).decode()) == []


def test_a_dead_letter_scrubs_its_payload_and_names_the_fault():
    payload = encode(example_transaction(currency="XXX1"))
    error = InvalidTransaction("currency", "invalid_value", "expected 3 chars")

    letter = dead_letter(payload, error, topic="transactions", partition=2, offset=9)

    assert letter.payload_encoding == "utf-8"
    assert DIGITS_MASK.decode() in letter.payload
    assert find_pii(to_json(letter).decode()) == []
    assert (letter.field, letter.reason, letter.error_type) == (
        "currency",
        "invalid_value",
        "InvalidTransaction",
    )
    assert (letter.topic, letter.partition, letter.offset) == ("transactions", 2, 9)


def test_a_binary_payload_is_kept_as_base64_after_scrubbing():
    payload = b"\xff\xfe 4111111111111111 \x00"

    letter = dead_letter(
        payload, ValueError("4111111111111111"), topic="t", partition=0, offset=1
    )

    assert letter.payload_encoding == "base64"
    assert base64.b64decode(letter.payload) == b"\xff\xfe " + DIGITS_MASK + b" \x00"
    assert "4111" not in letter.detail
    assert letter.reason == "unprocessable"


def test_a_huge_payload_is_cut_and_its_size_recorded():
    payload = b"x" * (MAX_DEAD_LETTER_PAYLOAD * 3)

    letter = dead_letter(payload, ValueError("big"), topic="t", partition=0, offset=1)

    assert len(letter.payload) == MAX_DEAD_LETTER_PAYLOAD
    assert letter.payload_bytes == len(payload)


def test_a_missing_payload_is_a_dead_letter_too():
    error = InvalidTransaction("$", "empty", "message has no value")

    letter = dead_letter(None, error, topic="t", partition=0, offset=1)

    assert msgspec.json.decode(to_json(letter), type=DeadLetter).reason == "empty"
