"""The Kafka edge of the consumer engine: one confluent-kafka group member.

:class:`KafkaSource` fetches in batches, commits explicit offsets, pauses and
resumes partitions, and turns rebalance callbacks into calls on a
:class:`RebalanceListener`. The engine sees only the :class:`Source` protocol,
so its logic can run against a fake in tests.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Collection, Sequence
from typing import Any, Protocol

from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, KafkaException, TopicPartition
from confluent_kafka import Message as KafkaMessage

from zeroqueue.errors import ConfigError, ConsumeError

__all__ = ["KafkaSource", "RebalanceListener", "Source", "SourceFactory", "TopicPartitionKey"]

_log = logging.getLogger("zeroqueue.engine")

# Errors no retry can mend: the consumer stops with a ConsumeError naming them.
_DENIED = {
    KafkaError.TOPIC_AUTHORIZATION_FAILED: "this client may not read topic {topic!r}",
    KafkaError.GROUP_AUTHORIZATION_FAILED: "this client may not use the consumer group",
}
# How long metadata may take when a missing topic's deadline is checked.
_METADATA_TIMEOUT = 5.0

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
        """Wait up to ``timeout`` for a first record, then take what is ready, error-free.

        Raises ConsumeError for what no retry can mend (a fatal client error, a
        topic or group this client may not read, a topic that stays missing):
        the engine stops and its caller raises it.
        """

    def commit(self, offsets: Sequence[tuple[str, int, int]], *, wait: bool) -> None:
        """Commit ``(topic, partition, next_offset)`` triples."""

    def take_failed_commits(self) -> list[TopicPartitionKey]:
        """Partitions whose last commit failed since the previous call."""

    def pause(self, partitions: Sequence[TopicPartitionKey]) -> None:
        """Stop fetching these partitions."""

    def resume(self, partitions: Sequence[TopicPartitionKey]) -> None:
        """Fetch these partitions again."""

    def seek(self, partition: TopicPartitionKey, offset: int) -> None:
        """Fetch ``partition`` from ``offset`` next (what was prefetched past it is dropped).

        Raises ``confluent_kafka.KafkaException`` when the client refuses: the
        engine keeps the partition paused and tries again.
        """

    def close(self) -> None:
        """Leave the group and release the client."""


class SourceFactory(Protocol):
    """Builds a consumer face's Source: :class:`KafkaSource`, or a stand-in for tests.

    It gets the librdkafka settings the face built (``group.id``,
    ``auto.offset.reset``, ...), the subscription (topic names and ``^regex``
    patterns), the engine to tell about rebalances, and the topics whose
    partitions start at their beginning when the group committed nothing there
    (retry topics and delay tiers: whatever ``auto.offset.reset`` says).
    """

    def __call__(
        self,
        settings: dict[str, Any],
        topics: Sequence[str],
        listener: RebalanceListener,
        *,
        missing_topic_timeout: float,
        from_start: Collection[str] = (),
    ) -> Source:
        """A group member subscribed to ``topics``."""


_error_of = KafkaMessage.error


def _keys(partitions: Sequence[TopicPartition]) -> list[TopicPartitionKey]:
    return [(tp.topic, tp.partition) for tp in partitions]


def _partitions(keys: Sequence[TopicPartitionKey]) -> list[TopicPartition]:
    return [TopicPartition(topic, partition) for topic, partition in keys]


class KafkaSource:
    """One confluent-kafka consumer, subscribed, with cooperative rebalancing."""

    def __init__(
        self,
        settings: dict[str, Any],
        topics: Sequence[str],
        listener: RebalanceListener,
        *,
        missing_topic_timeout: float = 15.0,
        from_start: Collection[str] = (),
    ) -> None:
        self._listener = listener
        self._from_start = frozenset(from_start)
        self._group = str(settings.get("group.id", ""))
        # Subscribed topics reported missing, and since when.
        self._missing: dict[str, float] = {}
        self._missing_topic_timeout = missing_topic_timeout
        self._next_missing_check = 0.0
        self._fatal: str | None = None
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
        if self._fatal is not None or self._missing:
            self._raise_if_hopeless()
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
                continue
            code, topic = error.code(), record.topic() or "?"
            if error.fatal() or code == KafkaError._FATAL:
                # librdkafka will not consume again (a static member fenced by another
                # with its group.instance.id, say).
                raise ConsumeError(
                    f"the consumer of group {self._group!r} hit a fatal error and stopped:"
                    f" {error.str()}"
                )
            if code in _DENIED:
                denied = _DENIED[code].format(topic=topic)
                raise ConsumeError(
                    f"{denied} (group {self._group!r}): {error.str()}; grant the client's"
                    " user the Read ACL on the topic and the group, or use another user"
                )
            if code == KafkaError.UNKNOWN_TOPIC_OR_PART:
                if topic not in self._missing:
                    self._missing[topic] = time.monotonic()
                    _log.warning(
                        "subscribed topic %r does not exist (yet): %s; waiting up to %.0fs",
                        topic,
                        error.str(),
                        self._missing_topic_timeout,
                    )
            else:
                _log.warning("consumer error: %s", error.str())
        return clean

    def _raise_if_hopeless(self) -> None:
        """Raise the fatal error, or the missing topic past its deadline."""
        if self._fatal is not None:
            raise ConsumeError(
                f"the consumer of group {self._group!r} hit a fatal error and stopped: "
                f"{self._fatal}"
            )
        now = time.monotonic()
        timeout = self._missing_topic_timeout
        overdue = [topic for topic, since in self._missing.items() if now - since >= timeout]
        if not overdue or now < self._next_missing_check:
            return
        # Asking the cluster blocks the fetch thread: not on every fetch.
        self._next_missing_check = now + _METADATA_TIMEOUT
        try:
            metadata = self._consumer.list_topics(timeout=_METADATA_TIMEOUT)
        except KafkaException:
            return  # the cluster is unreachable: not the same as a missing topic
        for topic in overdue:
            found = metadata.topics.get(topic)
            missing = found is None or (
                found.error is not None and found.error.code() == KafkaError.UNKNOWN_TOPIC_OR_PART
            )
            if not missing:
                del self._missing[topic]  # created meanwhile (maybe still electing leaders)
                continue
            raise ConsumeError(
                f"subscribed topic {topic!r} still does not exist after {timeout:.0f}s"
                " (connect_timeout): create it, or check the Topic name"
            )

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

    def seek(self, partition: TopicPartitionKey, offset: int) -> None:
        """Fetch ``partition`` from ``offset`` next (a held-back message is fetched again)."""
        self._consumer.seek(TopicPartition(partition[0], partition[1], offset))

    def close(self) -> None:
        """Leave the group (revoke callbacks run first) and release the consumer."""
        self._consumer.close()

    # -- callbacks, run inside poll()/consume() on the fetch thread -------------------

    def _on_assign(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        for tp in partitions:
            self._missing.pop(tp.topic, None)
        self._start_uncommitted_at_beginning(consumer, partitions)
        consumer.incremental_assign(partitions)
        self._listener.assigned(_keys(partitions))

    def _start_uncommitted_at_beginning(
        self, consumer: Consumer, partitions: list[TopicPartition]
    ) -> None:
        """Partitions of from_start topics the group never committed start at offset 0.

        A message moved to a retry topic (or a delay tier) before anything of that
        partition was handled would otherwise be skipped by a group that starts
        at "latest" (go-queue's default, Offset: last).
        """
        chosen = [tp for tp in partitions if tp.topic in self._from_start]
        if not chosen:
            return
        try:
            committed = consumer.committed(
                [TopicPartition(tp.topic, tp.partition) for tp in chosen], timeout=10
            )
        except KafkaException as exc:
            # Unknown: start at the beginning, so nothing is lost (some may come twice).
            _log.warning("reading committed offsets of %s failed (%s)", _keys(chosen), exc)
            committed = [TopicPartition(tp.topic, tp.partition) for tp in chosen]
        uncommitted = {(tp.topic, tp.partition) for tp in committed if tp.offset < 0}
        for tp in chosen:
            if (tp.topic, tp.partition) in uncommitted:
                tp.offset = OFFSET_BEGINNING

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
            # Raised by the next fetch: librdkafka will not consume again.
            _log.critical("fatal consumer error: %s", error.str())
            self._fatal = error.str()
        elif error.code() in _DENIED and self._fatal is None:
            self._fatal = f"{error.str()}: {_DENIED[error.code()].format(topic='?')}"
