"""Stand-ins for confluent-kafka's Producer, AdminClient and (metadata) Consumer.

Each keeps the part of its client's contract that zeroqueue uses: a producer
appends to the broker's log when ``produce()`` is called (so per-partition order
is the order of the calls) and serves delivery reports in ``poll()``/``flush()``;
the admin client answers metadata, creates and deletes topics and groups, and
describes topic configs with futures; the consumer reads committed offsets and
watermarks without joining a group.
"""

from __future__ import annotations

import concurrent.futures
import threading
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from confluent_kafka import KafkaError, KafkaException, TopicPartition
from confluent_kafka import Message as KafkaMessage

from zeroqueue.testing._partitioners import choose_partition

if TYPE_CHECKING:
    from zeroqueue.testing._broker import MemoryBroker

__all__ = [
    "ClusterMetadata",
    "MemoryAdminClient",
    "MemoryMetadataConsumer",
    "MemoryProducer",
    "PartitionMetadata",
    "TopicMetadata",
]

DeliveryCallback = Callable[[KafkaError | None, KafkaMessage], None]
_OFFSET_INVALID = -1001


@dataclass
class PartitionMetadata:
    """As ``confluent_kafka.admin.PartitionMetadata``: one node leads, and is every replica."""

    id: int
    leader: int = 0
    replicas: list[int] = field(default_factory=lambda: [0])
    isrs: list[int] = field(default_factory=lambda: [0])
    error: KafkaError | None = None


@dataclass
class TopicMetadata:
    """As ``confluent_kafka.admin.TopicMetadata``."""

    topic: str
    partitions: dict[int, PartitionMetadata] = field(default_factory=dict)
    error: KafkaError | None = None


@dataclass
class ClusterMetadata:
    """As ``confluent_kafka.admin.ClusterMetadata``."""

    topics: dict[str, TopicMetadata]
    cluster_id: str = "zeroqueue-memory"
    controller_id: int = 0
    orig_broker_id: int = 0


@dataclass(frozen=True)
class _ConfigEntry:
    name: str
    value: str | None


def _metadata(broker: MemoryBroker, topic: str | None, *, create: bool) -> ClusterMetadata:
    with broker._cond:
        if topic is not None:
            found = broker._topic(topic, create=create)
            if found is None:
                unknown = KafkaError(KafkaError.UNKNOWN_TOPIC_OR_PART)
                return ClusterMetadata({topic: TopicMetadata(topic, {}, unknown)})
            names = [topic]
        else:
            names = list(broker._topics)
        return ClusterMetadata(
            {
                name: TopicMetadata(
                    name,
                    {p: PartitionMetadata(p) for p in range(len(broker._topics[name].partitions))},
                )
                for name in names
            }
        )


def _done(result: Any = None, error: int | None = None) -> concurrent.futures.Future[Any]:
    future: concurrent.futures.Future[Any] = concurrent.futures.Future()
    if error is None:
        future.set_result(result)
    else:
        future.set_exception(KafkaException(KafkaError(error)))
    return future


class MemoryProducer:
    """``confluent_kafka.Producer`` on a :class:`MemoryBroker`."""

    def __init__(self, broker: MemoryBroker, settings: dict[str, Any]) -> None:
        self._broker = broker
        self._on_delivery: DeliveryCallback | None = settings.get("on_delivery")
        self._only_errors = str(settings.get("delivery.report.only.error", False)).lower() in (
            "true",
            "1",
        )
        self._partitioner = str(settings.get("partitioner", "consistent_random"))
        self._max_bytes = int(settings.get("message.max.bytes", 1_000_000))
        self._reports: deque[tuple[DeliveryCallback | None, KafkaError | None, KafkaMessage]] = (
            deque()
        )
        self._ready = threading.Condition()
        self._closed = False

    def produce(
        self,
        topic: str,
        value: str | bytes | None = None,
        key: str | bytes | None = None,
        *,
        partition: int = -1,
        on_delivery: DeliveryCallback | None = None,
        timestamp: int = 0,
        headers: Any = None,
        callback: DeliveryCallback | None = None,
    ) -> None:
        """Append one message to the broker's log now; its report waits for poll()/flush()."""
        if self._closed:
            raise RuntimeError("Producer has been closed")
        raw_key, raw_value = _raw(key, "key"), _raw(value, "value")
        if len(raw_key or b"") + len(raw_value or b"") > self._max_bytes:
            raise KafkaException(KafkaError(KafkaError.MSG_SIZE_TOO_LARGE))
        record, error = self._broker._produce(
            topic,
            partition=partition,
            key=raw_key,
            value=raw_value,
            headers=headers,
            timestamp=timestamp,
            partitioner=lambda count: choose_partition(self._partitioner, raw_key, count),
            # The broker decides (auto_create_topics), whatever the client asks.
            create=True,
        )
        report = on_delivery or callback or self._on_delivery
        if error is None and self._only_errors:
            return
        with self._ready:
            self._reports.append((report, error, record))
            self._ready.notify_all()

    def poll(self, timeout: float = -1) -> int:
        """Serve the delivery reports that are ready, waiting up to ``timeout`` for one."""
        with self._ready:
            if not self._reports and timeout != 0:
                self._ready.wait(None if timeout is None or timeout < 0 else timeout)
            reports = list(self._reports)
            self._reports.clear()
        for callback, error, record in reports:
            if callback is not None:
                callback(error, record)
        return len(reports)

    def flush(self, timeout: float = -1) -> int:
        """Serve every report; nothing is ever left in flight."""
        while self._reports:
            self.poll(0)
        return 0

    def purge(self, *args: Any, **kwargs: Any) -> None:
        """Nothing is in flight: every message reached the log in produce()."""

    def list_topics(self, topic: str | None = None, timeout: float = -1) -> ClusterMetadata:
        """Metadata; naming a missing topic creates it where the broker auto-creates topics."""
        return _metadata(self._broker, topic, create=True)

    def close(self, timeout: float = -1) -> None:
        """Serve what is left and refuse further pushes."""
        self.flush()
        self._closed = True

    def __len__(self) -> int:
        return len(self._reports)


def _raw(data: Any, what: str) -> bytes | None:
    if data is None or isinstance(data, bytes):
        return data
    if isinstance(data, str):
        return data.encode()
    raise TypeError(f"{what} must be str, bytes or None, not {type(data).__name__}")


class MemoryAdminClient:
    """``confluent_kafka.admin.AdminClient`` on a :class:`MemoryBroker`."""

    def __init__(self, broker: MemoryBroker, settings: dict[str, Any]) -> None:
        self._broker = broker

    def list_topics(self, topic: str | None = None, timeout: float = -1) -> ClusterMetadata:
        """The topics (an admin request never creates one)."""
        return _metadata(self._broker, topic, create=False)

    def poll(self, timeout: float = 0) -> int:
        """No events: an in-memory broker is always there."""
        return 0

    def create_topics(
        self, new_topics: Sequence[Any], **kwargs: Any
    ) -> dict[str, concurrent.futures.Future[Any]]:
        """Create each ``NewTopic``; one that exists fails with TOPIC_ALREADY_EXISTS."""
        futures = {}
        for new in new_topics:
            created = self._broker._create(new.topic, new.num_partitions, dict(new.config or {}))
            futures[new.topic] = _done(None, None if created else KafkaError.TOPIC_ALREADY_EXISTS)
        return futures

    def delete_topics(
        self, topics: Sequence[str], **kwargs: Any
    ) -> dict[str, concurrent.futures.Future[Any]]:
        """Delete each topic; a missing one fails with UNKNOWN_TOPIC_OR_PART."""
        return {
            name: _done(
                None, None if self._broker.delete_topic(name) else KafkaError.UNKNOWN_TOPIC_OR_PART
            )
            for name in topics
        }

    def delete_consumer_groups(
        self, groups: Sequence[str], **kwargs: Any
    ) -> dict[str, concurrent.futures.Future[Any]]:
        """Delete each group's offsets; a group with members fails with NON_EMPTY_GROUP."""
        futures = {}
        for name in groups:
            outcome = self._broker._delete_group(name)
            error = {
                "deleted": None,
                "missing": KafkaError.GROUP_ID_NOT_FOUND,
                "busy": KafkaError.NON_EMPTY_GROUP,
            }[outcome]
            futures[name] = _done(None, error)
        return futures

    def describe_configs(
        self, resources: Sequence[Any], **kwargs: Any
    ) -> dict[Any, concurrent.futures.Future[Any]]:
        """A topic's configuration: the settings made on the topic itself."""
        futures = {}
        for resource in resources:
            with self._broker._cond:
                found = self._broker._topics.get(resource.name)
                config = dict(found.config) if found is not None else None
            futures[resource] = (
                _done(None, KafkaError.UNKNOWN_TOPIC_OR_PART)
                if config is None
                else _done({k: _ConfigEntry(k, v) for k, v in config.items()})
            )
        return futures


class MemoryMetadataConsumer:
    """A ``confluent_kafka.Consumer`` that reads metadata, committed offsets and watermarks."""

    def __init__(self, broker: MemoryBroker, settings: dict[str, Any]) -> None:
        self._broker = broker
        self._group = str(settings.get("group.id", ""))

    def list_topics(self, topic: str | None = None, timeout: float = -1) -> ClusterMetadata:
        """Metadata (never creates a topic)."""
        return _metadata(self._broker, topic, create=False)

    def committed(
        self, partitions: Sequence[TopicPartition], timeout: float = -1
    ) -> list[TopicPartition]:
        """The group's committed offsets (OFFSET_INVALID where it never committed)."""
        with self._broker._cond:
            group = self._broker._groups.get(self._group)
            found = {} if group is None else dict(group.committed)
        return [
            TopicPartition(
                tp.topic, tp.partition, found.get((tp.topic, tp.partition), _OFFSET_INVALID)
            )
            for tp in partitions
        ]

    def get_watermark_offsets(self, partition: TopicPartition, **kwargs: Any) -> tuple[int, int]:
        """``(low, high)``: the log starts at 0 and ends where the next record goes."""
        ends = self._broker.end_offsets(partition.topic)
        return 0, ends.get(partition.partition, 0)

    def close(self) -> None:
        """Nothing to release."""
