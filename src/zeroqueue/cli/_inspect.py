"""Read a cluster's topics and groups for the CLI.

The edge where confluent-kafka's answers (and its exceptions) become plain
values (and zeroqueue's errors).
"""

from __future__ import annotations

import concurrent.futures
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

from confluent_kafka import ConsumerGroupTopicPartitions, KafkaException, TopicPartition
from confluent_kafka.admin import (  # type: ignore[attr-defined]  # public, not in __all__
    ConfigResource,
    ResourceType,
)

from zeroqueue._kafka import backends
from zeroqueue._kafka.settings import client_settings
from zeroqueue.errors import BrokerUnavailableError, ZeroQueueError

__all__ = [
    "ConfigEntry",
    "GroupInfo",
    "GroupListing",
    "GroupOffset",
    "MemberInfo",
    "PartitionInfo",
    "TopicInfo",
    "describe_group",
    "describe_topic",
    "group_ids",
    "list_groups",
    "topic_partitions",
    "watermarks",
]

T = TypeVar("T")
Config = Mapping[str, Any]


@dataclass(frozen=True)
class PartitionInfo:
    """One partition of a topic: who leads it, its replicas and its watermarks."""

    partition: int
    leader: int
    replicas: list[int]
    isrs: list[int]
    #: The first offset still on the broker.
    low: int
    #: The offset the next message will get.
    high: int


@dataclass(frozen=True)
class ConfigEntry:
    """One topic setting, and whether it is the broker's default."""

    name: str
    value: str | None
    is_default: bool


@dataclass(frozen=True)
class TopicInfo:
    """A topic's partitions and settings."""

    name: str
    partitions: list[PartitionInfo]
    config: list[ConfigEntry]


@dataclass(frozen=True)
class GroupListing:
    """A consumer group as the cluster lists it."""

    group: str
    state: str
    simple: bool


@dataclass(frozen=True)
class MemberInfo:
    """A member of a consumer group and the partitions assigned to it."""

    member_id: str
    client_id: str
    host: str
    assignment: list[tuple[str, int]]


@dataclass(frozen=True)
class GroupOffset:
    """Where a group stands on one partition: its committed offset and the watermarks."""

    topic: str
    partition: int
    #: The next offset the group will read.
    committed: int
    low: int
    high: int

    @property
    def lag(self) -> int:
        """Messages on the partition the group has not committed past yet."""
        return max(self.high - max(self.committed, self.low), 0)


@dataclass(frozen=True)
class GroupInfo:
    """A consumer group: its state, members and committed offsets with lag."""

    group: str
    state: str
    coordinator: str
    assignor: str
    members: list[MemberInfo] = field(default_factory=list)
    offsets: list[GroupOffset] = field(default_factory=list)


def _reason(exc: BaseException) -> str:
    if isinstance(exc, KafkaException) and exc.args:
        error = exc.args[0]
        return str(error.str()) if hasattr(error, "str") else str(error)
    return str(exc) or type(exc).__name__


def _ask(doing: str, brokers: Sequence[str], timeout: float, call: Callable[[], T]) -> T:
    """``call()``; confluent-kafka's failures as zeroqueue's errors naming ``doing``."""
    try:
        return call()
    except (KafkaException, concurrent.futures.TimeoutError) as exc:
        raise BrokerUnavailableError(
            f"{doing} on {', '.join(brokers)} failed within {timeout:g}s: {_reason(exc)}"
        ) from exc


def _result(future: concurrent.futures.Future[T], timeout: float) -> T:
    return future.result(timeout=timeout)


def _admin(brokers: Sequence[str], config: Config) -> Any:
    return backends.admin_client(client_settings(brokers, overrides=config))


def _consumer(brokers: Sequence[str], config: Config) -> Any:
    return backends.consumer(
        client_settings(brokers, overrides=config)
        | {"group.id": "zeroqueue-cli", "enable.auto.commit": False}
    )


def topic_partitions(
    brokers: Sequence[str], config: Config, timeout: float
) -> dict[str, list[int]]:
    """Every topic of the cluster (internal ones too) and its partitions, sorted."""
    client = _admin(brokers, config)
    metadata = _ask(
        "listing the topics", brokers, timeout, lambda: client.list_topics(timeout=timeout)
    )
    return {
        name: sorted(topic.partitions)
        for name, topic in sorted(metadata.topics.items())
        if topic.error is None
    }


def watermarks(
    brokers: Sequence[str], config: Config, positions: Sequence[tuple[str, int]], timeout: float
) -> dict[tuple[str, int], tuple[int, int]]:
    """The low and high watermark of each (topic, partition)."""
    consumer = _consumer(brokers, config)
    try:
        return {
            (topic, partition): _ask(
                f"reading the watermarks of {topic}[{partition}]",
                brokers,
                timeout,
                lambda t=topic, p=partition: consumer.get_watermark_offsets(  # type: ignore[misc]
                    TopicPartition(t, p), timeout=timeout
                ),
            )
            for topic, partition in positions
        }
    finally:
        consumer.close()


def describe_topic(brokers: Sequence[str], config: Config, name: str, timeout: float) -> TopicInfo:
    """``name``'s partitions (leader, replicas, in-sync replicas, watermarks) and settings.

    Raises:
        BrokerUnavailableError: the cluster did not answer within ``timeout``.
        ZeroQueueError: ``name`` does not exist.
    """
    client = _admin(brokers, config)
    metadata = _ask(
        f"reading topic {name!r}",
        brokers,
        timeout,
        lambda: client.list_topics(name, timeout=timeout),
    ).topics.get(name)
    if metadata is None or metadata.error is not None or not metadata.partitions:
        raise ZeroQueueError(f"topic {name!r} does not exist on {', '.join(brokers)}")
    marks = watermarks(brokers, config, [(name, p) for p in sorted(metadata.partitions)], timeout)
    partitions = [
        PartitionInfo(
            partition=p.id,
            leader=p.leader,
            replicas=list(p.replicas),
            isrs=list(p.isrs),
            low=marks[name, p.id][0],
            high=marks[name, p.id][1],
        )
        for _, p in sorted(metadata.partitions.items())
    ]
    resource = ConfigResource(ResourceType.TOPIC, name)
    entries = _ask(
        f"reading the configuration of topic {name!r}",
        brokers,
        timeout,
        lambda: _result(
            client.describe_configs([resource], request_timeout=timeout)[resource], timeout
        ),
    )
    settings = [
        ConfigEntry(key, entry.value, bool(entry.is_default))
        for key, entry in sorted(entries.items())
    ]
    return TopicInfo(name, partitions, settings)


def list_groups(brokers: Sequence[str], config: Config, timeout: float) -> list[GroupListing]:
    """The consumer groups the cluster knows, sorted by id."""
    client = _admin(brokers, config)
    listed = _ask(
        "listing the consumer groups",
        brokers,
        timeout,
        lambda: _result(client.list_consumer_groups(request_timeout=timeout), timeout),
    )
    return sorted(
        (
            GroupListing(g.group_id, _state(g.state), bool(g.is_simple_consumer_group))
            for g in listed.valid
        ),
        key=lambda g: g.group,
    )


def group_ids(brokers: Sequence[str], config: Config, timeout: float) -> set[str]:
    """The ids of the consumer groups the cluster knows."""
    return {g.group for g in list_groups(brokers, config, timeout)}


def _state(state: Any) -> str:
    name = getattr(state, "name", None)
    return str(name if name is not None else state).lower()


def describe_group(brokers: Sequence[str], config: Config, group: str, timeout: float) -> GroupInfo:
    """``group``'s state and members, and per partition its committed offset and lag."""
    client = _admin(brokers, config)
    described = _ask(
        f"describing group {group!r}",
        brokers,
        timeout,
        lambda: _result(
            client.describe_consumer_groups([group], request_timeout=timeout)[group], timeout
        ),
    )
    committed = _ask(
        f"reading the offsets of group {group!r}",
        brokers,
        timeout,
        lambda: _result(
            client.list_consumer_group_offsets(
                [ConsumerGroupTopicPartitions(group)], request_timeout=timeout
            )[group],
            timeout,
        ),
    )
    positions = sorted(
        (tp.topic, tp.partition, tp.offset) for tp in committed.topic_partitions if tp.offset >= 0
    )
    marks = watermarks(brokers, config, [(t, p) for t, p, _ in positions], timeout)
    coordinator = described.coordinator
    return GroupInfo(
        group=group,
        state=_state(described.state),
        coordinator=f"{coordinator.host}:{coordinator.port}" if coordinator is not None else "",
        assignor=described.partition_assignor or "",
        members=[
            MemberInfo(
                member_id=m.member_id,
                client_id=m.client_id,
                host=m.host,
                assignment=sorted(
                    (tp.topic, tp.partition)
                    for tp in (m.assignment.topic_partitions if m.assignment else [])
                ),
            )
            for m in described.members
        ],
        offsets=[GroupOffset(t, p, offset, *marks[t, p]) for t, p, offset in positions],
    )
