"""Shared fixtures: the local stack, settings pointed at it, fresh topics."""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from dataflows.config import Settings
from dataflows.topics import create_topics
from deploy.stack import Endpoints, LocalStack, StackError

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def stack() -> Iterator[Endpoints]:
    """The local Kafka, PostgreSQL and Redis, started once per test session.

    A stack that was already running (``just up``) is reused and left running;
    one this session started is stopped at the end. A service that fails to
    start fails the tests with its log tail.
    """
    state_dir = Path(os.environ.get("FRAUDFLOW_STATE_DIR", REPO / ".fraudflow"))
    local = LocalStack(state_dir / "stack")
    was_up = local.endpoints() is not None and "down" not in local.status().values()
    try:
        endpoints = local.up()
    except StackError as exc:
        pytest.fail(f"local stack did not start:\n{exc}", pytrace=False)
    yield endpoints
    if not was_up and not os.environ.get("FRAUDFLOW_KEEP_STACK"):
        local.down()


@pytest.fixture(scope="session")
def settings(stack: Endpoints, tmp_path_factory: pytest.TempPathFactory) -> Settings:
    """Settings whose service URLs point at the session's stack."""
    return Settings(
        kafka_bootstrap_servers=stack.kafka_bootstrap_servers,
        database_url=stack.database_url,
        redis_url=stack.redis_url,
        state_dir=tmp_path_factory.mktemp("state"),
    )


@pytest.fixture
def new_topic(settings: Settings) -> Callable[..., str]:
    """Create uuid-named topics for one test: ``new_topic("alerts", partitions=1)``."""

    def create(prefix: str = "test", partitions: int = 4) -> str:
        name = f"{prefix}-{uuid.uuid4().hex[:12]}"
        create_topics(settings.kafka_bootstrap_servers, [name], partitions)
        return name

    return create


@pytest.fixture
def topic(new_topic: Callable[..., str]) -> str:
    """A fresh uuid-named topic with 4 partitions, for this test only."""
    return new_topic()
