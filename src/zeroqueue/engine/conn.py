"""One group member's consumer engine: fetch -> bounded buffer -> lanes -> ordered commit.

The fetch thread owns the Kafka consumer: it fetches batches while the buffer has
room, routes them to key lanes, commits every ``commit_interval`` and answers
rebalances. Processors (threads or tasks) run the lanes. At most
``capacity`` messages are in flight; when the buffer stays full the assigned
partitions are paused, so a backlog of millions never sits in memory.

A fast sync handler runs on the fetch thread itself (see the governor). Should
one of its calls hang there, a new fetch thread takes over (see the watchdog):
the stuck call's key waits for it, every other key flows, and the old thread
leaves once its call returns. :meth:`ConnEngine.run` waits for whichever fetch
thread is last, so it returns within its bounds even while a call hangs.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

from confluent_kafka import Message as KafkaMessage

from zeroqueue.engine.executors import Executor, make_executor
from zeroqueue.engine.governor import Governor
from zeroqueue.engine.handlers import FailurePolicyLike, HandlerSpec, ObserveHook, as_consume_error
from zeroqueue.engine.hands import Hand, HandRegistry, StuckReport
from zeroqueue.engine.holding import HeldPartitions, HoldBack
from zeroqueue.engine.lanes import Lane, Ordering, Router, WorkBoard
from zeroqueue.engine.offsets import Chunk, PartitionProgress
from zeroqueue.engine.runner import Demoted, LaneRunner
from zeroqueue.engine.source import RebalanceListener, Source, TopicPartitionKey
from zeroqueue.engine.watchdog import SlowHandlingWatch
from zeroqueue.errors import ConsumeError

__all__ = ["ConnEngine", "EngineOptions"]

_log = logging.getLogger("zeroqueue.engine")

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
# How long one call may hold the fetch thread before a new fetch thread takes over.
STUCK_ON_FETCH_THREAD = 1.0


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
    #: A message held this long by its handler (or its retries) is reported.
    stuck_after: float = 60.0


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
        # Partitions held back until their first record is due (delay tiers, retries).
        self._held = HeldPartitions(hold_back, name) if hold_back is not None else None
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
        self._watch = (
            SlowHandlingWatch(
                SLOW_HANDLING,
                name,
                stuck_after=STUCK_ON_FETCH_THREAD,
                on_stuck=self._take_over,
            )
            if self.governor is not None
            else None
        )
        self.hands = HandRegistry()
        #: Reports messages held by their handler for options.stuck_after or longer.
        self.stuck_report = StuckReport(self.hands, options.stuck_after, name)
        self.runner = LaneRunner(
            self.board,
            handler,
            policy,
            metrics=metrics,
            governor=self.governor,
            watch=self._watch,
            hands=self.hands,
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
        #: The thread that fetches now; replaced when a handler call hangs on it.
        self._fetcher: threading.Thread | None = None
        # Every fetch thread so far (a replaced one may still run a handler call).
        self._fetch_threads: list[threading.Thread] = []
        self._fetcher_numbers = itertools.count()
        # What a replaced fetch thread's stuck call holds, by its hand: settled when
        # the call returns.
        self._stuck: dict[int, tuple[Lane, Chunk, KafkaMessage]] = {}
        # Set when the last fetch thread finished shutting down; what it raised.
        self._finished = threading.Event()
        self._errors: list[BaseException] = []
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
        except BaseException:
            self._shutdown()
            raise
        self._start_fetcher()
        self._finished.wait()
        if self._errors:
            raise self._errors[0]
        if self._crash is not None:
            raise self._crash

    def _start_fetcher(self) -> None:
        """Start a fetch thread; from now on it is the one that fetches."""
        thread = threading.Thread(
            target=self._fetch_main,
            name=f"{self.name}-fetch-{next(self._fetcher_numbers)}",
            daemon=True,
        )
        # Replaced threads that left are forgotten: only live ones may run a handler.
        self._fetch_threads = [t for t in self._fetch_threads if t.is_alive()] + [thread]
        self._fetcher = thread
        thread.start()

    def _fetch_main(self) -> None:
        source = self._source
        assert source is not None
        try:
            self._fetch_loop(source)
        except Demoted as demoted:
            # Replaced while a call hung: the new fetch thread carries on.
            self._settle_stuck(demoted.error, demoted.resume)
            self.hands.forget_mine()
            return
        except BaseException as exc:
            self._errors.append(exc)
        try:
            self._shutdown()
        except BaseException as exc:
            self._errors.append(exc)
        finally:
            self._finished.set()

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
        return (
            thread is self._run_thread
            or thread in self._fetch_threads
            or self._executor.owns(thread)
        )

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
        messages whose runs are not finished yet, and those held back in memory.
        """
        # tuple() copies the dict in one C call: the fetch thread may assign or
        # revoke meanwhile, and iterating the live dict could see it change.
        progresses = tuple(self._progress.values())
        held = self._held
        states = []
        with self.board.lock:
            for progress in progresses:
                until, unfinished = progress.unhandled()
                if held is not None:
                    unfinished += held.kept_count((progress.topic, progress.partition))
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
        report = self.stuck_report
        next_report = time.monotonic() + report.interval
        governor = self.governor
        was_inline = False
        me = threading.current_thread()
        # A new fetch thread may take over from this one only while it handles in
        # this loop: not inside a rebalance callback, nor while shutting down.
        hand = self.hands.mine()
        while not self._stop.is_set():
            now = time.monotonic()
            if governor is not None and governor.tick(now):
                executor.schedule(())  # the limit changed: wake workers if it rose
            if now >= next_commit:
                self._commit(wait=False)
                next_commit = now + options.commit_interval
            if now >= next_report:
                if report.scan(now):
                    executor.schedule(())  # workers held by long calls no longer count
                next_report = now + report.interval
            if self._held:
                self._release_due(self._held, source)
            inline = executor.inline
            if was_inline and not inline:
                # The fetch thread stops running lanes (a probe begins; the limit may be
                # unchanged): workers must take the lanes it leaves ready.
                executor.schedule(())
            was_inline = inline
            if inline and executor.has_ready():
                hand.replaceable = True
                executor.run_inline(INLINE_BUDGET)
                hand.replaceable = False
                if self._fetcher is not me:
                    raise Demoted(None)
            in_flight = board.in_flight
            # With work waiting for this thread, only take what is already fetched.
            wait = 0.0 if inline and executor.has_ready() else FETCH_TIMEOUT
            if self._held:
                # Wake when the first held partition falls due, not up to a tick later.
                wait = max(0.0, min(wait, self._held.next_wake() - time.time()))
            if self._paused:
                if in_flight <= low_water:
                    held = self._held or ()
                    source.resume([key for key in self._progress if key not in held])
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

    def _take_over(self, hand: Hand) -> bool:
        """On the watchdog thread: a call has held the fetch thread too long; replace it.

        Only while the fetch thread handles in its loop (not in a rebalance callback,
        nor once stopping). A batch it handled without lanes is split where the call
        hangs: what it handled is recorded, the stuck message stays in flight on its
        lane until the call returns (see _settle_stuck), and the rest goes to the
        lanes. Returns whether a new fetch thread took over.
        """
        record = hand.record
        # Even once stopping: the new fetch thread then only shuts down, within its bound.
        if not hand.replaceable or record is None:
            return False
        if hand.batch is not None and not self._adopt_rest(hand, hand.batch, record):
            return False
        if self.governor is not None:
            self.governor.slowed()
        _log.warning(
            "%s: a handler call has held the fetch thread for %.0fs (at %s[%s]@%s): a new"
            " fetch thread takes over; that message's key waits for the call, others go on",
            self.name,
            STUCK_ON_FETCH_THREAD,
            record.topic(),
            record.partition(),
            record.offset(),
        )
        hand.replaceable = False
        self._start_fetcher()
        self._executor.schedule(())
        return True

    def _adopt_rest(self, hand: Hand, batch: list[KafkaMessage], stuck: KafkaMessage) -> bool:
        """Put a direct batch on the lanes, from the stuck record on (see _take_over)."""
        at = next((i for i, record in enumerate(batch) if record is stuck), None)
        topic, partition = stuck.topic() or "", stuck.partition() or 0
        progress = self._progress.get((topic, partition))
        offset = stuck.offset()
        if at is None or progress is None or offset is None:
            return False
        board = self.board
        lane = board.lanes[self._router.lane_of(stuck)]
        start = at
        while (
            start
            and batch[start - 1].partition() == partition
            and batch[start - 1].topic() == stuck.topic()
        ):
            start -= 1
        with board.lock:
            if lane.scheduled:
                return False  # cannot be, with nothing else in flight: leave it be
            if start < at:
                # Its run's records before it were handled, not yet recorded.
                earlier = batch[at - 1].offset()
                progress.handled_through(-1 if earlier is None else earlier)
            chunk = progress.add_chunk(offset, 1)
            chunk.remaining = 1
            # Its lane is held by the stuck call: later work waits behind it.
            lane.scheduled = True
            board.in_flight += 1
        self._stuck[id(hand)] = (lane, chunk, stuck)
        owned = self._progress
        rest = [r for r in batch[at + 1 :] if (r.topic() or "", r.partition() or 0) in owned]
        if rest:
            items = self._router.route(rest, self._progress_of)
            self._executor.schedule(board.post(items, len(rest)))
        return True

    def _settle_stuck(self, error: BaseException | None, resume: object = None) -> None:
        """On a replaced fetch thread, back from its stuck call: settle that message.

        ``resume``: the failure policy already ran on it (a retry series to continue).
        """
        taken = self._stuck.pop(id(self.hands.mine()), None)
        if taken is None:
            return  # it was running a lane: the lane was settled on the way out
        lane, chunk, record = taken
        board = self.board
        if resume is not None:
            self.runner.resume_later(record, resume)
            board.put_back(lane, [], 0, [(chunk, [record])])
            if self.governor is not None:
                self.governor.need_workers()
            self._executor.schedule([lane])
            return
        if error is None:
            board.finish(lane, [(chunk, [record])], 1, take_next=False)
            if lane.scheduled:
                self._executor.schedule([lane])
            return
        # Failed: a worker asks the failure policy and retries it, first on its lane.
        self.runner.retry_later(record, as_consume_error(record, error))
        board.put_back(lane, [], 0, [(chunk, [record])])
        if self.governor is not None:
            self.governor.need_workers()
        self._executor.schedule([lane])

    def _relieve(self, source: Source, capacity: int) -> None:
        """The buffer is full: wait a little for room, else pause fetching."""
        board, hand = self.board, self.hands.mine()
        hand.replaceable = True
        try:
            if self._wait_until(
                lambda: board.in_flight < capacity or self._stop.is_set(), PAUSE_AFTER
            ):
                return
        finally:
            hand.replaceable = False
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
            if self._fetcher is not threading.current_thread():
                raise Demoted(None)

    def _release_due(self, held: HeldPartitions, source: Source) -> None:
        """Resume held partitions that fell due, and dispatch the records kept for them.

        Resumed first: dispatching may run a handler on this thread, and should that
        call hang, a new fetch thread takes over and this one never comes back here.
        The kept records are then a fetched batch like any other (the next fetch
        comes after them). They may take in flight past ``capacity``, by at most one
        fetch per held partition: they are in memory already.
        """
        records, resume = held.wake(source)
        resume = [key for key in resume if key in self._progress]
        if resume and not self._paused:
            source.resume(resume)
        try:
            if records:
                self._dispatch_ready(records)
        finally:
            held.dispatched()

    def _dispatch(self, records: list[KafkaMessage]) -> None:
        if self._held is not None and records:
            assert self._source is not None
            records = self._held.hold(records, self._progress, self._source)
        self._dispatch_ready(records)

    def _dispatch_ready(self, records: list[KafkaMessage]) -> None:
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
            hand = self.hands.mine()
            hand.replaceable = True
            try:
                records = self.runner.run_direct(
                    records, self._progress.get, multi_topic=self.options.multi_topic
                )
            except Demoted:
                raise  # replaced: the new fetch thread owns the rest
            except BaseException as exc:
                # Nothing of the failed partition run was recorded as handled.
                self._on_processor_crash(None, exc)
                return
            finally:
                hand.replaceable = False
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
        with self._workers_only():
            drained = self._drain(leaving, timeout)
        self._commit(wait=True, only=leaving)
        for progress in leaving:
            progress.revoked = True
            del self._progress[(progress.topic, progress.partition)]
            if self._held is not None:
                self._held.forget((progress.topic, progress.partition))
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
            if self._held is not None:
                self._held.forget(key)
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

    @contextlib.contextmanager
    def _workers_only(self) -> Iterator[None]:
        """Drain on the worker threads (see Governor.draining)."""
        if self.governor is None:
            yield
            return
        with self.governor.draining():
            self._executor.schedule(())
            yield

    # -- shutdown -------------------------------------------------------------------

    def _shutdown(self) -> None:
        board, options = self.board, self.options
        self._shutdown_deadline = time.monotonic() + options.shutdown_timeout
        with self._workers_only():
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
