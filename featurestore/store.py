"""The Redis online store of account profiles.

Materialization writes each account's :class:`~featurestore.profiles.Profile`
as a compact MessagePack array under ``<prefix><account_id>``, in pipelined
batches, with a time-to-live so accounts that stop appearing age out.

Scoring reads a whole micro-batch with one ``MGET``, after a small in-process
cache whose entries expire (:class:`ProfileCache`). Reads never raise into
scoring: a missing key gives no profile, and an unreachable or misbehaving
Redis gives no profile with ``degraded`` set, so the transaction is scored
with default profile features and flagged. After a failure the store stops
asking Redis for ``retry_after_s``, so an outage costs one timeout per
interval rather than one per micro-batch.

Example:
    >>> store = ProfileStore.from_url("redis://127.0.0.1:6379/0")  # doctest: +SKIP
    >>> store.read_many(["acct-000001"])[0].degraded  # doctest: +SKIP
    False
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from itertools import islice
from typing import Final, NamedTuple

import msgspec
import redis

from dataflows.errors import FeatureStoreUnavailable
from featurestore.profiles import Profile

logger = logging.getLogger(__name__)

DEFAULT_PREFIX: Final = "fraudflow:profile:"

_encoder = msgspec.msgpack.Encoder()
_decoder = msgspec.msgpack.Decoder(Profile)


class ProfileLookup(NamedTuple):
    """The outcome of reading one account's profile.

    Attributes:
        profile: The profile, or None when there is none to use.
        degraded: True when Redis could not answer (or held an unreadable
            value), so the defaults stand in for a profile that may exist.
    """

    profile: Profile | None
    degraded: bool


_MISSING: Final = ProfileLookup(None, False)
_DEGRADED: Final = ProfileLookup(None, True)


class ProfileCache:
    """Lookups read recently, each reused for ``ttl_s`` seconds, at most ``size``.

    Every entry lives equally long and a refreshed entry moves to the end, so
    the dictionary's insertion order is expiry order: expiring is popping from
    the front, and a full cache drops the entry closest to expiring. The clock
    is read once per micro-batch, not per account. (``cachetools.TTLCache``
    reads the clock and takes a lock on every lookup; on the scoring path that
    cost 4-8 us per transaction, a sixth of the score step.)

    Args:
        size: Most entries kept.
        ttl_s: Seconds an entry is reused.
        clock: Monotonic clock in seconds.
    """

    def __init__(
        self, size: int, ttl_s: float, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._entries: dict[str, tuple[float, ProfileLookup]] = {}
        self._size = size
        self._ttl_s = ttl_s
        self._clock = clock

    def __len__(self) -> int:
        """Entries held, expired ones included until the next read."""
        return len(self._entries)

    def get_many(self, account_ids: Iterable[str]) -> dict[str, ProfileLookup]:
        """The cached lookups among ``account_ids``, after dropping expired ones."""
        self._expire(self._clock())
        entries = self._entries
        return {
            account_id: entry[1]
            for account_id in account_ids
            if (entry := entries.get(account_id)) is not None
        }

    def put_many(self, lookups: dict[str, ProfileLookup]) -> None:
        """Cache lookups from now on, dropping the oldest past ``size``."""
        expires_at = self._clock() + self._ttl_s
        entries = self._entries
        for account_id, lookup in lookups.items():
            entries.pop(account_id, None)
            entries[account_id] = (expires_at, lookup)
        while len(entries) > self._size:
            del entries[next(iter(entries))]

    def _expire(self, now: float) -> None:
        entries = self._entries
        while entries:
            oldest = next(iter(entries))
            if entries[oldest][0] > now:
                return
            del entries[oldest]


def encode_profile(profile: Profile) -> bytes:
    """Return the stored form of a profile (a MessagePack array)."""
    return _encoder.encode(profile)


def decode_profile(payload: bytes) -> Profile:
    """Decode :func:`encode_profile` output.

    Raises:
        msgspec.DecodeError: for bytes that are not a stored profile.
    """
    return _decoder.decode(payload)


def _chunks(
    items: Iterable[tuple[str, Profile]], size: int
) -> Iterator[list[tuple[str, Profile]]]:
    """Yield lists of at most ``size`` items."""
    iterator = iter(items)
    while chunk := list(islice(iterator, size)):
        yield chunk


class ProfileStore:
    """Reads and writes account profiles in Redis.

    Args:
        client: A Redis client; give it short socket timeouts, since every
            read sits on the scoring path.
        prefix: Key prefix of profile entries.
        cache_ttl_s: How long a read profile (or its absence) is reused
            without asking Redis. Longer saves round trips but delays a new
            materialization reaching scoring.
        cache_size: Accounts kept in the cache; more costs memory.
        retry_after_s: After a failed read, how long to answer degraded
            without trying Redis.
    """

    def __init__(
        self,
        client: redis.Redis,
        *,
        prefix: str = DEFAULT_PREFIX,
        cache_ttl_s: float = 30.0,
        cache_size: int = 100_000,
        retry_after_s: float = 1.0,
    ) -> None:
        self._client = client
        self._prefix = prefix
        self._cache = ProfileCache(cache_size, cache_ttl_s)
        self._retry_after_s = retry_after_s
        self._down_until = 0.0

    @classmethod
    def from_url(cls, url: str, timeout_s: float = 0.05, **options) -> ProfileStore:
        """Connect lazily to ``url`` with socket timeouts of ``timeout_s``.

        Args:
            url: A ``redis://`` URL (from ``REDIS_URL``).
            timeout_s: Connect and read timeout, seconds.
            **options: Passed to :class:`ProfileStore`.

        Returns:
            The store; no connection is made until the first command.
        """
        client = redis.Redis.from_url(
            url, socket_timeout=timeout_s, socket_connect_timeout=timeout_s
        )
        return cls(client, **options)

    def close(self) -> None:
        """Release the client's connections."""
        self._client.close()

    def key(self, account_id: str) -> str:
        """Return the Redis key of an account's profile."""
        return self._prefix + account_id

    def write(
        self,
        profiles: Iterable[tuple[str, Profile]],
        ttl_s: int,
        batch_size: int = 1000,
    ) -> Iterator[int]:
        """Write profiles with a TTL, one pipeline per batch.

        Args:
            profiles: ``(account_id, profile)`` pairs.
            ttl_s: Seconds until each written profile expires.
            batch_size: Profiles per pipelined round trip.

        Yields:
            The number of profiles written by each batch, once it is confirmed.

        Raises:
            FeatureStoreUnavailable: when Redis refuses or drops a batch.
        """
        for chunk in _chunks(profiles, batch_size):
            pipeline = self._client.pipeline(transaction=False)
            for account_id, profile in chunk:
                pipeline.set(self.key(account_id), encode_profile(profile), ex=ttl_s)
            try:
                pipeline.execute()
            except redis.RedisError as exc:
                message = f"writing {len(chunk)} profiles to Redis failed: {exc}"
                raise FeatureStoreUnavailable(message) from exc
            yield len(chunk)

    def read_many(self, account_ids: Sequence[str]) -> list[ProfileLookup]:
        """Read the profiles of a micro-batch: cache first, then one MGET.

        Args:
            account_ids: The batch's account ids, repeats allowed.

        Returns:
            One lookup per account id, in the same order. Never raises.
        """
        found = self._cache.get_many(account_ids)
        if len(found) < len(account_ids):
            wanted = list(dict.fromkeys(a for a in account_ids if a not in found))
            if wanted:
                found.update(self._fetch(wanted))
        return [found[account_id] for account_id in account_ids]

    def _fetch(self, account_ids: list[str]) -> dict[str, ProfileLookup]:
        """Read uncached profiles with one MGET; degrade on any failure."""
        if time.monotonic() < self._down_until:
            return dict.fromkeys(account_ids, _DEGRADED)
        try:
            payloads = self._client.mget([self.key(a) for a in account_ids])
        except redis.RedisError as exc:
            self._down_until = time.monotonic() + self._retry_after_s
            logger.warning(
                "profile read degraded accounts=%s error=%s", len(account_ids), exc
            )
            return dict.fromkeys(account_ids, _DEGRADED)

        lookups = {
            account_id: self._lookup(payload)
            for account_id, payload in zip(account_ids, payloads, strict=True)
        }
        self._cache.put_many(
            {account_id: hit for account_id, hit in lookups.items() if not hit.degraded}
        )
        return lookups

    @staticmethod
    def _lookup(payload: bytes | str | None) -> ProfileLookup:
        """Turn one MGET answer into a lookup."""
        if payload is None:
            return _MISSING
        if isinstance(payload, str):
            # Profiles are binary; only a client decoding responses answers text.
            logger.warning("profile value in Redis read as text, not bytes")
            return _DEGRADED
        try:
            return ProfileLookup(decode_profile(payload), False)
        except msgspec.DecodeError as exc:
            logger.warning("unreadable profile value in Redis error=%s", exc)
            return _DEGRADED
