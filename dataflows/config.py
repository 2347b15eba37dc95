"""Runtime settings, read from the environment in one place.

Every setting has a documented trade-off. Service locations use the names the
wider ecosystem uses (``KAFKA_BOOTSTRAP_SERVERS``, ``DATABASE_URL``,
``REDIS_URL``); everything else is prefixed ``FRAUDFLOW_``. Secrets are read
from the environment or from a file named by a ``*_FILE`` variable, never from
the repository.

Example:
    >>> settings = Settings(kafka_bootstrap_servers="kafka:9092")
    >>> settings.topic_transactions
    'transactions'
"""

from __future__ import annotations

from pathlib import Path

from pydantic import AliasChoices, Field
from pydantic_settings import BaseSettings, SettingsConfigDict


def _env(name: str) -> AliasChoices:
    """Accept a setting under its bare ecosystem name only."""
    return AliasChoices(name)


class Settings(BaseSettings):
    """Settings of every fraudflow process (flow, simulator, jobs)."""

    model_config = SettingsConfigDict(env_prefix="FRAUDFLOW_", extra="ignore")

    kafka_bootstrap_servers: str = Field(
        "127.0.0.1:9092",
        validation_alias=_env("KAFKA_BOOTSTRAP_SERVERS"),
        description="Kafka bootstrap servers, comma separated.",
    )
    database_url: str = Field(
        "postgresql://fraudflow@127.0.0.1:5432/fraudflow",
        validation_alias=_env("DATABASE_URL"),
        description="PostgreSQL connection URI (libpq form).",
    )
    redis_url: str = Field(
        "redis://127.0.0.1:6379/0",
        validation_alias=_env("REDIS_URL"),
        description="Redis URL of the online feature store.",
    )

    topic_transactions: str = Field(
        "transactions", description="Input topic of card transactions."
    )
    topic_labels: str = Field(
        "transaction-labels", description="Ground-truth labels from the simulator."
    )
    topic_alerts: str = Field(
        "fraud-alerts", description="Review and block decisions for other services."
    )
    topic_dlq: str = Field(
        "transactions-dlq", description="Records that failed decoding, with reasons."
    )
    partitions: int = Field(
        4,
        ge=1,
        description=(
            "Partitions of each topic created by fraudflow. The upper bound on "
            "useful flow processes; more partitions cost broker memory."
        ),
    )

    state_dir: Path = Field(
        Path(".fraudflow"),
        description="Where the local stack, demo results and caches are kept.",
    )
    model_dir: Path = Field(
        Path("model/artifacts"),
        description="Directory holding model.onnx and model_card.json.",
    )
