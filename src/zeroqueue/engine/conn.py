"""One group member's consumer engine: fetch -> bounded buffer -> lanes -> ordered commit.

The fetch thread owns the Kafka consumer: it fetches batches while the buffer has
room, routes them to key lanes, commits every ``commit_interval`` and answers
rebalances. Processors (threads or tasks) run the lanes. At most
``capacity`` messages are in flight; when the buffer stays full the assigned
partitions are paused, so a backlog of millions never sits in memory.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

from confluent_kafka import KafkaException
from confluent_kafka import Message as KafkaMessage

from zeroqueue.engine.executors import Executor, make_executor
from zeroqueue.engine.governor import Governor
from zeroqueue.engine.handlers import FailurePolicyLike, HandlerSpec, ObserveHook
from zeroqueue.engine.lanes import Lane, Ordering, Router, WorkBoard
from zeroqueue.engine.offsets import PartitionProgress
from zeroqueue.engine.runner import LaneRunner
from zeroqueue.engine.source import RebalanceListener, Source, TopicPartitionKey
from zeroqueue.engine.watchdog import SlowHandlingWatch
from zeroqueue.errors import ConsumeError

__all__ = ["ConnEngine", "EngineOptions", "HoldBack"]

_log = logging.getLogger("zeroqueue.engine")

# How soon a held partition whose seek back failed is tried again, in seconds.
_SEEK_RETRY = 1.0

# Lanes per processor: more lanes, less head-of-line blocking behind a slow key.
LANES_PER_PROCESSOR = 2
# Most messages fetched in one go (bounded again by the room in the buffer). Large
# enough that scheduling costs little per message, and below CPython's
# 700-allocation threshold of its youngest GC generation: confluent-kafka's
# Message objects are GC-tracked, and batches above it trigger a collection on
# every fetch (measured: 5000-message batches cost ~30% throughput).
MAX_FETCH = 500
# How long one fetch blocks: also how quickly stop() and commits are noticed.
FETCH_TIMEOUT = 0.1
# How long a full buffer may stay full before the partitions are paused.
PAUSE_AFTER = 0.5
# Grace for processors to leave a message they are running when shutdown aborts;
# past it, a handler still running is left to finish on its own (daemon) thread.
ABORT_GRACE = 2.0
# How long the fetch thread runs lanes itself, when it is the one processor, before it
# polls again: bounds the delay of rebalance callbacks, commits and stop().
INLINE_BUDGET = 0.05
# While the fetch thread is the one processor, the first batch it fetches, before its
# handling time is known; later ones are sized to take about INLINE_BUDGET.
FIRST_DIRECT_BATCH = 10
# How long the fetch thread may handle without a pause before the watchdog sends the
# handler back to the workers: a few budgets, so noise does not trip it.
SLOW_HANDLING = 4 * INLINE_BUDGET


class HoldBack(Protocol):
    """Which fetched records are not due yet (a retry topic's): the engine holds them back.

    A held partition is paused and sought back to its first record not due, then
    resumed once that record is due: no busy loop, and the partitions of other
    topics keep flowing. Records of one partition must fall due in offset order.
    """

    topics: frozenset[str]

    def due(self, record: KafkaMessage) -> float:
        """When ``record`` is due, in ``time.time()`` seconds (0: now)."""


@dataclass(frozen=True)
class EngineOptions:
    """Knobs of one conn engine (validated by the Queue that builds it)."""

    processors: int = 8
    capacity: int = 1000
    commit_interval: float = 1.0
    shutdown_timeout: float = 10.0
    ordering: Ordering = "key"
    unordered_keyless: bool = False
    multi_topic: bool = True
    adaptive: bool = True


class ConnEngine(RebalanceListener):
    """Consumes for one group member until :meth:`stop`; see the module docstring."""

    def __init__(
        self,
        source_factory: Callable[[RebalanceListener], Source],
        handler: HandlerSpec,
        policy: FailurePolicyLike,
        options: EngineOptions,
        *,
        name: str,
        metrics: ObserveHook | None = None,
        loop: asyncio.AbstractEventLoop | None = None,
        hold_back: HoldBack | None = None,
    ) -> None:
        self.name = name
        self._hold_back = hold_back
        # Partitions held back, and when (time.time()) their first record is due.
        self._held: dict[TopicPartitionKey, float] = {}
        # Held partitions whose seek back failed: the offset to seek to first.
        self._unsought: dict[TopicPartitionKey, int] = {}
        self.options = options
        self._source_factory = source_factory
        lane_count = options.processors * LANES_PER_PROCESSOR
        self.board = WorkBoard(lane_count)
        self._router = Router(
            lane_count,
            options.ordering,
            options.unordered_keyless,
            multi_topic=options.multi_topic,
        )
        self.governor = (
            Governor(options.processors) if not handler.is_async and options.adaptive else None
        )
        # Only a governed engine lets the fetch thread run the handler, so only it
        # needs the watchdog.
        self._watch = SlowHandlingWatch(SLOW_HANDLING, name) if self.governor is not None else None
        self.runner = LaneRunner(
            self.board, handler, policy, metrics=metrics, governor=self.governor, watch=self._watch
        )
        self._executor: Executor = make_executor(
            self.runner, options.processors, name, self._on_processor_crash, loop
        )
        self._crash: ConsumeError | None = None
        self._crash_lock = threading.Lock()
        self._progress: dict[TopicPartitionKey, PartitionProgress] = {}
        #: The partitions this member owns now (replaced, never mutated: safe to read).
        self.assignment: tuple[TopicPartitionKey, ...] = ()
        self._source: Source | None = None
        self._run_thread: threading.Thread | None = None
        self._stop = threading.Event()
        # Set while shutting down: revokes then wait only for what is left of it.
        self._shutdown_deadline: float | None = None
        self._paused = False
        # Most messages to fetch while the fetch thread is the one processor: it handles
        # them itself (see _dispatch), so a batch should take about INLINE_BUDGET.
        self._direct_batch = FIRST_DIRECT_BATCH
        # Set when partitions left during a fetch: its records may include theirs.
        self._left_in_fetch = False
        #: Messages handed to handlers so far (for stats and tests).
        self.dispatched = 0

    # -- lifecycle ------------------------------------------------------------------

    def run(self) -> None:
        """Consume until :meth:`stop`; then drain, commit and leave the group.

        Raises:
            ConsumeError: a processor failed outside the handler; the engine
                stopped, leaving that processor's messages uncommitted.
        """
        self._run_thread = threading.current_thread()
        self._executor.start()
        try:
            self._source = self._source_factory(self)
            self._fetch_loop(self._source)
        finally:
            self._shutdown()
        if self._crash is not None:
            raise self._crash

    def _on_processor_crash(self, lane: Lane | None, error: BaseException) -> None:
        # The lane's messages can no longer be handled, and the partitions behind
        # them can no longer commit: carrying on would look healthy and do
        # nothing for those keys. Stopping leaves them uncommitted, so the next
        # owner of the partitions gets them again. (The traceback is logged once,
        # with the ConsumeError that run() raises.)
        where = "the fetch thread" if lane is None else repr(lane)
        _log.critical("%s: a processor crashed on %s: %r; stopping", self.name, where, error)
        with self._crash_lock:
            if self._crash is None:
                crash = ConsumeError(
                    f"{self.name}: a processor crashed outside the handler ({error!r}); the"
                    " queue stopped and left that processor's messages uncommitted for"
                    " redelivery"
                )
                crash.__cause__ = error
                self._crash = crash
        self.stop()

    def owns(self, thread: threading.Thread) -> bool:
        """Whether ``thread`` is one this engine runs: its fetch thread or a processor."""
        return thread is self._run_thread or self._executor.owns(thread)

    def stop(self) -> None:
        """Ask :meth:`run` to finish; safe from any thread or a signal handler."""
        self._stop.set()
        # Messages waiting for a retry give up now, uncommitted: a retry pause may be
        # far longer than shutdown_timeout.
        self.runner.stop()

    @property
    def stopping(self) -> bool:
        """Whether :meth:`stop` was called."""
        return self._stop.is_set()

    def partition_states(self) -> list[tuple[str, int, int | None, int | None, int]]:
        """Per owned partition: topic, partition, handled-until offset, committed, unfinished.

        For readers on other threads (metrics scrapes): taken under the board's lock,
        which guards the chunk counters, and changing nothing. The handled-until
        offset is the first message not known to be handled (None before any was),
        committed the last offset this member committed, unfinished the fetched
        messages whose runs are not finished yet.
        """
        # tuple() copies the dict in one C call: the fetch thread may assign or
        # revoke meanwhile, and iterating the live dict could see it change.
        progresses = tuple(self._progress.values())
        states = []
        with self.board.lock:
            for progress in progresses:
                until, unfinished = progress.unhandled()
                states.append(
                    (progress.topic, progress.partition, until, progress.committed, unfinished)
                )
        return states

    # -- the fetch loop -------------------------------------------------------------

    def _fetch_loop(self, source: Source) -> None:
        options, board, executor = self.options, self.board, self._executor
        capacity = options.capacity
        low_water = capacity // 2
        next_commit = time.monotonic() + options.commit_interval
        governor = self.governor
        was_inline = False
        while not self._stop.is_set():
            now = time.monotonic()
            if governor is not None and governor.tick(now):
                executor.schedule(())  # the limit changed: wake workers if it rose
            if now >= next_commit:
                self._commit(wait=False)
                next_commit = now + options.commit_interval
            if self._held:
                self._release_due(source)
            inline = executor.inline
            if was_inline and not inline:
                # The fetch thread stops running lanes (a probe begins; the limit may be
                # unchanged): workers must take the lanes it leaves ready.
                executor.schedule(())
            was_inline = inline
            if inline and executor.has_ready():
                executor.run_inline(INLINE_BUDGET)
            in_flight = board.in_flight
            # With work waiting for this thread, only take what is already fetched.
            wait = 0.0 if inline and executor.has_ready() else FETCH_TIMEOUT
            if self._held:
                # Wake when the first held partition falls due, not up to a tick later.
                wait = max(0.0, min(wait, min(self._held.values()) - time.time()))
            if self._paused:
                if in_flight <= low_water:
                    source.resume([key for key in self._progress if key not in self._held])
                    self._paused = False
                    continue
                # Paused: polling only serves group events (and stray records).
                self._dispatch(source.fetch(MAX_FETCH, wait))
                continue
            room = capacity - in_flight
            if room <= 0:
                self._relieve(source, capacity)
                continue
            batch = min(room, self._direct_batch if inline else MAX_FETCH)
            # No local holds the batch: handled records are freed before the next fetch.
            self._dispatch(source.fetch(batch, wait))

    def _relieve(self, source: Source, capacity: int) -> None:
        """The buffer is full: wait a little for room, else pause fetching."""
        board = self.board
        if self._wait_until(lambda: board.in_flight < capacity or self._stop.is_set(), PAUSE_AFTER):
            return
        # Still full (slow or failing handlers): pause, so librdkafka stops prefetching
        # while we keep polling for rebalances and heartbeats.
        source.pause(list(self._progress))
        self._paused = True
        _log.debug("%s: buffer full (%d in flight), partitions paused", self.name, capacity)

    def _wait_until(self, ready: Callable[[], bool], timeout: float) -> bool:
        """Wait for ``ready()``, running lanes on this thread when no worker will."""
        deadline = time.monotonic() + timeout
        executor, board = self._executor, self.board
        while True:
            left = deadline - time.monotonic()
            if not executor.inline:
                return board.wait(ready, max(left, 0.0))
            with board.lock:
                if ready():
                    return True
            if left <= 0:
                return False
            if not executor.run_inline(min(INLINE_BUDGET, left)):
                # Nothing queued: lanes taken before the switch to inline still run.
                board.wait(ready, min(0.05, left))

    def _release_due(self, source: Source) -> None:
        """Resume held partitions whose first record is due (the fetch wait is the tick)."""
        wall = time.time()
        due = []
        for key, at in list(self._held.items()):
            if at > wall:
                continue
            unsought = self._unsought.get(key)
            if unsought is not None and not self._seek(source, key, unsought):
                self._held[key] = wall + _SEEK_RETRY  # resuming now would skip it
                continue
            del self._held[key]
            due.append(key)
        if due and not self._paused:
            source.resume(due)

    def _hold(self, records: list[KafkaMessage]) -> list[KafkaMessage]:
        """Leave out records not due yet, and what follows them in their partition."""
        hold_back, source = self._hold_back, self._source
        assert hold_back is not None
        assert source is not None
        topics, wall = hold_back.topics, time.time()
        ready: list[KafkaMessage] = []
        cut: dict[TopicPartitionKey, tuple[int, float]] = {}
        for record in records:
            topic = record.topic()
            if topic in topics:
                key = (topic or "", record.partition() or 0)
                if key in cut:
                    continue
                due = hold_back.due(record)
                if due > wall:
                    offset = record.offset()
                    cut[key] = (-1 if offset is None else offset, due)
                    continue
            ready.append(record)
        for key, (offset, due) in cut.items():
            if key not in self._progress:
                continue  # revoked meanwhile
            source.pause([key])
            self._held[key] = due
            self._seek(source, key, offset)
            _log.debug("%s: %s[%d]@%d held back %.1fs", self.name, *key, offset, due - wall)
        return ready

    def _seek(self, source: Source, key: TopicPartitionKey, offset: int) -> bool:
        """Seek a held partition back to its first record not due; False if that failed.

        Until a seek succeeds the partition stays paused (it is tried again at each
        release): resuming it unsought would fetch past the held record, and
        committing past it would lose it.
        """
        try:
            source.seek(key, offset)
        except KafkaException as error:
            self._unsought[key] = offset
            _log.warning(
                "%s: %s[%d] could not seek back to held offset %d (%s); it stays paused",
                self.name,
                *key,
                offset,
                error,
            )
            return False
        self._unsought.pop(key, None)
        return True

    def _dispatch(self, records: list[KafkaMessage]) -> None:
        if self._hold_back is not None and records:
            records = self._hold(records)
        if self._left_in_fetch:
            # Records fetched before a revoke (or loss) that ran inside this fetch are
            # no longer ours: the next owner starts from our last commit. (Getting a
            # partition back needs another rebalance, a JoinGroup round trip away, so
            # it cannot be assigned again within the same fetch.)
            self._left_in_fetch = False
            owned = self._progress
            records = [r for r in records if (r.topic() or "", r.partition() or 0) in owned]
        if not records:
            return
        self.dispatched += len(records)
        if self.board.in_flight == 0 and self._executor.inline:
            # Nothing else in flight and this thread is the one processor: handle the
            # batch right here, in fetch order, which keeps every key's order without
            # lanes. Only a message that needs retries sends the rest to the lanes.
            started, fetched = time.perf_counter(), len(records)
            try:
                records = self.runner.run_direct(
                    records, self._progress.get, multi_topic=self.options.multi_topic
                )
            except BaseException as exc:
                # Nothing of the failed partition run was recorded as handled.
                self._on_processor_crash(None, exc)
                return
            if not records:
                self._size_direct_batch(fetched, time.perf_counter() - started)
                return
        items = self._router.route(records, self._progress_of)
        self._executor.schedule(self.board.post(items, len(records)))

    def _size_direct_batch(self, messages: int, seconds: float) -> None:
        """Fetch as many as this thread handles in about INLINE_BUDGET: polls stay frequent."""
        per_message = seconds / max(messages, 1)
        self._direct_batch = max(1, min(MAX_FETCH, int(INLINE_BUDGET / max(per_message, 1e-9))))

    def _progress_of(self, topic: str, partition: int) -> PartitionProgress:
        key = (topic, partition)
        progress = self._progress.get(key)
        if progress is None:
            progress = self._progress[key] = PartitionProgress(topic, partition)
        return progress

    # -- commits --------------------------------------------------------------------

    def _commit(self, *, wait: bool, only: Sequence[PartitionProgress] | None = None) -> None:
        source = self._source
        if source is None:
            return
        # A failed commit is resent with the next one.
        for key in source.take_failed_commits():
            progress = self._progress.get(key)
            if progress is not None:
                progress.committed = None
        due: list[tuple[PartitionProgress, int]] = []
        with self.board.lock:
            for progress in only if only is not None else list(self._progress.values()):
                offset = progress.commit_due()
                if offset is not None:
                    due.append((progress, offset))
        if not due:
            return
        for progress, offset in due:
            progress.committed = offset
        source.commit([(p.topic, p.partition, offset) for p, offset in due], wait=wait)

    # -- rebalances (called by the source inside fetch, on this thread) ---------------

    def assigned(self, partitions: Sequence[TopicPartitionKey]) -> None:
        """New partitions: track them, paused too if the buffer is full."""
        for key in partitions:
            self._progress[key] = PartitionProgress(*key)
        self.assignment = tuple(self._progress)
        if self._source is not None:
            if self._paused:
                self._source.pause(partitions)
            else:
                # librdkafka keeps a partition's pause across a revoke and a new
                # assignment: one held back (or paused for a full buffer) when it left
                # would otherwise never be fetched again.
                self._source.resume(partitions)
        _log.info("%s: assigned %s", self.name, _names(partitions))

    def revoking(self, partitions: Sequence[TopicPartitionKey]) -> None:
        """Partitions leave: let their fetched messages finish, commit, then let go."""
        self._left_in_fetch = True
        leaving = [self._progress[key] for key in partitions if key in self._progress]
        timeout = self.options.shutdown_timeout
        if self._shutdown_deadline is not None:
            # Closing the client revokes what shutdown already waited for: do not wait
            # shutdown_timeout a second time.
            timeout = max(0.0, self._shutdown_deadline - time.monotonic())
        drained = self._drain(leaving, timeout)
        self._commit(wait=True, only=leaving)
        for progress in leaving:
            progress.revoked = True
            del self._progress[(progress.topic, progress.partition)]
            self._held.pop((progress.topic, progress.partition), None)
            self._unsought.pop((progress.topic, progress.partition), None)
        self.assignment = tuple(self._progress)
        if not drained:
            _log.warning(
                "%s: %s revoked before their messages were handled within %.1fs; "
                "the rest are left uncommitted for the next owner",
                self.name,
                _names(partitions),
                self.options.shutdown_timeout,
            )
        _log.info("%s: revoked %s", self.name, _names(partitions))

    def lost(self, partitions: Sequence[TopicPartitionKey]) -> None:
        """Partitions were lost: stop handling them, nothing can be committed."""
        self._left_in_fetch = True
        for key in partitions:
            self._held.pop(key, None)
            self._unsought.pop(key, None)
            progress = self._progress.pop(key, None)
            if progress is not None:
                progress.revoked = True
        self.assignment = tuple(self._progress)
        _log.warning("%s: lost %s without a commit", self.name, _names(partitions))

    def _drain(self, progresses: Sequence[PartitionProgress], timeout: float) -> bool:
        if not progresses:
            return True

        def settled() -> bool:
            for progress in progresses:
                progress.advance()
            # After a crash, abandoned messages never settle: do not wait for them.
            # Nor, once stopping, for messages a retry gave up on (uncommitted): with
            # nothing left in flight, nothing more will finish.
            if self._crash is not None or (self.runner.stopping and self.board.in_flight == 0):
                return True
            return not any(progress.in_flight for progress in progresses)

        return self._wait_until(settled, timeout)

    # -- shutdown -------------------------------------------------------------------

    def _shutdown(self) -> None:
        board, options = self.board, self.options
        self._shutdown_deadline = time.monotonic() + options.shutdown_timeout
        self.runner.stop()
        if self._crash is not None:
            # Let the processors finish what they hold (it may commit), not start
            # more: queued work would wait behind the abandoned lane's partitions.
            board.drop_pending()
        drained = self._wait_until(lambda: board.in_flight == 0, options.shutdown_timeout)
        if not drained:
            _log.warning(
                "%s: %d messages still in flight after shutdown_timeout=%.1fs; "
                "they stay uncommitted and will be delivered again",
                self.name,
                board.in_flight,
                options.shutdown_timeout,
            )
            self.runner.abort()
            board.drop_pending()
        # One grace for handlers to leave what they run, shared by both waits below.
        grace_until = time.monotonic() + ABORT_GRACE
        if not drained:
            board.wait(lambda: board.in_flight == 0, ABORT_GRACE)
        source = self._source
        try:
            if source is not None:
                self._commit(wait=True)
                source.close()
        finally:
            if not self._executor.shutdown(max(0.0, grace_until - time.monotonic())):
                _log.warning(
                    "%s: a handler is still running after shutdown; it is left to finish on"
                    " its own thread, its message uncommitted",
                    self.name,
                )
            if self._watch is not None:
                self._watch.close()


def _names(partitions: Sequence[TopicPartitionKey]) -> str:
    return ", ".join(f"{topic}[{partition}]" for topic, partition in partitions) or "nothing"
