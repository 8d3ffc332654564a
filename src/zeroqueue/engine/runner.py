"""Run a lane's work item: call the handler on each message, in order, and report.

The sync and async runners share everything but the call and the pause: the
failure policy, the skip rules (revoked partition, aborted shutdown) and the
bookkeeping on the :class:`~zeroqueue.engine.lanes.WorkBoard`.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import NamedTuple

from confluent_kafka import Message as KafkaMessage

from zeroqueue.engine.governor import Governor
from zeroqueue.engine.handlers import (
    FailurePolicyLike,
    HandlerSpec,
    ObserveHook,
    as_consume_error,
    refuse_awaitable,
)
from zeroqueue.engine.hands import Hand, HandRegistry
from zeroqueue.engine.lanes import Lane, Segment, WorkBoard, WorkItem
from zeroqueue.engine.offsets import PartitionProgress
from zeroqueue.engine.watchdog import SlowHandlingWatch
from zeroqueue.message import Message

__all__ = ["Demoted", "LaneRunner"]

_log = logging.getLogger("zeroqueue.engine")

# Unbound C methods: groupby calls them without a Python frame per message.
_partition_of = KafkaMessage.partition
_topic_of = KafkaMessage.topic


class _RetryState(NamedTuple):
    """Where a retry series stands when the fetch thread hands it to a worker.

    ``attempts`` 0: the policy has not been asked yet (it may block: a move).
    """

    attempts: int
    delay: float
    error: BaseException


class _HandOffSignal(Exception):  # noqa: N818 - a control-flow signal, not an error
    """Raised on the fetch thread to leave ``record`` and what follows to the workers.

    With a ``state``, the record failed and its retry series continues on a worker;
    without, the handler turned slow (the watchdog tripped) and ``record`` is next.
    """

    def __init__(self, record: KafkaMessage, state: _RetryState | None) -> None:
        self.record = record
        self.state = state


class Demoted(Exception):  # noqa: N818 - a control-flow signal, not an error
    """Raised on a fetch thread that a new one replaced while its handler was stuck.

    The thread must leave at once, touching nothing the fetch thread owns. The
    record it was stuck on (its hand's) was handled when ``error`` is None, and
    failed with ``error`` otherwise: the engine settles it (see ConnEngine).
    """

    def __init__(self, error: BaseException | None, resume: _RetryState | None = None) -> None:
        self.error = error
        #: Set when the failure policy already decided on the record: its retry series.
        self.resume = resume


class _PausedClock(threading.local):
    """Per thread: seconds spent in retry pauses so far."""

    seconds = 0.0


class _GaveUp(Exception):  # noqa: N818 - a marker, never raised
    """What a retry returns when it left its message unhandled (stopping, revoked)."""


_GAVE_UP = _GaveUp()


def _reraise_own_cancellation(error: BaseException) -> None:
    """Re-raise a CancelledError aimed at our task; a handler's leaked one is its failure.

    A GeneratorExit is the event loop closing this task's coroutine: never a failure.
    """
    if isinstance(error, GeneratorExit):
        raise error
    if isinstance(error, asyncio.CancelledError):
        task = asyncio.current_task()
        cancelling = getattr(task, "cancelling", None)  # Python 3.11+
        if cancelling is not None and cancelling():
            raise error


def _position(record: KafkaMessage) -> tuple[str, int, int]:
    offset = record.offset()
    return record.topic() or "", record.partition() or 0, -1 if offset is None else offset


class LaneRunner:
    """Handles the messages of one work item at a time, for one lane."""

    def __init__(
        self,
        board: WorkBoard,
        handler: HandlerSpec,
        policy: FailurePolicyLike,
        *,
        metrics: ObserveHook | None = None,
        governor: Governor | None = None,
        watch: SlowHandlingWatch | None = None,
        hands: HandRegistry | None = None,
    ) -> None:
        self.board = board
        #: What each processor holds, for the stuck-message report.
        self.hands = hands if hands is not None else HandRegistry()
        self.handler = handler
        self.policy = policy
        self.metrics = metrics
        self.governor = governor
        #: Times what the fetch thread handles itself (given with a governor).
        self.watch = watch
        #: Set when shutdown ran out of time: stop between messages, stop retrying.
        self.aborting = False
        self._abort = threading.Event()
        #: Set when the engine stops: a message waiting for its next retry gives up
        #: (uncommitted, so it is delivered again) instead of holding up shutdown.
        self.stopping = False
        self._stop = threading.Event()
        #: Processors waiting out a retry pause: they hold no CPU, so they do not count
        #: against the governor's limit (else one message retried for ever on the one
        #: processor allowed would hold up every other key).
        self.pausing = 0
        self._pausing_lock = threading.Lock()
        #: Called when a processor begins a retry pause (the executor wakes another).
        self.on_pause: Callable[[], None] | None = None
        # Seconds this thread spent in retry pauses: not handling, for the governor.
        self._paused = _PausedClock()
        # Retries the fetch thread handed over, by (topic, partition, offset). The
        # worker that gets the message continues the series; see _run_segment.
        self._resume: dict[tuple[str, int, int], _RetryState] = {}
        # The (key: str, value: str) sync handler without metrics is the hot path.
        self._fast = (
            handler.func
            if not (handler.is_async or handler.takes_message or metrics is not None)
            else None
        )

    def abort(self) -> None:
        """Stop handling: current messages finish, the rest are left uncommitted."""
        self.aborting = True
        self._abort.set()
        self.stop()

    def stop(self) -> None:
        """The engine is stopping: end retry pauses now, leaving those messages uncommitted."""
        self.stopping = True
        self._stop.set()

    # -- sync, on the fetch thread without lanes ---------------------------------------

    def run_direct(
        self,
        records: list[KafkaMessage],
        progress_of: Callable[[tuple[str, int]], PartitionProgress | None],
        *,
        multi_topic: bool,
    ) -> list[KafkaMessage]:
        """Handle a fetched batch on the calling thread, in fetch order, without lanes.

        Only for the fetch thread, and only while no other message is in flight:
        then fetch order is offset order for every partition and key, so no lane
        is needed to keep it. Rebalance callbacks and shutdown also run on the
        fetch thread, so no partition is revoked and nothing aborted until this
        returns. Each partition run is recorded as handled when it is. Records
        of a partition that ``progress_of((topic, partition))`` does not know
        are skipped.

        Returns the records still to handle, in fetch order: empty, unless a
        message failed and needs retries. Then the failed message comes first,
        marked so that the worker that gets it continues its retry series (see
        :meth:`_run_segment`).
        """
        governor, watch = self.governor, self.watch
        assert governor is not None  # only a governed executor runs on the fetch thread
        assert watch is not None
        rest: list[KafkaMessage] = []
        hand_off: _HandOffSignal | None = None
        hand = self.hands.mine()
        hand.batch = records
        stretch = watch.begin(hand)
        try:
            if multi_topic:
                for partition, same_partition in itertools.groupby(records, _partition_of):
                    for topic, run in itertools.groupby(same_partition, _topic_of):
                        progress = progress_of((topic or "", partition or 0))
                        self._handle_partition_run(run, progress, hand, stretch)
            else:
                topic = records[0].topic() or ""
                for partition, run in itertools.groupby(records, _partition_of):
                    progress = progress_of((topic, partition or 0))
                    self._handle_partition_run(run, progress, hand, stretch)
        except _HandOffSignal as signal:
            if hand.tripped and not watch.claim(stretch):
                # Taken over while the failure policy ran (an error_handler that hangs):
                # the new fetch thread owns the rest; the record continues its series.
                raise Demoted(None, signal.state) from None
            hand_off = signal
            rest = self._hand_off_rest(records, signal, progress_of)
        finally:
            tripped = hand.tripped
            hand.record = hand.batch = None
            watch.end(stretch)
        if hand_off is not None:
            self._leave_fetch_thread(hand_off)
        elif tripped:
            # The slow call was the batch's last: nothing to hand over, but the next
            # batches go to the workers, as after any slow call.
            self._leave_fetch_thread(_HandOffSignal(records[-1], None))
        return rest

    def _handle_partition_run(
        self,
        run: Iterable[KafkaMessage],
        progress: PartitionProgress | None,
        hand: Hand,
        stretch: int,
    ) -> None:
        """Handle one partition's run; raise _HandOffSignal where workers must take over.

        Raises Demoted when a new fetch thread took over while a call was stuck.
        """
        if progress is None:
            return  # revoked while this batch was fetched: not ours to handle
        handler = self._fast
        if handler is None:
            records = list(run)
            if not self._run_each(records, progress, hand, True, stretch, direct=True):
                return
            last = records[-1].offset()
        else:
            # _run_fast without its per-message revoke and abort checks: on the fetch
            # thread, neither can happen before this returns. An attribute read and a
            # store per message are the watchdog's and the stuck report's cost.
            for record in run:
                if hand.tripped:
                    self._keep_stretch(stretch)
                    raise _HandOffSignal(record, None)
                hand.record = record
                key, value = record.key(), record.value()
                try:
                    result = handler(
                        "" if key is None else key.decode(),
                        "" if value is None else value.decode(),
                    )
                except BaseException as exc:
                    if hand.tripped:
                        self._keep_stretch(stretch, exc)
                    self._failed(record, as_consume_error(record, exc), progress, inline=True)
                    continue
                if result is not None:
                    refuse_awaitable(result, self.handler)  # a bug: stops the queue
            last = record.offset()
        if hand.tripped:
            self._keep_stretch(stretch)
        progress.handled_through(-1 if last is None else last)

    def _keep_stretch(self, stretch: int, error: BaseException | None = None) -> None:
        """A tripped fetch thread, back from its call: raise Demoted if it was replaced."""
        watch = self.watch
        assert watch is not None
        if not watch.claim(stretch):
            raise Demoted(error)

    def _hand_off_rest(
        self,
        records: list[KafkaMessage],
        hand_off: _HandOffSignal,
        progress_of: Callable[[tuple[str, int]], PartitionProgress | None],
    ) -> list[KafkaMessage]:
        """Record the failed message's handled predecessors; return it and what follows."""
        failed = hand_off.record
        at = next(i for i, record in enumerate(records) if record is failed)
        if at:
            previous = records[at - 1]
            same_run = (
                previous.partition() == failed.partition() and previous.topic() == failed.topic()
            )
            progress = progress_of((failed.topic() or "", failed.partition() or 0))
            last = previous.offset()
            if same_run and progress is not None and last is not None:
                progress.handled_through(last)
        if hand_off.state is not None:
            self._resume[_position(failed)] = hand_off.state
        return records[at:]

    def _leave_fetch_thread(self, hand_off: _HandOffSignal) -> None:
        """Send the handler to the worker threads: for a retry series, or because it slowed."""
        governor = self.governor
        assert governor is not None
        if hand_off.state is not None:
            governor.need_workers()
        else:
            _log.info(
                "the handler ran longer than %.2gs on the fetch thread (at %s[%s]@%s):"
                " it runs on worker threads again",
                self.watch.limit if self.watch is not None else 0.0,
                hand_off.record.topic(),
                hand_off.record.partition(),
                hand_off.record.offset(),
            )
            governor.slowed()

    def retry_later(self, record: KafkaMessage, error: BaseException) -> None:
        """``record`` failed where no retry could run: the worker that gets it retries it."""
        self._resume[_position(record)] = _RetryState(0, 0.0, error)

    def resume_later(self, record: KafkaMessage, state: object) -> None:
        """Continue ``record``'s retry series (a Demoted's ``resume``) on its next worker."""
        assert isinstance(state, _RetryState)
        self._resume[_position(record)] = state

    # -- sync -----------------------------------------------------------------------

    def run(self, lane: Lane, until: float | None = None) -> bool:
        """Handle the lane's work items until it has none left.

        With ``until`` (a ``time.perf_counter()`` deadline) it runs on the fetch
        thread: it stops after the work item that passes it, or where the handler
        turns slow; returns True when the lane still has work (it stays scheduled
        and must be queued again).
        """
        board, governor, watch = self.board, self.governor, self.watch
        inline = until is not None
        hand = self.hands.mine()
        stretch = 0
        if inline:
            assert watch is not None
            stretch = watch.begin(hand)
        item = board.take(lane)
        try:
            while item is not None:
                done: list[Segment] = []
                settled = 0
                # Timed per work item, not per segment: a segment may hold one or two
                # messages, and reading the thread's clocks costs a few us.
                mark = governor.mark() if governor is not None and governor.probing else None
                paused_before = self._paused.seconds
                for position, segment in enumerate(item):
                    chunk, records = segment
                    settled += len(records)
                    progress = chunk.progress
                    if lane.given_up or self.aborting or progress.revoked:
                        if self._resume:
                            self._resume.pop(_position(records[0]), None)
                        continue
                    try:
                        complete = self._run_segment(records, progress, hand, inline)
                    except _HandOffSignal as hand_off:
                        # Leave this message and what follows it to a worker thread.
                        start = next(i for i, r in enumerate(records) if r is hand_off.record)
                        settled -= len(records) - start
                        rest = [(chunk, records[start:]), *item[position + 1 :]]
                        if hand_off.state is not None:
                            self._resume[_position(hand_off.record)] = hand_off.state
                        board.put_back(lane, done, settled, rest)
                        if governor is not None and mark is not None:
                            idle = self._paused.seconds - paused_before
                            governor.record_since(mark, settled, idle=idle)
                        self._leave_fetch_thread(hand_off)
                        return True
                    if complete:
                        done.append(segment)
                    elif not progress.revoked:
                        lane.given_up = True
                if mark is not None:
                    assert governor is not None
                    idle = self._paused.seconds - paused_before
                    governor.record_since(mark, settled, idle=idle)
                if until is not None and time.perf_counter() >= until:
                    board.finish(lane, done, settled, take_next=False)
                    return lane.scheduled
                item = board.finish(lane, done, settled)
            return False
        except BaseException:
            # Whatever escaped (a bug, not a handler error: those are caught) left
            # this work item unfinished: take it out of flight uncounted, so its
            # partitions do not commit past it and nobody waits for it.
            board.abandon(lane, item)
            raise
        finally:
            hand.record = None
            if inline:
                assert watch is not None
                # Settle with a takeover under way (it sets the engine's fetcher first):
                # the fetch loop then sees it was replaced. One lock per lane run.
                watch.claim(stretch)
                watch.end(stretch)

    def _run_segment(
        self,
        records: Sequence[KafkaMessage],
        progress: PartitionProgress,
        hand: Hand,
        inline: bool = False,
    ) -> bool:
        if self._resume:
            resume = self._resume.pop(_position(records[0]), None)
            if resume is not None:
                # A retry series the fetch thread started: continue it here.
                if inline:
                    # The fetch thread got the lane back before a worker took it:
                    # hand it over again, pause and attempt count unchanged.
                    raise _HandOffSignal(records[0], resume)
                started = time.perf_counter()
                hand.record = records[0]
                outcome = self._recover(
                    records[0],
                    progress,
                    attempt=resume.attempts,
                    delay=resume.delay,
                    error=resume.error,
                )
                if outcome is _GAVE_UP:
                    return False
                self._observe(records[0], started, outcome)
                records = records[1:]
        if self._fast is not None:
            return self._run_fast(records, progress, hand, inline)
        return self._run_each(records, progress, hand, inline)

    def _run_fast(
        self,
        records: Sequence[KafkaMessage],
        progress: PartitionProgress,
        hand: Hand,
        inline: bool = False,
    ) -> bool:
        handler = self._fast
        assert handler is not None
        for record in records:
            if self.aborting or progress.revoked:
                return False
            if hand.tripped:
                raise _HandOffSignal(record, None)
            hand.record = record
            key, value = record.key(), record.value()
            try:
                result = handler(
                    "" if key is None else key.decode(), "" if value is None else value.decode()
                )
            except BaseException as exc:
                error = self._failed(record, as_consume_error(record, exc), progress, inline)
                if error is _GAVE_UP:
                    return False
                continue
            if result is not None:
                refuse_awaitable(result, self.handler)  # a bug: stops the queue
        return True

    def _run_each(
        self,
        records: Sequence[KafkaMessage],
        progress: PartitionProgress,
        hand: Hand,
        inline: bool = False,
        stretch: int = 0,
        *,
        direct: bool = False,
    ) -> bool:
        """Handle records one by one; ``direct`` when run_direct's stretch runs it."""
        for record in records:
            if self.aborting or progress.revoked:
                return False
            if hand.tripped:
                if direct:
                    self._keep_stretch(stretch)
                raise _HandOffSignal(record, None)
            hand.record = record
            started = time.perf_counter()
            outcome: BaseException | None = None
            result = None
            try:
                result = self.handler.call(record)
            except BaseException as exc:
                if direct and hand.tripped:
                    self._keep_stretch(stretch, exc)
                outcome = self._failed(record, as_consume_error(record, exc), progress, inline)
                if outcome is _GAVE_UP:
                    return False
            if result is not None:
                refuse_awaitable(result, self.handler)  # a bug: stops the queue
            self._observe(record, started, outcome)
        return True

    def _failed(
        self, record: KafkaMessage, error: BaseException, progress: PartitionProgress, inline: bool
    ) -> BaseException | None:
        """Report a failed first attempt and retry per the policy.

        Returns the error the message is counted handled with (None once a retry
        succeeded), or ``_GAVE_UP`` when it was left unhandled (stopping, revoked).
        """
        if inline and (self._policy_may_block or self.hands.mine().tripped):
            # A move waits for a broker: never on the fetch thread (polls, commits,
            # rebalances and stop() would wait with it). Nor a policy after a call that
            # ran long: its stretch is claimed, so an error_handler that hangs could
            # no longer be taken over.
            raise _HandOffSignal(record, _RetryState(0, 0.0, error))
        delay = self._decide(record, error, 1)
        if delay is not None and inline:
            raise _HandOffSignal(record, _RetryState(1, delay, error))
        return self._recover(record, progress, attempt=1, delay=delay, error=error)

    def _recover(
        self,
        record: KafkaMessage,
        progress: PartitionProgress,
        *,
        attempt: int,
        delay: float | None,
        error: BaseException,
    ) -> BaseException | None:
        """Retry after ``delay`` (None: give up, counted as handled) until it succeeds.

        Returns what :meth:`_failed` returns.
        """
        if attempt == 0:
            attempt, delay = 1, self._decide(record, error, 1)
        while delay is not None:
            if self._pause(delay) or progress.revoked:
                return _GAVE_UP
            try:
                result = self.handler.call(record, attempt + 1)
            except BaseException as exc:
                attempt += 1
                error = as_consume_error(record, exc)
                delay = self._decide(record, error, attempt)
                continue
            if result is not None:
                refuse_awaitable(result, self.handler)  # a bug: stops the queue
            return None
        return error

    @property
    def _policy_may_block(self) -> bool:
        """Whether the failure policy may wait on the network (moves to other topics)."""
        return bool(getattr(self.policy, "may_block", False))

    def _decide(self, record: KafkaMessage, error: BaseException, attempt: int) -> float | None:
        """Ask the policy; a policy that may block waits off the governor's count."""
        message = Message.from_kafka(record, attempt)
        if not self._policy_may_block:
            return self.policy.failed(message, error, attempt)
        with self._waiting():
            return self.policy.failed(message, error, attempt)

    def _pause(self, delay: float) -> bool:
        """Wait ``delay`` before a retry, off the governor's count; True if stopping meanwhile."""
        with self._waiting():
            return self._stop.wait(delay)

    @contextlib.contextmanager
    def _waiting(self) -> Iterator[None]:
        """Count this processor as waiting (not handling): the governor wakes another."""
        hand = self.hands.mine()
        with self._pausing_lock:
            self.pausing += 1
            hand.pausing = True
        started = time.perf_counter()
        try:
            if self.on_pause is not None:
                self.on_pause()
            yield
        finally:
            self._paused.seconds += time.perf_counter() - started
            with self._pausing_lock:
                self.pausing -= 1
                hand.pausing = False

    def _observe(self, record: KafkaMessage, started: float, error: BaseException | None) -> None:
        if self.metrics is not None:
            elapsed = time.perf_counter() - started
            topic, partition = record.topic() or "", record.partition() or 0
            try:
                self.metrics(topic, partition, elapsed, error)
            except Exception:
                # The message was handled: a broken metrics hook must not hold up
                # its lane or stop the queue, only say so.
                _log.exception("metrics raised on %s[%d]@%s", topic, partition, record.offset())

    # -- async ----------------------------------------------------------------------

    async def run_async(self, lane: Lane) -> None:
        """The async twin of :meth:`run`, for ``async def`` handlers."""
        board = self.board
        item: WorkItem | None = board.take(lane)
        # A hand per run: the tasks share one thread, so a thread's hand would not do.
        hand = self.hands.add(Hand())
        try:
            while item is not None:
                done: list[Segment] = []
                settled = 0
                for segment in item:
                    chunk, records = segment
                    settled += len(records)
                    progress = chunk.progress
                    if lane.given_up or self.aborting or progress.revoked:
                        continue  # as in run()
                    if await self._run_segment_async(records, progress, hand):
                        done.append(segment)
                    elif not progress.revoked:
                        lane.given_up = True
                item = board.finish(lane, done, settled)
        except BaseException:
            board.abandon(lane, item)  # as in run()
            raise
        finally:
            self.hands.remove(hand)

    async def _run_segment_async(
        self, records: Sequence[KafkaMessage], progress: PartitionProgress, hand: Hand
    ) -> bool:
        """A segment at once through the handler's ``handle_run``, if it has one."""
        handle_run = self.handler.handle_run
        if handle_run is None or self.aborting or progress.revoked:
            return await self._run_each_async(records, progress, hand)
        hand.record = records[0]
        started = time.perf_counter()
        try:
            left = await handle_run([Message.from_kafka(record) for record in records])
        except BaseException as exc:
            _reraise_own_cancellation(exc)
            _log.warning("handle_run raised %r: its messages go one by one", exc, exc_info=exc)
            left = 0
        if left is None:
            done = len(records)
        elif type(left) is int and 0 <= left <= len(records):
            done = left
        else:
            # Not an index into the run: believe none of it (again, never lost).
            _log.error(
                "handle_run returned %r for a run of %d: its messages go one by one",
                left,
                len(records),
            )
            done = 0
        for record in records[:done]:
            self._observe(record, started, None)
        if done == len(records):
            return True
        return await self._run_each_async(records[done:], progress, hand)

    async def _run_each_async(
        self, records: Sequence[KafkaMessage], progress: PartitionProgress, hand: Hand
    ) -> bool:
        for record in records:
            if self.aborting or progress.revoked:
                return False
            hand.record = record
            started = time.perf_counter()
            outcome: BaseException | None = None
            try:
                await self.handler.call(record)
            except BaseException as exc:
                _reraise_own_cancellation(exc)
                outcome = await self._recover_async(record, as_consume_error(record, exc), progress)
                if outcome is _GAVE_UP:
                    return False
            self._observe(record, started, outcome)
        return True

    async def _recover_async(
        self, record: KafkaMessage, error: BaseException, progress: PartitionProgress
    ) -> BaseException | None:
        attempt = 1
        # A policy that moves messages awaits the broker without blocking the loop.
        failed_async = getattr(self.policy, "failed_async", None)
        while True:
            message = Message.from_kafka(record, attempt)
            if failed_async is not None:
                delay = await failed_async(message, error, attempt)
            else:
                delay = self.policy.failed(message, error, attempt)
            if delay is None:
                return error
            await self._pause_async(delay)
            if self.stopping or progress.revoked:
                return _GAVE_UP
            try:
                await self.handler.call(record, attempt + 1)
                return None
            except BaseException as exc:
                _reraise_own_cancellation(exc)
                error = as_consume_error(record, exc)
                attempt += 1

    async def _pause_async(self, delay: float) -> None:
        # Sleep in short steps so an abort is noticed without a cross-thread event.
        deadline = time.monotonic() + delay
        while not self.stopping:
            left = deadline - time.monotonic()
            if left <= 0:
                return
            await asyncio.sleep(min(left, 0.05))
