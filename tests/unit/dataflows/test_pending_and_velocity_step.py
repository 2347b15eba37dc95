from datetime import UTC, datetime, timedelta

import bytewax.operators as op
import pytest
from bytewax.dataflow import Dataflow
from bytewax.testing import TestingSink, TestingSource, cluster_main, run_main

from dataflows.config import Settings
from dataflows.masking import Masker
from dataflows.pending import DecodeStep, Pending
from dataflows.schema import encode, example_transaction
from dataflows.source import RawRecord
from dataflows.velocity_step import VelocityLogic, velocity_builder
from featurestore.definitions import VELOCITY_NAMES
from featurestore.velocity import AccountVelocity

KEY = b"unit-test-key-unit-test-key-1234"
START = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)


def raw(offset, **overrides):
    txn = example_transaction(txn_id=f"t-{offset}", **overrides)
    return RawRecord(txn.account_id.encode(), encode(txn), 0, offset, 1_000 + offset)


def test_decode_step_masks_every_personal_field_before_keying():
    step = DecodeStep(Masker(KEY))
    [(key, pending)] = step([raw(1)])
    assert key == "acct-000001"
    assert isinstance(pending, Pending)
    text = repr(pending)
    for secret in (
        "4111111111111111",
        "jane.doe@example.com",
        "203.0.113.7",
        "dev-7f3a",
    ):
        assert secret not in text
    assert pending.identity.pan.masked == "411111******1111"
    assert pending.kafka_timestamp_ms == 1_001


def test_decode_step_turns_bad_records_into_rejections_and_keeps_going():
    step = DecodeStep(Masker(KEY))
    garbage = RawRecord(b"k", b"\x00garbage", 3, 17, 5)
    empty = RawRecord(None, None, 3, 18, 6)
    out = step([raw(1), garbage, empty, raw(2, pan="4111111111111112")])
    kinds = [type(item).__name__ for item in out]
    assert kinds == ["tuple", "Rejected", "Rejected", "Rejected"]
    assert [item.error.reason for item in out[1:]] == [
        "malformed_json",
        "empty",
        "luhn_failed",
    ]
    assert out[1].record.offset == 17


def _velocity_flow(events):
    """Run the velocity step over (account, minute, amount) events."""
    pendings = []
    step = DecodeStep(Masker(KEY))
    for index, (account, minute, amount) in enumerate(events):
        record = raw(
            index,
            account_id=account,
            amount_minor=amount,
            event_time=START + timedelta(minutes=minute),
        )
        pendings.extend(step([record]))
    flow = Dataflow("velocity_test")
    stream = op.input("in", flow, TestingSource(pendings, batch_size=50))
    settings = Settings()
    state = op.stateful_batch("velocity", stream, velocity_builder(settings))
    out = []
    op.output("out", state, TestingSink(out))
    return flow, out


EVENTS = [
    (f"acct-{account}", minute, 100 + account * 10 + minute)
    for minute in range(0, 30, 3)
    for account in range(6)
]


def _features_by_txn(out):
    return {pending.txn_id: update.features for _account, (pending, update) in out}


def _expected():
    accounts = {}
    expected = {}
    step = DecodeStep(Masker(KEY))
    for index, (account, minute, amount) in enumerate(EVENTS):
        [(_, pending)] = step(
            [
                raw(
                    index,
                    account_id=account,
                    amount_minor=amount,
                    event_time=START + timedelta(minutes=minute),
                )
            ]
        )
        velocity = accounts.setdefault(account, AccountVelocity())
        expected[pending.txn_id] = velocity.update(
            pending.event_ms,
            pending.amount_minor,
            pending.merchant_id,
            pending.merchant_country,
            pending.identity.device_token,
        ).features
    return expected


def test_velocity_step_with_one_worker_matches_the_plain_logic():
    flow, out = _velocity_flow(EVENTS)
    run_main(flow)
    assert len(out) == len(EVENTS)
    assert _features_by_txn(out) == _expected()


def test_velocity_step_with_three_workers_keys_each_account_to_one_state():
    flow, out = _velocity_flow(EVENTS)
    cluster_main(flow, addresses=[], proc_id=0, worker_count_per_proc=3)
    assert len(out) == len(EVENTS)
    features = _features_by_txn(out)
    assert features == _expected()
    count_10m = VELOCITY_NAMES.index("txn_count_10m")
    # Every 3 minutes per account: a 10-minute window holds at most 4.
    assert max(row[count_10m] for row in features.values()) == 4


def test_an_idle_account_is_discarded_and_snapshots_are_compact():
    idle_ttl = timedelta(hours=1)
    logic = VelocityLogic(AccountVelocity(), idle_ttl)
    step = DecodeStep(Masker(KEY))
    [(_, pending)] = step([raw(1)])
    before = datetime.now(UTC)
    emitted, retain = logic.on_batch([pending])
    after = datetime.now(UTC)
    assert retain is False
    assert len(emitted) == 1
    # The idle timer restarts at the batch, however slowly the test runs;
    # the slack absorbs rounding between clock readings.
    slack = timedelta(milliseconds=1)
    assert before + idle_ttl - slack <= logic.notify_at() <= after + idle_ttl + slack
    assert logic.on_notify() == ([], True)
    snapshot = logic.snapshot()
    assert "dev-7f3a" not in repr(snapshot)
    assert len(repr(snapshot)) < 400


@pytest.mark.parametrize("resume", [None, "snapshot"])
def test_the_builder_restores_state_from_a_snapshot(resume):
    build = velocity_builder(Settings())
    step = DecodeStep(Masker(KEY))
    [(_, first)] = step([raw(1)])
    logic = build(None)
    logic.on_batch([first])
    restored = build(logic.snapshot() if resume else None)
    [(_, second)] = step([raw(2, event_time=START + timedelta(minutes=1))])
    [(_, update)], _retain = restored.on_batch([second])
    count_1h = VELOCITY_NAMES.index("txn_count_1h")
    assert update.features[count_1h] == (2.0 if resume else 1.0)
