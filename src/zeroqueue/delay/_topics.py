"""Creating a topic's delay tiers: partitions, replicas and size limit after the topic's."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from zeroqueue import admin
from zeroqueue._kafka.names import MAX_TOPIC_NAME
from zeroqueue.delay import _headers as h
from zeroqueue.delay._tiers import tier_topics
from zeroqueue.errors import InvalidDelayError, ZeroQueueError

__all__ = ["ensure_tier_topics", "hop_overhead", "tiers_exist", "topic_limit"]


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
        config=_size_config(brokers, topic, kafka_config),
        kafka_config=kafka_config,
    )
    return missing


def _size_config(
    brokers: Sequence[str], topic: str, kafka_config: Mapping[str, Any] | None
) -> dict[str, str]:
    """``max.message.bytes`` for the tiers: ``topic``'s, plus the headers a hop drops.

    A tier with the broker's default took a message its topic then refused: the
    push succeeded and the releaser retried the release for ever, holding up the
    messages behind it. Sized so, a tier refuses at push any message whose
    release ``topic`` would refuse (and takes every one it would accept).
    Empty when the cluster does not say (Tansu, for a topic not configured).
    """
    limit = topic_limit(brokers, topic, kafka_config)
    if limit is None:
        return {}
    return {"max.message.bytes": str(limit + hop_overhead(topic))}


def topic_limit(
    brokers: Sequence[str], topic: str, kafka_config: Mapping[str, Any] | None
) -> int | None:
    """``topic``'s ``max.message.bytes``; None when the cluster does not tell (or refuses to)."""
    try:
        return admin.max_message_bytes(brokers, topic, kafka_config=kafka_config)
    except ZeroQueueError:
        # A user allowed to create topics but not to read their configuration still
        # gets tiers, sized by the broker's default as before.
        return None


def hop_overhead(topic: str) -> int:
    """The fewest bytes of headers a message waiting in a tier carries but not once released."""
    target = _header_size(h.TARGET, len(topic.encode()))
    hop_due = _header_size(h.HOP_DUE, 8)
    route = min(_header_size(h.PARTITION, 1), _header_size(h.PARTITIONER, len(b"hash")))
    return target + hop_due + route


def _header_size(name: str, value_length: int) -> int:
    # A record header: varint key length, key, varint value length, value.
    return _varint_size(len(name)) + len(name) + _varint_size(value_length) + value_length


def _varint_size(number: int) -> int:
    zigzag, size = number << 1, 1
    while zigzag >= 0x80:
        zigzag >>= 7
        size += 1
    return size
