"""MemorySource: one consumer-group member of the in-memory broker, as the engine sees it.

It keeps the :class:`~zeroqueue.engine.source.Source` contract the way
``KafkaSource`` does: rebalance callbacks run inside :meth:`fetch` on the fetch
thread (revokes first, so the old owner commits before the next one starts
from the committed offset), paused partitions deliver nothing, a seek moves the
next fetch, and :meth:`close` revokes what it owns before leaving the group. A
member that :meth:`MemoryBroker.crash` took down commits nothing more and
leaves at once, as a killed process does.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Collection, Sequence
from typing import TYPE_CHECKING, Any

from confluent_kafka import Message as KafkaMessage

from zeroqueue.engine.source import RebalanceListener, TopicPartitionKey
from zeroqueue.errors import ConsumeError

if TYPE_CHECKING:
    from zeroqueue.testing._broker import MemoryBroker

__all__ = ["MemorySource"]

# How often a waiting fetch looks whether its engine is stopping: a Queue's stop()
# then takes about this long, not the engine's whole fetch timeout.
_STOP_CHECK = 0.002
_EARLIEST = ("earliest", "smallest", "beginning")


class MemorySource:
    """A group member subscribed to ``topics`` on a :class:`MemoryBroker`."""

    def __init__(
        self,
        broker: MemoryBroker,
        settings: dict[str, Any],
        topics: Sequence[str],
        listener: RebalanceListener,
        *,
        missing_topic_timeout: float = 15.0,
        from_start: Collection[str] = (),
    ) -> None:
        self.broker = broker
        self.listener = listener
        self.group = str(settings.get("group.id", ""))
        self.client_id = str(settings.get("client.id", ""))
        self.subscription: tuple[str, ...] = tuple(topics)
        self.from_earliest = str(settings.get("auto.offset.reset", "latest")) in _EARLIEST
        self.from_start = frozenset(from_start)
        self.missing_topic_timeout = missing_topic_timeout
        self.joined_at = time.monotonic()
        # Owned partitions and the offset each fetches next.
        self.owned: dict[TopicPartitionKey, int] = {}
        self.to_assign: set[TopicPartitionKey] = set()
        self.to_revoke: set[TopicPartitionKey] = set()
        self.paused: set[TopicPartitionKey] = set()
        self.crashed = False
        self.closed = False
        # Set by MemoryBroker.crash: what the member owned, for its engine to drop on
        # the fetch thread (as lost), then how to stop its Queue.
        self.lost_on_crash: list[TopicPartitionKey] = []
        self.after_crash: Callable[[], None] | None = None
        self._failed_commits: list[TopicPartitionKey] = []
        broker._join(self)

    @property
    def live(self) -> bool:
        """Whether this member is still in its group."""
        return not (self.crashed or self.closed)

    # -- the Source protocol ----------------------------------------------------------

    def fetch(self, max_messages: int, timeout: float) -> list[KafkaMessage]:
        """Serve rebalances, then wait up to ``timeout`` for records and take what is ready."""
        deadline = time.monotonic() + timeout
        cond = self.broker._cond
        while True:
            self._serve_rebalance()
            with cond:
                if not self.live:
                    lost, self.lost_on_crash = self.lost_on_crash, []
                    after, self.after_crash = self.after_crash, None
            if not self.live:
                self._crashed(lost, after)
                return []
            with cond:
                if self.to_revoke or self.to_assign:
                    continue
                batch = self._take(max_messages)
                if batch:
                    return batch
                self.broker._check_missing(self)
                left = deadline - time.monotonic()
                if left <= 0 or getattr(self.listener, "stopping", False):
                    return []
                cond.wait(min(left, _STOP_CHECK))

    def _crashed(self, lost: list[TopicPartitionKey], after: Callable[[], None] | None) -> None:
        """A killed process handles nothing more: its engine drops what it fetched."""
        if lost:
            # On the fetch thread, as librdkafka reports a lost partition: messages
            # fetched and not started are never handled (nor committed).
            self.listener.lost(lost)
        if after is not None:
            after()

    def _take(self, max_messages: int) -> list[KafkaMessage]:
        batch: list[KafkaMessage] = []
        topics = self.broker._topics
        for key, position in self.owned.items():
            if key in self.paused:
                continue
            records = topics[key[0]].partitions[key[1]].records
            if position >= len(records):
                continue
            taken = records[position : position + max_messages - len(batch)]
            self.owned[key] = position + len(taken)
            batch.extend(taken)
            if len(batch) >= max_messages:
                break
        return batch

    def _serve_rebalance(self) -> None:
        cond = self.broker._cond
        with cond:
            if not self.live:
                return
            revoking = sorted(self.to_revoke & set(self.owned))
            self.to_revoke.clear()
        if revoking:
            self.listener.revoking(revoking)
            with cond:
                for key in revoking:
                    self.owned.pop(key, None)
                    self.paused.discard(key)
                self.broker._rebalance(self.group)
        with cond:
            if not self.live:
                return
            assigning = sorted(self.to_assign)
            self.to_assign.clear()
            for key in assigning:
                self.owned[key] = self.broker._start_offset(self, key)
        if assigning:
            self.listener.assigned(assigning)

    def commit(self, offsets: Sequence[tuple[str, int, int]], *, wait: bool) -> None:
        """Commit ``(topic, partition, next_offset)``; a partition this member lost fails."""
        with self.broker._cond:
            if self.crashed:
                return  # a dead process commits nothing
            for topic, partition, offset in offsets:
                key = (topic, partition)
                if key in self.owned and not self.closed:
                    self.broker._commit(self.group, key, offset)
                else:
                    self._failed_commits.append(key)
            self.broker._cond.notify_all()

    def take_failed_commits(self) -> list[TopicPartitionKey]:
        """Partitions whose commit failed since the last call."""
        with self.broker._cond:
            failed, self._failed_commits = self._failed_commits, []
        return failed

    def pause(self, partitions: Sequence[TopicPartitionKey]) -> None:
        """Stop fetching ``partitions``."""
        with self.broker._cond:
            self.paused.update(partitions)

    def resume(self, partitions: Sequence[TopicPartitionKey]) -> None:
        """Fetch ``partitions`` again."""
        with self.broker._cond:
            self.paused.difference_update(partitions)
            self.broker._cond.notify_all()

    def seek(self, partition: TopicPartitionKey, offset: int) -> None:
        """Fetch ``partition`` from ``offset`` next."""
        with self.broker._cond:
            if partition in self.owned:
                self.owned[partition] = offset
            self.broker._cond.notify_all()

    def close(self) -> None:
        """Revoke what this member owns (the engine commits it), then leave the group."""
        if self.crashed or self.closed:
            return
        with self.broker._cond:
            owned = sorted(self.owned)
        if owned:
            self.listener.revoking(owned)
        with self.broker._cond:
            self.closed = True
            self.owned.clear()
            self.broker._leave(self)

    # -- for the broker's helpers -----------------------------------------------------

    def caught_up(self) -> bool:
        """Everything this member owns is fetched and, as far as its engine says, handled."""
        for (topic, partition), position in self.owned.items():
            if position < self.broker._topics[topic].partitions[partition].end:
                return False
        states = getattr(self.listener, "partition_states", None)
        if states is None:
            return True
        return all(unfinished == 0 for *_, unfinished in states())


def missing_error(source: MemorySource, topic: str) -> ConsumeError:
    """The error a subscription to a topic that never appeared ends with."""
    return ConsumeError(
        f"subscribed topic {topic!r} still does not exist after"
        f" {source.missing_topic_timeout:.0f}s (connect_timeout): create it, or check the"
        " Topic name"
    )
