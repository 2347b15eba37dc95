"""Process start-up for the scoring flow: logging, schema, health, metrics.

Everything a flow process does once before its dataflow is built lives here,
so the dataflow module stays a description of steps. Start-up order:

1. read :class:`~dataflows.config.Settings` from the environment;
2. configure logging (the library never does);
3. apply database migrations (safe when several processes start at once);
4. serve ``/livez`` and ``/readyz`` on ``FRAUDFLOW_HEALTH_PORT`` with checks of
   the broker, PostgreSQL, Redis and the model;
5. serve Prometheus metrics on ``FRAUDFLOW_METRICS_PORT`` unless Bytewax's own
   API server (``BYTEWAX_DATAFLOW_API_ENABLED``) already serves them.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable

import psycopg
import redis
from confluent_kafka.admin import AdminClient

from dataflows import metrics
from dataflows.config import Settings
from dataflows.health import HealthServer
from dataflows.logs import configure_logging
from dataflows.migrate import apply_migrations

LOG = logging.getLogger(__name__)

#: Seconds a readiness check may take before it counts as failed.
CHECK_TIMEOUT_S = 1.0

_health: HealthServer | None = None


def heartbeat() -> None:
    """Tell the liveness probe the flow loop is turning (cheap; call often)."""
    if _health is not None:
        _health.beat()


def readiness_checks(settings: Settings) -> dict[str, Callable[[], object]]:
    """Checks that each service the flow needs answers within a second."""

    def broker() -> bool:
        admin = AdminClient({"bootstrap.servers": settings.kafka_bootstrap_servers})
        return bool(admin.list_topics(timeout=CHECK_TIMEOUT_S).brokers)

    def postgres() -> bool:
        with psycopg.connect(settings.database_url, connect_timeout=1) as conn:
            conn.execute("SELECT 1")
        return True

    def feature_store() -> bool:
        client = redis.Redis.from_url(settings.redis_url, socket_timeout=1)
        try:
            return bool(client.ping())
        finally:
            client.close()

    return {"broker": broker, "postgres": postgres, "redis": feature_store}


def _start_health(settings: Settings) -> HealthServer | None:
    if not settings.health_port:
        return None
    try:
        server = HealthServer(
            port=settings.health_port,
            liveness_timeout_s=settings.liveness_timeout_s,
        ).start()
    except OSError as exc:
        # Several processes on one host (a local cluster) share the port.
        LOG.warning(
            "health server not started port=%s error=%s", settings.health_port, exc
        )
        return None
    for name, check in readiness_checks(settings).items():
        server.add_check(name, check)
    return server


def start_process(settings: Settings | None = None) -> Settings:
    """Prepare this process to run the scoring flow; return its settings."""
    global _health

    settings = settings or Settings()
    configure_logging(settings.log_format, settings.log_level)
    applied = apply_migrations(settings.database_url)
    LOG.info("migrations applied count=%s", applied)
    _health = _start_health(settings)
    if not os.environ.get("BYTEWAX_DATAFLOW_API_ENABLED") and settings.metrics_port:
        try:
            metrics.start_metrics_server(settings.metrics_port)
        except OSError as exc:
            LOG.warning(
                "metrics server not started port=%s error=%s",
                settings.metrics_port,
                exc,
            )
    return settings


def model_loaded(check: Callable[[], object]) -> None:
    """Register the model's readiness check once the model is loaded."""
    if _health is not None:
        _health.add_check("model", check)
