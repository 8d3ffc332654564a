"""Creating a topic's delay tiers: as many partitions and replicas as the topic itself."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from zeroqueue import admin
from zeroqueue._kafka.names import MAX_TOPIC_NAME
from zeroqueue.delay._tiers import tier_topics
from zeroqueue.errors import InvalidDelayError

__all__ = ["ensure_tier_topics", "tiers_exist"]


def tiers_exist(
    brokers: Sequence[str], topic: str, kafka_config: Mapping[str, Any] | None = None
) -> bool:
    """Whether every delay tier of ``topic`` exists."""
    wanted = tier_topics(topic)
    return len(admin.existing_topics(brokers, wanted, kafka_config=kafka_config)) == len(wanted)


def ensure_tier_topics(
    brokers: Sequence[str], topic: str, kafka_config: Mapping[str, Any] | None = None
) -> list[str]:
    """Create the delay tiers of ``topic`` that are missing; return those created.

    They get ``topic``'s partition count (a key keeps its partition number on
    the way) and its replication factor (a delayed message is as safe as any).

    Raises:
        InvalidDelayError: ``topic``'s name is too long for tier names.
        ZeroQueueError: ``topic`` does not exist, or the cluster refused to create them.
        BrokerUnavailableError: the cluster did not answer.
    """
    wanted = tier_topics(topic)
    longest = max(wanted, key=len)
    if len(longest) > MAX_TOPIC_NAME:
        raise InvalidDelayError(
            f"topic: {topic!r} is {len(topic)} characters, too long to delay messages to: its"
            f" delay tier {longest!r} would pass Kafka's {MAX_TOPIC_NAME}; expected a topic"
            f" of at most {MAX_TOPIC_NAME - (len(longest) - len(topic))} characters"
        )
    existing = admin.existing_topics(brokers, wanted, kafka_config=kafka_config)
    missing = [name for name in wanted if name not in existing]
    if not missing:
        return []
    partitions = admin.partition_count(brokers, topic, kafka_config=kafka_config)
    replicas = admin.replication_factor(brokers, topic, kafka_config=kafka_config)
    admin.create_topics(
        brokers,
        missing,
        partitions=partitions,
        replication_factor=replicas,
        kafka_config=kafka_config,
    )
    return missing
