"""Create fraudflow's Kafka topics, idempotently.

Example:
    >>> ensure_topics(Settings())  # doctest: +SKIP
    {'transactions': 'created', 'fraud-alerts': 'exists', ...}
"""

from __future__ import annotations

import logging
from collections.abc import Iterable

from confluent_kafka import KafkaError, KafkaException
from confluent_kafka.admin import AdminClient, NewTopic

from dataflows.config import Settings
from dataflows.errors import BrokerUnavailable

LOG = logging.getLogger(__name__)

#: Seconds to wait for the broker to confirm each topic.
CREATE_TIMEOUT_S = 30.0


def topic_names(settings: Settings) -> list[str]:
    """Return every topic the pipeline reads or writes."""
    return [
        settings.topic_transactions,
        settings.topic_labels,
        settings.topic_alerts,
        settings.topic_dlq,
    ]


def create_topics(
    bootstrap_servers: str, names: Iterable[str], partitions: int
) -> dict[str, str]:
    """Create topics that do not exist yet; leave existing ones alone.

    Args:
        bootstrap_servers: Kafka bootstrap servers.
        names: Topic names to create.
        partitions: Partition count of newly created topics. Existing topics
            keep theirs: changing it would move keys between partitions.

    Returns:
        ``{topic: "created" | "exists"}``.

    Raises:
        BrokerUnavailable: the broker did not answer or refused a topic.
    """
    # Keep the client referenced until every future resolved: a destroyed
    # client fails its pending futures.
    admin = AdminClient({"bootstrap.servers": bootstrap_servers})
    new = [NewTopic(name, num_partitions=partitions) for name in names]
    futures = admin.create_topics(new, request_timeout=CREATE_TIMEOUT_S)
    outcome = {}
    for name, future in futures.items():
        try:
            future.result(timeout=CREATE_TIMEOUT_S)
            outcome[name] = "created"
        except KafkaException as exc:
            error = exc.args[0]
            if error.code() != KafkaError.TOPIC_ALREADY_EXISTS:
                message = f"could not create topic {name!r}: {error.str()}"
                raise BrokerUnavailable(message) from exc
            outcome[name] = "exists"
        LOG.info("topic %s %s", name, outcome[name])
    return outcome


def ensure_topics(settings: Settings) -> dict[str, str]:
    """Create the pipeline's topics with the configured partition count."""
    return create_topics(
        settings.kafka_bootstrap_servers, topic_names(settings), settings.partitions
    )
