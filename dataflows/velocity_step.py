"""The dataflow's per-account state: velocity features inside Bytewax.

:class:`VelocityLogic` wraps one :class:`~featurestore.velocity.AccountVelocity`
per account in a ``StatefulBatchLogic``: every transaction of a batch for that
account updates the windows and leaves with its velocity features. An account
that stays quiet for ``account_idle_ttl_s`` of wall-clock time is discarded, so
state (and the recovery store) does not grow with every account ever seen;
discarding after the 24 h idle reset never changes a feature.

Example:
    >>> keyed = op.key_on("key", pending, lambda p: p.account_id)  # doctest: +SKIP
    >>> builder = velocity_builder(settings)
    >>> op.stateful_batch("velocity", keyed, builder)  # doctest: +SKIP
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from bytewax.operators import StatefulBatchLogic

from dataflows.config import Settings
from dataflows.pending import Pending
from featurestore.velocity import AccountVelocity, Snapshot, VelocityUpdate

Scored = tuple[Pending, VelocityUpdate]


class VelocityLogic(StatefulBatchLogic[Pending, Scored, Snapshot]):
    """Velocity state of one account inside the flow.

    One object lives per active account, so it keeps slots and a float
    expiry (not a ``datetime``): a million accounts hold a million of them.

    Args:
        account: The account's velocity state.
        idle_ttl: Wall-clock quiet time after which the state is discarded.
    """

    __slots__ = ("account", "expires_at_s", "idle_ttl_s")

    def __init__(self, account: AccountVelocity, idle_ttl: timedelta):
        self.account = account
        self.idle_ttl_s = idle_ttl.total_seconds()
        self.expires_at_s = time.time() + self.idle_ttl_s

    def on_batch(self, values: list[Pending]) -> tuple[list[Scored], bool]:
        """Update the windows with each transaction; emit it with its features."""
        update = self.account.update
        out = [
            (
                pending,
                update(
                    pending.event_ms,
                    pending.amount_minor,
                    pending.merchant_id,
                    pending.merchant_country,
                    pending.identity.device_token,
                ),
            )
            for pending in values
        ]
        self.expires_at_s = time.time() + self.idle_ttl_s
        return out, StatefulBatchLogic.RETAIN

    def notify_at(self) -> datetime:
        """Wake up when the account has been idle for the TTL."""
        return datetime.fromtimestamp(self.expires_at_s, UTC)

    def on_notify(self) -> tuple[list[Scored], bool]:
        """Discard an idle account."""
        return [], StatefulBatchLogic.DISCARD

    def snapshot(self) -> Snapshot:
        """Compact bytes of the state (called every epoch per touched key)."""
        return self.account.snapshot()


def velocity_builder(
    settings: Settings,
) -> Callable[[Snapshot | None], VelocityLogic]:
    """Return the ``stateful_batch`` builder for the configured lateness and TTL."""
    lateness_ms = int(settings.allowed_lateness_s * 1000)
    idle_ttl = timedelta(seconds=settings.account_idle_ttl_s)

    def build(resume: Snapshot | None) -> VelocityLogic:
        if resume is None:
            account = AccountVelocity(lateness_ms)
        else:
            account = AccountVelocity.restore(resume, lateness_ms)
        return VelocityLogic(account, idle_ttl)

    return build
