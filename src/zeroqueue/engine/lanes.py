"""Key lanes: per-key order with parallel processors, handed over in batches.

Every fetched message is routed to one of ``lane_count`` lanes:

* ``ordering="key"`` (default): a keyed message goes to the lane of its key, a
  keyless one to the lane of its partition, so one key (and the keyless messages
  of one partition) is always handled by one lane, in offset order;
* ``ordering="partition"``: every message goes to the lane of its partition;
* ``unordered_keyless=True``: keyless messages are spread over all lanes.

A lane is sequential: at most one processor works on it at a time, in the order
its work arrived, and that processor stays on it while it has work. Different
lanes run in parallel. There are more lanes than processors, so a slow key
holds back only the few keys that share its lane.

Work moves in batches: one fetched batch becomes at most one work item per
lane, each a list of ``(chunk, messages)`` segments, so scheduling costs a few
operations per batch rather than per message.
"""

from __future__ import annotations

import itertools
import threading
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from typing import Literal, TypeAlias

from confluent_kafka import Message as KafkaMessage

from zeroqueue.engine.offsets import Chunk, PartitionProgress

__all__ = ["Lane", "Ordering", "Router", "Segment", "WorkBoard", "WorkItem"]

Ordering: TypeAlias = Literal["key", "partition"]
#: Messages of one chunk that share a lane.
Segment: TypeAlias = tuple[Chunk, list[KafkaMessage]]
#: What one lane receives from one fetched batch.
WorkItem: TypeAlias = list[Segment]


class Lane:
    """A sequential queue of work items; at most one processor runs it at a time."""

    __slots__ = ("given_up", "index", "pending", "scheduled")

    def __init__(self, index: int) -> None:
        self.index = index
        self.pending: deque[WorkItem] = deque()
        #: True while the lane sits in the ready queue or a processor runs it.
        self.scheduled = False
        #: Set when, while stopping, a message of this lane was left unhandled: the
        #: lane's later messages (they may share its key) must not overtake it, even
        #: those posted after its processor left the lane.
        self.given_up = False

    def __repr__(self) -> str:
        return f"<Lane {self.index} pending={len(self.pending)} scheduled={self.scheduled}>"


# Unbound C methods: calling them through groupby/map avoids a Python frame per message.
_partition_of = KafkaMessage.partition
_topic_of = KafkaMessage.topic


class Router:
    """Split a fetched batch into per-lane work items and per-partition chunks.

    ``multi_topic`` must be True when the subscription can yield more than one
    topic (a list or a ``^regex``); a single topic skips the topic comparison.
    """

    def __init__(
        self,
        lane_count: int,
        ordering: Ordering,
        unordered_keyless: bool,
        *,
        multi_topic: bool = True,
    ) -> None:
        if lane_count < 1:
            raise ValueError("lane_count must be >= 1")
        self.lane_count = lane_count
        self.by_key = ordering == "key"
        self.unordered_keyless = unordered_keyless
        self.multi_topic = multi_topic
        self._spread = itertools.count()

    def lane_of_partition(self, topic: str, partition: int) -> int:
        """The lane that keeps a partition's (keyless) messages in order."""
        return hash((topic, partition)) % self.lane_count

    def lane_of_key(self, key: bytes) -> int:
        """The lane of a keyed message under ``ordering="key"`` (route() inlines this).

        Python's ``hash`` is seeded per process, so which keys share a lane differs
        between processes, never within one.
        """
        return hash(key) % self.lane_count

    def lane_of(self, record: KafkaMessage) -> int:
        """The lane :meth:`route` gives ``record`` (a keyless one spread: its partition's)."""
        key = record.key()
        if self.by_key and key is not None:
            return self.lane_of_key(key)
        return self.lane_of_partition(record.topic() or "", record.partition() or 0)

    def route(
        self,
        records: Iterable[KafkaMessage],
        progress_of: Callable[[str, int], PartitionProgress],
    ) -> dict[int, WorkItem]:
        """Cut ``records`` (error-free, in fetch order) into work items keyed by lane.

        Each consecutive run of one partition becomes a chunk registered with that
        partition's progress; its ``remaining`` counts the segments cut from it.
        """
        items: dict[int, WorkItem] = {}
        for partition, same_partition in itertools.groupby(records, _partition_of):
            run = list(same_partition)
            if self.multi_topic:
                for topic, same_topic in itertools.groupby(run, _topic_of):
                    self._cut(list(same_topic), topic or "", partition or 0, progress_of, items)
            else:
                self._cut(run, run[0].topic() or "", partition or 0, progress_of, items)
        return items

    def _cut(
        self,
        run: list[KafkaMessage],
        topic: str,
        partition: int,
        progress_of: Callable[[str, int], PartitionProgress],
        items: dict[int, WorkItem],
    ) -> None:
        last_offset = run[-1].offset()
        chunk = progress_of(topic, partition).add_chunk(
            -1 if last_offset is None else last_offset, len(run)
        )
        partition_lane = self.lane_of_partition(topic, partition)
        groups: list[tuple[int, list[KafkaMessage]]]
        if not self.by_key:
            groups = [(partition_lane, run)]
        else:
            lanes = self.lane_count
            buckets: list[list[KafkaMessage]] = [[] for _ in range(lanes)]
            put = [bucket.append for bucket in buckets]
            if self.unordered_keyless:
                spread = self._spread
                for record in run:
                    key = record.key()
                    put[hash(key) % lanes if key is not None else next(spread) % lanes](record)
            else:
                for record in run:
                    key = record.key()
                    put[hash(key) % lanes if key is not None else partition_lane](record)
            groups = [(lane, bucket) for lane, bucket in enumerate(buckets) if bucket]
        chunk.remaining = len(groups)
        for lane, group in groups:
            item = items.get(lane)
            if item is None:
                items[lane] = [(chunk, group)]
            else:
                item.append((chunk, group))


class WorkBoard:
    """The lanes, the count of messages in flight, and the lock that guards both.

    The fetch thread posts work and waits for room or for drains; processors take
    work and report segments done. Offsets progress (chunk counters) is updated
    under the same lock, so a reader of :class:`PartitionProgress` holding
    ``board.lock`` sees a consistent picture.
    """

    def __init__(self, lane_count: int) -> None:
        self.lock = threading.Lock()
        self.changed = threading.Condition(self.lock)
        self.lanes = [Lane(i) for i in range(lane_count)]
        #: Messages posted and not yet finished (or skipped).
        self.in_flight = 0
        # Threads inside wait(): notify only when someone listens.
        self._waiters = 0

    def post(self, items: dict[int, WorkItem], message_count: int) -> list[Lane]:
        """Queue work items on their lanes; return the lanes that need scheduling."""
        wake: list[Lane] = []
        lanes = self.lanes
        with self.lock:
            self.in_flight += message_count
            for index, item in items.items():
                lane = lanes[index]
                lane.pending.append(item)
                if not lane.scheduled:
                    lane.scheduled = True
                    wake.append(lane)
        return wake

    def take(self, lane: Lane) -> WorkItem | None:
        """The first work item of a lane a processor just picked up (None if empty)."""
        with self.lock:
            if lane.pending:
                return lane.pending.popleft()
            lane.scheduled = False
            return None

    def finish(
        self, lane: Lane, done: Sequence[Segment], settled: int, *, take_next: bool = True
    ) -> WorkItem | None:
        """Record a finished work item and hand over the lane's next one.

        ``done`` lists the segments fully handled (their chunks progress);
        ``settled`` counts every message that left flight, handled or skipped.
        Returns the lane's next work item, or None once it has none (the lane is
        then no longer scheduled). With ``take_next=False`` it returns None and a
        lane with more work stays scheduled, for the caller to queue again.
        """
        with self.lock:
            self._account(done, settled)
            if lane.pending:
                return lane.pending.popleft() if take_next else None
            lane.scheduled = False
            return None

    def put_back(self, lane: Lane, done: Sequence[Segment], settled: int, rest: WorkItem) -> None:
        """Record partial progress and return the unhandled ``rest`` to the lane's front.

        The lane stays scheduled: whoever put it back queues it again.
        """
        with self.lock:
            self._account(done, settled)
            lane.pending.appendleft(rest)

    def _account(self, done: Sequence[Segment], settled: int) -> None:
        # Under self.lock: finished segments count down their chunks, settled
        # messages leave flight, and whoever waits for either hears of it.
        for chunk, _ in done:
            chunk.remaining -= 1
        self.in_flight -= settled
        if self._waiters:
            self.changed.notify_all()

    def wait(self, ready: Callable[[], bool], timeout: float) -> bool:
        """Wait until ``ready()`` (checked under the lock) or ``timeout``; return ``ready()``."""
        with self.changed:
            self._waiters += 1
            try:
                return self.changed.wait_for(ready, timeout)
            finally:
                self._waiters -= 1

    def abandon(self, lane: Lane, item: WorkItem | None) -> None:
        """Take ``lane`` out of service: its processor failed outside the handler.

        The unfinished ``item`` and the lane's queued work leave flight without
        counting as done, so their partitions never commit past them and no one
        waits for them. The lane stays scheduled, so no processor takes it again;
        work posted to it later waits for :meth:`drop_pending`.
        """
        with self.lock:
            abandoned = [*lane.pending] if item is None else [item, *lane.pending]
            lane.pending.clear()
            lane.scheduled = True
            self.in_flight -= sum(len(records) for work in abandoned for _, records in work)
            if self._waiters:
                self.changed.notify_all()

    def drop_pending(self) -> int:
        """Forget queued work that no processor started; return how many messages it held."""
        dropped = 0
        with self.lock:
            for lane in self.lanes:
                for item in lane.pending:
                    dropped += sum(len(records) for _, records in item)
                lane.pending.clear()
            self.in_flight -= dropped
            if self._waiters:
                self.changed.notify_all()
        return dropped
