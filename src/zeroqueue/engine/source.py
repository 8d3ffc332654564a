"""The Kafka edge of the consumer engine: one confluent-kafka group member.

:class:`KafkaSource` fetches in batches, commits explicit offsets, pauses and
resumes partitions, and turns rebalance callbacks into calls on a
:class:`RebalanceListener`. The engine sees only the :class:`Source` protocol,
so its logic can run against a fake in tests.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any, Protocol

from confluent_kafka import Consumer, KafkaError, KafkaException, TopicPartition
from confluent_kafka import Message as KafkaMessage

from zeroqueue.errors import ConfigError

__all__ = ["KafkaSource", "RebalanceListener", "Source", "TopicPartitionKey"]

_log = logging.getLogger("zeroqueue.kq.queue")

#: ``(topic, partition)``
TopicPartitionKey = tuple[str, int]


class RebalanceListener(Protocol):
    """What the engine does when the group moves partitions."""

    def assigned(self, partitions: Sequence[TopicPartitionKey]) -> None:
        """Partitions were added to this member."""

    def revoking(self, partitions: Sequence[TopicPartitionKey]) -> None:
        """Partitions are leaving this member: drain and commit them now."""

    def lost(self, partitions: Sequence[TopicPartitionKey]) -> None:
        """Partitions were taken away without a chance to commit."""


class Source(Protocol):
    """A group member the engine can fetch from and commit to."""

    def fetch(self, max_messages: int, timeout: float) -> list[KafkaMessage]:
        """Wait up to ``timeout`` for a first record, then take what is ready, error-free."""

    def commit(self, offsets: Sequence[tuple[str, int, int]], *, wait: bool) -> None:
        """Commit ``(topic, partition, next_offset)`` triples."""

    def take_failed_commits(self) -> list[TopicPartitionKey]:
        """Partitions whose last commit failed since the previous call."""

    def pause(self, partitions: Sequence[TopicPartitionKey]) -> None:
        """Stop fetching these partitions."""

    def resume(self, partitions: Sequence[TopicPartitionKey]) -> None:
        """Fetch these partitions again."""

    def close(self) -> None:
        """Leave the group and release the client."""


_error_of = KafkaMessage.error


def _keys(partitions: Sequence[TopicPartition]) -> list[TopicPartitionKey]:
    return [(tp.topic, tp.partition) for tp in partitions]


def _partitions(keys: Sequence[TopicPartitionKey]) -> list[TopicPartition]:
    return [TopicPartition(topic, partition) for topic, partition in keys]


class KafkaSource:
    """One confluent-kafka consumer, subscribed, with cooperative rebalancing."""

    def __init__(
        self, settings: dict[str, Any], topics: Sequence[str], listener: RebalanceListener
    ) -> None:
        self._listener = listener
        self._warned_topics: set[str] = set()
        self._failed_commits: list[TopicPartitionKey] = []
        self.last_error = ""
        try:
            self._consumer = Consumer(
                settings | {"on_commit": self._on_commit, "error_cb": self._on_error}
            )
        except KafkaException as exc:
            raise ConfigError(f"kafka_config: {exc.args[0].str()}") from exc
        self._consumer.subscribe(
            list(topics),
            on_assign=self._on_assign,
            on_revoke=self._on_revoke,
            on_lost=self._on_lost,
        )

    def fetch(self, max_messages: int, timeout: float) -> list[KafkaMessage]:
        """Block up to ``timeout`` for one record, then take up to ``max_messages`` ready ones."""
        consumer = self._consumer
        first = consumer.poll(timeout)
        if first is None:
            return []
        records = [first]
        if max_messages > 1:
            # consume() with a timeout would hold a partial batch until it expires.
            records.extend(consumer.consume(max_messages - 1, 0))
        if any(map(_error_of, records)):
            return self._without_errors(records)
        return records

    def _without_errors(self, records: list[KafkaMessage]) -> list[KafkaMessage]:
        clean = []
        for record in records:
            error = record.error()
            if error is None:
                clean.append(record)
            elif error.code() == KafkaError.UNKNOWN_TOPIC_OR_PART:
                topic = record.topic() or "?"
                if topic not in self._warned_topics:
                    self._warned_topics.add(topic)
                    _log.warning("subscribed topic %r does not exist (yet): %s", topic, error.str())
            else:
                _log.warning("consumer error: %s", error.str())
        return clean

    def commit(self, offsets: Sequence[tuple[str, int, int]], *, wait: bool) -> None:
        """Commit offsets; a synchronous commit that fails is logged, not raised."""
        partitions = [TopicPartition(t, p, o) for t, p, o in offsets]
        try:
            if not wait:
                self._consumer.commit(offsets=partitions, asynchronous=True)
                return
            result = self._consumer.commit(offsets=partitions, asynchronous=False)
        except KafkaException as exc:
            _log.warning("commit of %s failed: %s", _keys(partitions), exc.args[0].str())
            self._failed_commits.extend(_keys(partitions))
            return
        self._on_commit(None, result)

    def take_failed_commits(self) -> list[TopicPartitionKey]:
        """Partitions whose commit failed since the last call (to be committed again)."""
        failed, self._failed_commits = self._failed_commits, []
        return failed

    def pause(self, partitions: Sequence[TopicPartitionKey]) -> None:
        """Stop fetching ``partitions`` (librdkafka drops what it prefetched for them)."""
        if partitions:
            self._consumer.pause(_partitions(partitions))

    def resume(self, partitions: Sequence[TopicPartitionKey]) -> None:
        """Fetch ``partitions`` again."""
        if partitions:
            self._consumer.resume(_partitions(partitions))

    def close(self) -> None:
        """Leave the group (revoke callbacks run first) and release the consumer."""
        self._consumer.close()

    # -- callbacks, run inside poll()/consume() on the fetch thread -------------------

    def _on_assign(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        consumer.incremental_assign(partitions)
        self._listener.assigned(_keys(partitions))

    def _on_revoke(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        self._listener.revoking(_keys(partitions))
        consumer.incremental_unassign(partitions)

    def _on_lost(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        self._listener.lost(_keys(partitions))
        consumer.incremental_unassign(partitions)

    def _on_commit(self, error: KafkaError | None, partitions: list[TopicPartition]) -> None:
        failed = [tp for tp in partitions if tp.error is not None]
        if error is not None or failed:
            first = error if error is not None else failed[0].error
            reason = first.str() if first is not None else "unknown error"
            keys = _keys(failed or partitions)
            _log.warning("commit of %s failed: %s", keys, reason)
            self._failed_commits.extend(keys)

    def _on_error(self, error: KafkaError) -> None:
        self.last_error = error.str()
        if error.fatal():
            _log.critical("fatal consumer error: %s", error.str())
