"""The first step of the flow: raw Kafka records to masked, keyed transactions.

Personal data is masked here, before anything is keyed, exchanged between
processes, held in state or snapshotted for recovery: past this step the flow
holds only display forms and keyed tokens of card numbers, emails, IPs and
device ids. A record that does not decode becomes a :class:`Rejected` bound for
the dead-letter topic; it never stops the flow.

Example:
    >>> step = DecodeStep(Masker(b"k" * 32))
    >>> keyed, rejected = step.split([raw_record])  # doctest: +SKIP
"""

from __future__ import annotations

import logging
import time
from datetime import UTC, datetime
from typing import NamedTuple

import msgspec

from dataflows import metrics
from dataflows.errors import InvalidTransaction
from dataflows.masking import MaskedIdentity, Masker
from dataflows.schema import decode
from dataflows.source import RawRecord

LOG = logging.getLogger(__name__)


class Pending(msgspec.Struct, gc=False, frozen=True):
    """A valid transaction on its way to scoring, with personal data masked."""

    txn_id: str
    account_id: str
    amount_minor: int
    currency: str
    merchant_id: str
    mcc: str
    merchant_country: str
    channel: str
    event_ms: int
    identity: MaskedIdentity
    kafka_timestamp_ms: int
    partition: int
    offset: int


class Rejected(NamedTuple):
    """A record that failed decoding, and why."""

    record: RawRecord
    error: InvalidTransaction


class DecodeStep:
    """Decode, validate and mask a batch of raw records.

    Args:
        masker: Masks and tokenises the personal fields.
    """

    def __init__(self, masker: Masker):
        self.masker = masker

    def __call__(
        self, records: list[RawRecord]
    ) -> list[tuple[str, Pending] | Rejected]:
        """Return ``(account_id, Pending)`` pairs and :class:`Rejected` records."""
        started = time.perf_counter()
        now = datetime.now(UTC)
        out: list[tuple[str, Pending] | Rejected] = []
        for record in records:
            try:
                pending = self._pending(record, now)
            except InvalidTransaction as error:
                LOG.debug(
                    "rejected partition=%s offset=%s field=%s reason=%s",
                    record.partition,
                    record.offset,
                    error.field,
                    error.reason,
                )
                out.append(Rejected(record, error))
                continue
            out.append((pending.account_id, pending))
        metrics.observe_stage("decode", time.perf_counter() - started)
        return out

    def _pending(self, record: RawRecord, now: datetime) -> Pending:
        # The message key is not trusted: the flow re-keys by the account id
        # in the value, so one account's state stays on one worker either way.
        txn = decode(record.value, now)  # type: ignore[arg-type]
        return Pending(
            txn_id=txn.txn_id,
            account_id=txn.account_id,
            amount_minor=txn.amount_minor,
            currency=txn.currency,
            merchant_id=txn.merchant_id,
            mcc=txn.mcc,
            merchant_country=txn.merchant_country,
            channel=txn.channel,
            event_ms=txn.event_ms,
            identity=self.masker.mask(txn),
            kafka_timestamp_ms=record.timestamp_ms,
            partition=record.partition,
            offset=record.offset,
        )
