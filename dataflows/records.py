"""What the scoring flow writes: scored rows, alerts and dead letters.

Every record here is already masked: none holds a raw card number, email, IP
or device id, so each may be stored, sent or logged. Each is keyed by a
deterministic id (the transaction id; an alert id derived from the transaction
id and model version), so a replay after a crash creates no duplicates.

Example:
    >>> from datetime import UTC, datetime
    >>> from dataflows.masking import DEV_HMAC_KEY, Masker
    >>> from dataflows.schema import example_transaction
    >>> row = scored_transaction(
    ...     example_transaction(),
    ...     Masker(DEV_HMAC_KEY),
    ...     Verdict(0.97, "block", ["velocity_1h"], "m-1", {"amount": 12.5}),
    ...     kafka_timestamp_ms=1_796_126_400_200,
    ...     scored_at=datetime(2026, 12, 1, 12, 0, 0, 130000, tzinfo=UTC),
    ... )
    >>> row.pan_masked, alert_for(row).decision
    ('411111******1111', 'block')
"""

from __future__ import annotations

import base64
import uuid
from datetime import UTC, datetime
from typing import Final, Literal, Protocol

import msgspec

from dataflows.errors import FraudflowError, InvalidTransaction
from dataflows.masking import MaskedIdentity, Masker, scrub_digits
from dataflows.schema import Transaction

Decision = Literal["allow", "review", "block"]

#: Namespace of alert ids: uuid5(namespace, f"{txn_id}/{model_version}").
ALERT_NAMESPACE: Final = uuid.UUID("6f1d2b8e-4c3a-5e7f-9a10-2b3c4d5e6f70")

#: Dead-letter payloads are cut to this many bytes after scrubbing: enough to
#: see what went wrong, small enough for any broker's message size limit.
MAX_DEAD_LETTER_PAYLOAD: Final = 16_384


class Verdict(msgspec.Struct, frozen=True):
    """The model's judgement of one transaction."""

    score: float
    decision: Decision
    reasons: list[str]
    model_version: str
    features: dict[str, float]
    degraded: bool = False


class ScoredTransaction(msgspec.Struct, kw_only=True):
    """One scored transaction as stored in ``scored_transactions``.

    The table's ``latency_ms`` (Kafka message timestamp to the row's insert)
    and ``written_at`` are set by the database as the row is written.
    """

    txn_id: str
    account_id: str
    pan_masked: str
    pan_token: str
    email_masked: str
    email_token: str
    ip_masked: str
    ip_token: str
    device_token: str
    amount_minor: int
    currency: str
    merchant_id: str
    mcc: str
    merchant_country: str
    channel: str
    event_time: datetime
    score: float
    decision: Decision
    reasons: list[str]
    model_version: str
    features: dict[str, float]
    degraded: bool
    kafka_timestamp_ms: int
    scored_at: datetime


class Alert(msgspec.Struct, kw_only=True):
    """A review or block decision, published for other services."""

    alert_id: str
    txn_id: str
    account_id: str
    pan_masked: str
    pan_token: str
    email_masked: str
    ip_masked: str
    amount_minor: int
    currency: str
    merchant_id: str
    merchant_country: str
    channel: str
    score: float
    decision: Decision
    reasons: list[str]
    model_version: str
    event_time: datetime
    scored_at: datetime


class DeadLetter(msgspec.Struct, kw_only=True):
    """A record that could not be processed, scrubbed of personal data.

    ``payload`` is the scrubbed message value as text when it is UTF-8,
    otherwise base64 (``payload_encoding`` says which).
    """

    payload: str
    payload_encoding: Literal["utf-8", "base64"]
    payload_bytes: int
    error_type: str
    field: str
    reason: str
    detail: str
    topic: str
    partition: int
    offset: int
    failed_at: datetime


_encoder = msgspec.json.Encoder()


def to_json(record: msgspec.Struct) -> bytes:
    """Encode a record as compact JSON, timestamps in RFC 3339."""
    return _encoder.encode(record)


class TransactionFields(Protocol):
    """The non-personal fields every stored row copies from its transaction."""

    @property
    def txn_id(self) -> str: ...  # noqa: D102

    @property
    def account_id(self) -> str: ...  # noqa: D102

    @property
    def amount_minor(self) -> int: ...  # noqa: D102

    @property
    def currency(self) -> str: ...  # noqa: D102

    @property
    def merchant_id(self) -> str: ...  # noqa: D102

    @property
    def mcc(self) -> str: ...  # noqa: D102

    @property
    def merchant_country(self) -> str: ...  # noqa: D102

    @property
    def channel(self) -> str: ...  # noqa: D102


def masked_row(
    txn: TransactionFields,
    identity: MaskedIdentity,
    verdict: Verdict,
    *,
    event_time: datetime,
    kafka_timestamp_ms: int,
    scored_at: datetime,
) -> ScoredTransaction:
    """Build a stored row from a transaction's fields, masked identity and verdict."""
    return ScoredTransaction(
        txn_id=txn.txn_id,
        account_id=txn.account_id,
        pan_masked=identity.pan.masked,
        pan_token=identity.pan.token,
        email_masked=identity.email.masked,
        email_token=identity.email.token,
        ip_masked=identity.ip.masked,
        ip_token=identity.ip.token,
        device_token=identity.device_token,
        amount_minor=txn.amount_minor,
        currency=txn.currency,
        merchant_id=txn.merchant_id,
        mcc=txn.mcc,
        merchant_country=txn.merchant_country,
        channel=txn.channel,
        event_time=event_time,
        score=verdict.score,
        decision=verdict.decision,
        reasons=verdict.reasons,
        model_version=verdict.model_version,
        features=verdict.features,
        degraded=verdict.degraded,
        kafka_timestamp_ms=kafka_timestamp_ms,
        scored_at=scored_at,
    )


def scored_transaction(
    txn: Transaction,
    masker: Masker,
    verdict: Verdict,
    *,
    kafka_timestamp_ms: int,
    scored_at: datetime,
) -> ScoredTransaction:
    """Build the stored row of a transaction: masked fields plus its verdict."""
    return masked_row(
        txn,
        masker.mask(txn),
        verdict,
        event_time=txn.event_time,
        kafka_timestamp_ms=kafka_timestamp_ms,
        scored_at=scored_at,
    )


def alert_id(txn_id: str, model_version: str) -> str:
    """Return the deterministic id of the alert a model raised on a transaction."""
    return str(uuid.uuid5(ALERT_NAMESPACE, f"{txn_id}/{model_version}"))


def alert_for(row: ScoredTransaction) -> Alert:
    """Summarise a scored row as an alert (masked fields only)."""
    return Alert(
        alert_id=alert_id(row.txn_id, row.model_version),
        txn_id=row.txn_id,
        account_id=row.account_id,
        pan_masked=row.pan_masked,
        pan_token=row.pan_token,
        email_masked=row.email_masked,
        ip_masked=row.ip_masked,
        amount_minor=row.amount_minor,
        currency=row.currency,
        merchant_id=row.merchant_id,
        merchant_country=row.merchant_country,
        channel=row.channel,
        score=row.score,
        decision=row.decision,
        reasons=row.reasons,
        model_version=row.model_version,
        event_time=row.event_time,
        scored_at=row.scored_at,
    )


def dead_letter(
    payload: bytes | None,
    error: Exception,
    *,
    topic: str,
    partition: int,
    offset: int,
    failed_at: datetime | None = None,
) -> DeadLetter:
    """Build the dead letter of a message that failed, scrubbing the payload.

    Args:
        payload: The raw message value (``None`` for a message without one).
        error: Why it failed; :class:`InvalidTransaction` contributes its field
            and reason, any other error its type name.
        topic: Source topic of the message.
        partition: Source partition.
        offset: Source offset.
        failed_at: When it failed; defaults to now.

    Returns:
        The dead letter, safe to publish.
    """
    raw = payload or b""
    scrubbed = scrub_digits(raw)[:MAX_DEAD_LETTER_PAYLOAD]
    text, encoding = _printable(scrubbed)
    field, reason = _field_and_reason(error)
    return DeadLetter(
        payload=text,
        payload_encoding=encoding,
        payload_bytes=len(raw),
        error_type=type(error).__name__,
        field=field,
        reason=reason,
        detail=scrub_text(_detail_of(error)),
        topic=topic,
        partition=partition,
        offset=offset,
        failed_at=failed_at or datetime.now(UTC),
    )


def scrub_text(text: str) -> str:
    """Scrub personal data from text (see :func:`~dataflows.masking.scrub_digits`)."""
    return scrub_digits(text.encode()).decode()


def _printable(scrubbed: bytes) -> tuple[str, Literal["utf-8", "base64"]]:
    try:
        return scrubbed.decode("utf-8"), "utf-8"
    except UnicodeDecodeError:
        return base64.b64encode(scrubbed).decode("ascii"), "base64"


def _field_and_reason(error: Exception) -> tuple[str, str]:
    if isinstance(error, InvalidTransaction):
        return error.field, error.reason
    return "$", "unprocessable"


def _detail_of(error: Exception) -> str:
    if isinstance(error, InvalidTransaction):
        return error.detail
    if isinstance(error, FraudflowError):
        return str(error)
    # Foreign exceptions may quote the value they choked on: keep the type only.
    return f"{type(error).__name__} while processing the record"
