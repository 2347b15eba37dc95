"""Record trained models in PostgreSQL's ``model_versions`` table.

Each row keys a model card by its version (the ONNX file's content hash), so
every scored transaction's ``model_version`` can be traced to the features,
thresholds, training window and held-out quality of the model that scored it.
The table comes from the schema migrations, which are applied first (they are
idempotent and serialised across processes). A version is recorded once; its
card is not rewritten, because the same file always has the same version.

Example:
    >>> record_version(card, "postgresql:///fraudflow")  # doctest: +SKIP
    True
"""

from __future__ import annotations

import logging

import psycopg
from psycopg.types.json import Jsonb

from dataflows.errors import DatabaseUnavailable
from dataflows.migrate import apply_migrations
from model.card import ModelCard

logger = logging.getLogger(__name__)

_INSERT = """
INSERT INTO model_versions (version, card) VALUES (%s, %s)
ON CONFLICT (version) DO NOTHING
"""


def record_version(card: ModelCard, conninfo: str) -> bool:
    """Insert the card under its version unless that version is recorded.

    Args:
        card: The model's card.
        conninfo: libpq connection string or URI.

    Returns:
        True when this call added the row, False when it was already there.

    Raises:
        DatabaseUnavailable: PostgreSQL refused the connection or the write.
    """
    apply_migrations(conninfo)
    try:
        with psycopg.connect(conninfo) as conn:
            inserted = conn.execute(_INSERT, (card.version, Jsonb(card.as_dict())))
            added = inserted.rowcount == 1
    except psycopg.OperationalError as exc:
        detail = f"expected PostgreSQL to record model {card.version!r}: {exc}"
        raise DatabaseUnavailable(detail) from exc
    logger.info("model version recorded version=%s new=%s", card.version, added)
    return added
