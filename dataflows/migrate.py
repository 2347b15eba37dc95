"""Apply the PostgreSQL schema migrations in ``deploy/migrations`` in order.

Each ``NNN_name.sql`` file runs once, in its own transaction, and is recorded
in ``schema_migrations`` with a checksum. Every process may call
:func:`apply_migrations` at start: a session advisory lock lets one apply while
the others wait, after which they find nothing left to do. A recorded file
whose text has changed since is refused, because the database would no longer
match what the file says.

Run by hand with ``python -m dataflows.migrate`` (uses ``DATABASE_URL``).

Example:
    >>> apply_migrations("postgresql:///fraudflow")  # doctest: +SKIP
    ['001_scored_transactions', '002_model_versions']
"""

from __future__ import annotations

import hashlib
import logging
from pathlib import Path
from typing import Final

import msgspec
import psycopg

from dataflows.config import Settings
from dataflows.errors import ConfigurationError, DatabaseUnavailable

logger = logging.getLogger(__name__)

MIGRATIONS_DIR: Final = Path(__file__).resolve().parents[1] / "deploy" / "migrations"

#: Key of the advisory lock serialising migrations (any constant shared by all
#: fraudflow processes; "fraudflw" in ASCII).
LOCK_KEY: Final = 0x6672617564666C77

_CREATE_LEDGER = """
CREATE TABLE IF NOT EXISTS schema_migrations (
    version    text PRIMARY KEY,
    checksum   text NOT NULL,
    applied_at timestamptz NOT NULL DEFAULT now()
)
"""


class Migration(msgspec.Struct, frozen=True):
    """One migration file."""

    version: str
    sql: str

    @property
    def checksum(self) -> str:
        """SHA-256 of the file's text."""
        return hashlib.sha256(self.sql.encode()).hexdigest()


def load_migrations(directory: Path = MIGRATIONS_DIR) -> list[Migration]:
    """Read ``*.sql`` files in name order; the name without suffix is the version."""
    paths = sorted(directory.glob("*.sql"))
    return [Migration(path.stem, path.read_text()) for path in paths]


def apply_migrations(conninfo: str, directory: Path = MIGRATIONS_DIR) -> list[str]:
    """Apply every migration not yet recorded, in order.

    Args:
        conninfo: libpq connection string or URI.
        directory: Where the ``*.sql`` files are.

    Returns:
        The versions applied by this call (empty when up to date).

    Raises:
        DatabaseUnavailable: when PostgreSQL cannot be reached.
        ConfigurationError: when an applied migration's file has changed.
    """
    migrations = load_migrations(directory)
    try:
        with psycopg.connect(conninfo, autocommit=True) as conn:
            conn.execute("SELECT pg_advisory_lock(%s)", (LOCK_KEY,))
            try:
                return _apply_pending(conn, migrations)
            finally:
                conn.execute("SELECT pg_advisory_unlock(%s)", (LOCK_KEY,))
    except psycopg.OperationalError as exc:
        detail = f"expected PostgreSQL to accept a connection to migrate: {exc}"
        raise DatabaseUnavailable(detail) from exc


def _apply_pending(conn: psycopg.Connection, migrations: list[Migration]) -> list[str]:
    """Apply what is missing; the caller holds the advisory lock."""
    conn.execute(_CREATE_LEDGER)
    rows = conn.execute("SELECT version, checksum FROM schema_migrations").fetchall()
    applied: dict[str, str] = dict(rows)

    done = []
    for migration in migrations:
        if migration.version in applied:
            _check_unchanged(migration, applied[migration.version])
            continue
        with conn.transaction():
            conn.execute(migration.sql.encode())
            conn.execute(
                "INSERT INTO schema_migrations (version, checksum) VALUES (%s, %s)",
                (migration.version, migration.checksum),
            )
        logger.info("applied migration version=%s", migration.version)
        done.append(migration.version)
    return done


def _check_unchanged(migration: Migration, recorded_checksum: str) -> None:
    if migration.checksum != recorded_checksum:
        detail = (
            f"migration {migration.version!r} changed after it was applied: "
            f"expected checksum {recorded_checksum!r}, got {migration.checksum!r}; "
            "add a new migration instead of editing an applied one"
        )
        raise ConfigurationError(detail)


def main() -> None:
    """Apply migrations to ``DATABASE_URL`` and say what was done."""
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")
    applied = apply_migrations(Settings().database_url)
    logger.info("schema up to date; applied now: %s", applied or "nothing")


if __name__ == "__main__":
    main()
