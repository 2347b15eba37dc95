"""The migrations and the PostgreSQL sink against the real local PostgreSQL."""

from __future__ import annotations

import logging
import shutil
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path

import bytewax.operators as op
import psycopg
import pytest
from bytewax.dataflow import Dataflow
from bytewax.testing import TestingSource, run_main
from psycopg.rows import dict_row

from dataflows.errors import ConfigurationError, DatabaseUnavailable
from dataflows.masking import Masker
from dataflows.migrate import MIGRATIONS_DIR, apply_migrations, load_migrations
from dataflows.records import ScoredTransaction, Verdict, scored_transaction
from dataflows.schema import example_transaction
from dataflows.sinks import PostgresSink, ScoredRowWriter
from deploy.stack import free_port
from tests.pii import find_pii_in

pytestmark = pytest.mark.integration

VERDICTS = [
    Verdict(0.02, "allow", [], "m-test", {"amount_z": 0.1}),
    Verdict(0.97, "block", ["velocity_1h", "new_device"], "m-test", {"amount_z": 4.0}),
]


@pytest.fixture
def database(stack) -> Iterator[str]:
    """A fresh, empty database on the stack's PostgreSQL, dropped afterwards."""
    name = f"test_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(stack.database_url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    yield stack.database_url.rsplit("/", 1)[0] + f"/{name}"
    with psycopg.connect(stack.database_url, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE "{name}" WITH (FORCE)')


@pytest.fixture
def migrated(database: str) -> str:
    apply_migrations(database)
    return database


def scored_rows(count: int, prefix: str = "t") -> list[ScoredTransaction]:
    masker = Masker(b"k" * 32)
    now_ms = int(time.time() * 1000)
    return [
        scored_transaction(
            example_transaction(txn_id=f"{prefix}-{i}", account_id=f"acct-{i % 7}"),
            masker,
            VERDICTS[i % 2],
            kafka_timestamp_ms=now_ms,
            scored_at=datetime.now(UTC),
        )
        for i in range(count)
    ]


def fetch_rows(conninfo: str) -> list[dict]:
    with psycopg.connect(conninfo, row_factory=dict_row) as conn:
        return conn.execute(
            "SELECT * FROM scored_transactions ORDER BY txn_id"
        ).fetchall()


def test_migrations_apply_once_and_then_find_nothing_to_do(database: str):
    first = apply_migrations(database)
    second = apply_migrations(database)

    assert first == [migration.version for migration in load_migrations()]
    assert second == []
    with psycopg.connect(database) as conn:
        tables = conn.execute(
            "SELECT tablename FROM pg_tables WHERE schemaname = 'public'"
        ).fetchall()
    assert {"scored_transactions", "model_versions", "schema_migrations"} <= {
        table for (table,) in tables
    }


def test_processes_migrating_at_once_apply_each_migration_exactly_once(database: str):
    with ThreadPoolExecutor(max_workers=6) as pool:
        results = list(pool.map(lambda _: apply_migrations(database), range(6)))

    applied = [version for result in results for version in result]
    assert sorted(applied) == [migration.version for migration in load_migrations()]
    with psycopg.connect(database) as conn:
        (count,) = conn.execute("SELECT count(*) FROM schema_migrations").fetchone()
    assert count == len(applied)


def test_an_applied_migration_that_was_edited_is_refused(database: str, tmp_path: Path):
    shutil.copytree(MIGRATIONS_DIR, tmp_path, dirs_exist_ok=True)
    apply_migrations(database, tmp_path)
    edited = sorted(tmp_path.glob("*.sql"))[0]
    edited.write_text(edited.read_text() + "\n-- edited\n")

    with pytest.raises(ConfigurationError, match=edited.stem):
        apply_migrations(database, tmp_path)


def test_a_batch_written_twice_gives_one_row_per_transaction(migrated: str):
    writer = ScoredRowWriter(migrated)
    rows = scored_rows(500)

    first = writer.write(rows)
    second = writer.write(rows[100:] + scored_rows(10, prefix="new"))
    writer.close()

    stored = fetch_rows(migrated)
    assert (first, second) == (500, 10)
    assert len(stored) == 510
    assert len({row["txn_id"] for row in stored}) == 510


def test_stored_rows_keep_their_types_and_hold_no_personal_data(migrated: str):
    rows = scored_rows(4)
    writer = ScoredRowWriter(migrated)
    before_ms = time.time() * 1000
    writer.write(rows)
    after_ms = time.time() * 1000
    writer.close()

    stored = {row["txn_id"]: row for row in fetch_rows(migrated)}
    blocked = stored["t-1"]
    assert blocked["reasons"] == ["velocity_1h", "new_device"]
    assert blocked["features"] == {"amount_z": 4.0}
    assert blocked["event_time"] == rows[1].event_time
    written_ms = rows[1].kafka_timestamp_ms + blocked["latency_ms"]
    assert before_ms - 1 <= written_ms <= after_ms + 1, "stamped during the write"
    assert blocked["amount_minor"] == 1250
    assert find_pii_in(list(stored.values())) == []


def test_an_unreachable_database_is_retried_then_raises(caplog):
    caplog.set_level(logging.WARNING, logger="dataflows.sinks")
    writer = ScoredRowWriter(
        f"postgresql://postgres@127.0.0.1:{free_port()}/none?connect_timeout=1",
        retry_budget_s=2.0,
    )

    with pytest.raises(DatabaseUnavailable, match="batch of 3 rows"):
        writer.write(scored_rows(3))
    writer.close()

    retries = [r for r in caplog.records if "retrying write" in r.getMessage()]
    assert len(retries) >= 1


def test_a_dropped_connection_is_retried_and_the_batch_lands(migrated: str, caplog):
    caplog.set_level(logging.WARNING, logger="dataflows.sinks")
    writer = ScoredRowWriter(migrated, min_size=1, max_size=1, name="sink-under-test")
    writer.write(scored_rows(5, prefix="before"))
    with psycopg.connect(migrated, autocommit=True) as admin:
        admin.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE application_name = 'sink-under-test'"
        )

    inserted = writer.write(scored_rows(5, prefix="after"))
    writer.close()

    assert inserted == 5
    assert len(fetch_rows(migrated)) == 10
    assert any("retrying write" in r.getMessage() for r in caplog.records)


def test_the_bytewax_sink_writes_every_item_of_a_flow(migrated: str, settings):
    rows = scored_rows(300)
    flow = Dataflow("postgres-sink-test")
    stream = op.input("rows", flow, TestingSource(rows, batch_size=64))
    op.output(
        "store",
        stream,
        PostgresSink(settings.model_copy(update={"database_url": migrated})),
    )

    run_main(flow)

    assert [row["txn_id"] for row in fetch_rows(migrated)] == sorted(
        r.txn_id for r in rows
    )
