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
from typing import Literal

from pydantic import AliasChoices, Field, SecretStr
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

    source_batch_size: int = Field(
        1000,
        ge=1,
        description=(
            "Most Kafka messages per partition a worker takes per poll. Larger "
            "batches amortise per-activation cost (about 5x per item at batch 1); "
            "at low rates batches are small anyway, so the cap costs no latency."
        ),
    )
    fetch_wait_max_ms: int = Field(
        5,
        ge=0,
        description=(
            "librdkafka fetch.wait.max.ms: how long the broker may hold a fetch "
            "to fill it. Each ms adds up to a ms of latency at low rates; 0 makes "
            "idle consumers poll the broker in a busy loop."
        ),
    )
    account_idle_ttl_s: float = Field(
        90_000.0,
        gt=0,
        description=(
            "Wall-clock seconds after an account's last transaction before its "
            "velocity state is discarded. At least the 24 h idle reset, so "
            "discarding never changes a feature; longer only costs memory."
        ),
    )
    allowed_lateness_s: float = Field(
        300.0,
        ge=0,
        description=(
            "How far (event time) behind an account's latest transaction a "
            "late one is still added to its windows. Larger tolerates more "
            "disorder but keeps more history per account."
        ),
    )
    model_reload_s: float = Field(
        30.0,
        gt=0,
        description=(
            "How often the flow checks the model file for a replacement. A "
            "replaced model that fails to load is refused and the old one kept."
        ),
    )
    onnx_threads: int = Field(
        1,
        ge=1,
        description=(
            "ONNX Runtime threads per process. One is best on small machines: "
            "batches are small and scale-out is by processes, not threads."
        ),
    )
    tail: bool = Field(
        True,
        description=(
            "Keep reading at the end of each partition. False makes the flow "
            "stop once it has read everything present (backfills, tests)."
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

    hmac_key: SecretStr | None = Field(
        None,
        description=(
            "Secret key of the HMAC-SHA256 tokens that stand in for card numbers, "
            "emails, IPs and device ids. Changing it changes every token, so rows "
            "written before and after no longer join; rotate it with a re-keying "
            "job, not casually."
        ),
    )
    hmac_key_file: Path | None = Field(
        None,
        description=(
            "File holding the HMAC key (a mounted secret), used instead of "
            "FRAUDFLOW_HMAC_KEY so the key never appears in the process "
            "environment. Setting both is refused."
        ),
    )
    dev_mode: bool = Field(
        False,
        description=(
            "Allow the built-in development HMAC key. Convenient locally; in "
            "production it would make every token guessable, so it is off."
        ),
    )
    mask_cache_size: int = Field(
        65_536,
        ge=0,
        description=(
            "Entries in each masking cache (cards, emails, IPs, devices). A hit "
            "saves one ~3 us HMAC; each entry costs ~300 bytes of memory. Size it "
            "to the accounts active within a few minutes."
        ),
    )
    db_pool_min_size: int = Field(
        1,
        ge=0,
        description=(
            "Connections each sink worker keeps open to PostgreSQL. More cost "
            "server memory (~10 MB each) and buy nothing for one writer."
        ),
    )
    db_pool_max_size: int = Field(
        2,
        ge=1,
        description=(
            "Upper bound of connections per sink worker; a spare one lets a "
            "retry start while a broken connection is being discarded."
        ),
    )
    db_retry_budget_s: float = Field(
        30.0,
        gt=0,
        description=(
            "How long a PostgreSQL write is retried (with backoff) before the "
            "sink raises and the flow stops to resume from its last snapshot. "
            "Longer rides out a failover but holds back every later row."
        ),
    )
    kafka_delivery_budget_s: float = Field(
        30.0,
        gt=0,
        description=(
            "How long the alert and dead-letter producers wait for the broker "
            "to confirm a batch (re-sending failures) before raising. Longer "
            "rides out a broker restart but holds back the flow meanwhile."
        ),
    )
    producer_linger_ms: float = Field(
        5.0,
        ge=0,
        description=(
            "How long the producer gathers messages into one request. Each ms "
            "adds up to a ms of alert latency; below ~2 ms the broker receives "
            "many tiny requests and falls behind under load."
        ),
    )
    producer_idempotence: bool = Field(
        True,
        description=(
            "Ask the broker for idempotent produce, so librdkafka's own resends "
            "cannot duplicate or reorder a message. Turn it off only for a broker "
            "without producer ids."
        ),
    )

    log_format: Literal["kv", "json"] = Field(
        "kv",
        description=(
            "Log line format: 'kv' (key=value) reads and greps well in a "
            "terminal; 'json' costs a little more per line but lets a log "
            "shipper index every field."
        ),
    )
    log_level: str = Field(
        "INFO",
        pattern=r"(?i)^(DEBUG|INFO|WARNING|ERROR|CRITICAL)$",
        description=(
            "Lowest level logged. DEBUG shows per-batch detail and probe "
            "requests, at a cost per batch; WARNING hides lifecycle events."
        ),
    )
    health_port: int = Field(
        8080,
        ge=0,
        le=65535,
        description=(
            "Port of the /livez and /readyz endpoints (0 picks a free one). "
            "Must differ from the Bytewax API port (3030) and be the port the "
            "Kubernetes probes name."
        ),
    )
    liveness_timeout_s: float = Field(
        30.0,
        gt=0,
        description=(
            "How long the flow may make no progress before /livez fails and "
            "the kubelet restarts it. Shorter restarts a stuck flow sooner but "
            "also one that is only waiting out a retry budget or a slow epoch: "
            "keep it above db_retry_budget_s and kafka_delivery_budget_s."
        ),
    )
    metrics_port: int = Field(
        0,
        ge=0,
        le=65535,
        description=(
            "Port of a separate /metrics server, 0 for none. Leave it 0 when "
            "Bytewax's API server (BYTEWAX_DATAFLOW_API_ENABLED=1, port 3030) "
            "runs: it already serves the same metrics."
        ),
    )
    drift_window: int = Field(
        10_000,
        ge=100,
        description=(
            "Recent values per feature the drift monitor compares with the "
            "training distribution. Bigger is steadier but notices a shift "
            "later; memory is 4 bytes a value per feature."
        ),
    )
