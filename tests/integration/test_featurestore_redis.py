from __future__ import annotations

import os
import subprocess
import sys
import uuid
from datetime import UTC, datetime
from pathlib import Path

import polars as pl
import pytest
import redis

from featurestore.materialize import materialize
from featurestore.profiles import compute_profiles, profiles_from_frame
from featurestore.store import ProfileLookup, ProfileStore

# The edge-case history generator lives with the feature store's unit tests.
sys.path.insert(0, str(Path(__file__).parents[1] / "unit" / "featurestore"))
from feature_edge_history import synthetic_history

pytestmark = pytest.mark.integration

AS_OF = datetime(2026, 11, 8, tzinfo=UTC)


@pytest.fixture
def history(tmp_path: Path) -> Path:
    """A small history whose account ids are unique to this test."""
    transactions, labels = synthetic_history(accounts=40, per_account=20, seed=5)
    tag = uuid.uuid4().hex[:8]
    rename = pl.format("{}-{}", pl.lit(tag), pl.col("account_id"))
    transactions.with_columns(account_id=rename).write_parquet(
        tmp_path / "transactions.parquet"
    )
    labels.with_columns(account_id=rename).write_parquet(tmp_path / "labels.parquet")
    return tmp_path


def _expected(history: Path) -> dict:
    transactions = pl.read_parquet(history / "transactions.parquet")
    labels = pl.read_parquet(history / "labels.parquet")
    return profiles_from_frame(compute_profiles(transactions, labels, AS_OF))


def _mget_calls(client: redis.Redis) -> int:
    return int(client.info("commandstats").get("cmdstat_mget", {}).get("calls", 0))


def test_materialized_profiles_read_back_equal_with_a_ttl(settings, history):
    prefix = f"test-{uuid.uuid4().hex[:8]}:"
    store = ProfileStore.from_url(settings.redis_url, timeout_s=2.0, prefix=prefix)
    expected = _expected(history)

    written = materialize(history, store, AS_OF, ttl_s=600, batch_size=7)
    lookups = store.read_many([*expected, "no-such-account"])

    assert written == len(expected) > 0
    assert lookups[:-1] == [ProfileLookup(p, False) for p in expected.values()]
    assert lookups[-1] == ProfileLookup(None, False)
    client = redis.Redis.from_url(settings.redis_url)
    assert 0 < client.ttl(store.key(next(iter(expected)))) <= 600
    store.close()


def test_a_batch_costs_one_mget_and_a_cached_batch_none(settings, history):
    prefix = f"test-{uuid.uuid4().hex[:8]}:"
    store = ProfileStore.from_url(settings.redis_url, timeout_s=2.0, prefix=prefix)
    accounts = list(_expected(history))
    client = redis.Redis.from_url(settings.redis_url)

    before = _mget_calls(client)
    store.read_many(accounts)
    after_first = _mget_calls(client)
    store.read_many(accounts)

    assert after_first - before == 1
    assert _mget_calls(client) == after_first
    store.close()


def test_the_command_line_materializes_into_the_configured_redis(settings, history):
    environment = {**os.environ, "REDIS_URL": settings.redis_url}
    command = [sys.executable, "-m", "featurestore.materialize", str(history)]
    command += ["--as-of", AS_OF.date().isoformat(), "--ttl-hours", "1"]

    result = subprocess.run(
        command, env=environment, capture_output=True, text=True, check=False
    )

    assert result.returncode == 0, result.stderr
    expected = _expected(history)
    store = ProfileStore.from_url(settings.redis_url, timeout_s=2.0)
    lookups = store.read_many(list(expected))
    assert [lookup.profile for lookup in lookups] == list(expected.values())
    store.close()
