from __future__ import annotations

import socket

import redis

from featurestore.profiles import Profile
from featurestore.store import (
    ProfileCache,
    ProfileLookup,
    ProfileStore,
    encode_profile,
)

PROFILE = Profile(86_400_000, 0, 3, 1234.5, 17.25, "US", ("5411", "5812"), 1)


class CountingRedis:
    """Stands in for a Redis client: a dict, with a count of MGET calls."""

    def __init__(self, values: dict[str, bytes | str], fail: bool = False):
        self.values = values
        self.fail = fail
        self.mget_calls = 0

    def mget(self, keys):
        self.mget_calls += 1
        if self.fail:
            raise redis.ConnectionError("refused")
        return [self.values.get(key) for key in keys]


def test_one_mget_serves_a_batch_and_the_cache_serves_the_next():
    client = CountingRedis({"p:a": encode_profile(PROFILE)})
    # A TTL far beyond the test's run time, so a slow machine cannot expire it.
    store = ProfileStore(client, prefix="p:", cache_ttl_s=3600)

    first = store.read_many(["a", "b", "a"])
    second = store.read_many(["a", "b"])

    found, missing = ProfileLookup(PROFILE, False), ProfileLookup(None, False)
    assert first == [found, missing, found]
    assert second == first[:2]
    assert client.mget_calls == 1


def test_an_unreadable_value_degrades_that_row_only():
    client = CountingRedis({"p:a": b"\xc1junk", "p:b": encode_profile(PROFILE)})

    lookups = ProfileStore(client, prefix="p:").read_many(["a", "b"])

    assert lookups == [ProfileLookup(None, True), ProfileLookup(PROFILE, False)]


def test_after_a_failure_reads_degrade_without_asking_redis_again():
    client = CountingRedis({}, fail=True)
    store = ProfileStore(client, prefix="p:", retry_after_s=3600)

    first = store.read_many(["a"])
    second = store.read_many(["a", "b"])

    assert first == [ProfileLookup(None, True)]
    assert second == [ProfileLookup(None, True)] * 2
    assert client.mget_calls == 1


def test_failures_are_not_cached_so_reads_recover():
    client = CountingRedis({"p:a": encode_profile(PROFILE)}, fail=True)
    store = ProfileStore(client, prefix="p:", retry_after_s=0)
    assert store.read_many(["a"]) == [ProfileLookup(None, True)]

    client.fail = False

    assert store.read_many(["a"]) == [ProfileLookup(PROFILE, False)]


def test_a_refused_connection_gives_defaults_and_never_raises():
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    store = ProfileStore.from_url(f"redis://127.0.0.1:{port}/0", timeout_s=0.2)

    assert store.read_many(["a", "b"]) == [ProfileLookup(None, True)] * 2
    store.close()


def test_a_value_read_as_text_degrades_that_row_only():
    client = CountingRedis({"p:a": "text", "p:b": encode_profile(PROFILE)})

    lookups = ProfileStore(client, prefix="p:").read_many(["a", "b"])

    assert lookups == [ProfileLookup(None, True), ProfileLookup(PROFILE, False)]


class Clock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now


FOUND = ProfileLookup(PROFILE, False)
MISSING = ProfileLookup(None, False)


def test_the_cache_forgets_an_entry_once_its_time_is_up():
    clock = Clock()
    cache = ProfileCache(size=10, ttl_s=30, clock=clock)
    cache.put_many({"a": FOUND})

    clock.now += 29.9
    assert cache.get_many(["a", "b"]) == {"a": FOUND}

    clock.now += 0.2
    assert cache.get_many(["a"]) == {}
    assert len(cache) == 0


def test_a_refreshed_entry_lives_a_full_ttl_again():
    clock = Clock()
    cache = ProfileCache(size=10, ttl_s=30, clock=clock)
    cache.put_many({"a": MISSING, "b": FOUND})
    clock.now += 20
    cache.put_many({"a": FOUND})

    clock.now += 15  # b is 35 s old, a 15 s

    assert cache.get_many(["a", "b"]) == {"a": FOUND}


def test_a_full_cache_drops_the_entry_closest_to_expiring():
    clock = Clock()
    cache = ProfileCache(size=2, ttl_s=30, clock=clock)
    cache.put_many({"a": FOUND})
    clock.now += 1
    cache.put_many({"b": FOUND})
    clock.now += 1
    cache.put_many({"c": FOUND})

    assert cache.get_many(["a", "b", "c"]) == {"b": FOUND, "c": FOUND}


def test_an_expired_profile_is_read_from_redis_again():
    client = CountingRedis({"p:a": encode_profile(PROFILE)})
    store = ProfileStore(client, prefix="p:", cache_ttl_s=30)
    clock = Clock()
    store._cache = ProfileCache(100, 30, clock=clock)

    store.read_many(["a"])
    store.read_many(["a"])
    clock.now += 31
    store.read_many(["a"])

    assert client.mget_calls == 2
