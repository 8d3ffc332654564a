"""Run a lane's work item: call the handler on each message, in order, and report.

The sync and async runners share everything but the call and the pause: the
failure policy, the skip rules (revoked partition, aborted shutdown) and the
bookkeeping on the :class:`~zeroqueue.engine.lanes.WorkBoard`.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from typing import NamedTuple

from confluent_kafka import Message as KafkaMessage

from zeroqueue.engine.governor import Governor
from zeroqueue.engine.handlers import FailurePolicy, HandlerSpec, MetricsHook, as_consume_error
from zeroqueue.engine.lanes import Lane, Segment, WorkBoard, WorkItem
from zeroqueue.engine.offsets import PartitionProgress

__all__ = ["LaneRunner"]

_log = logging.getLogger("zeroqueue.kq.queue")

# Unbound C methods: groupby calls them without a Python frame per message.
_partition_of = KafkaMessage.partition
_topic_of = KafkaMessage.topic


class _RetryState(NamedTuple):
    """Where a retry series stands when the fetch thread hands it to a worker."""

    attempts: int
    delay: float
    error: BaseException


class _HandOffSignal(Exception):  # noqa: N818 - a control-flow signal, not an error
    """Raised on the fetch thread when a message needs retries: workers take over there."""

    def __init__(self, record: KafkaMessage, state: _RetryState) -> None:
        self.record = record
        self.state = state


def _position(record: KafkaMessage) -> tuple[str, int, int]:
    offset = record.offset()
    return record.topic() or "", record.partition() or 0, -1 if offset is None else offset


class LaneRunner:
    """Handles the messages of one work item at a time, for one lane."""

    def __init__(
        self,
        board: WorkBoard,
        handler: HandlerSpec,
        policy: FailurePolicy,
        metrics: MetricsHook | None = None,
        governor: Governor | None = None,
    ) -> None:
        self.board = board
        self.handler = handler
        self.policy = policy
        self.metrics = metrics
        self.governor = governor
        #: Set when shutdown ran out of time: stop between messages, stop retrying.
        self.aborting = False
        self._abort = threading.Event()
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
        governor = self.governor
        mark = governor.mark() if governor is not None and governor.probing else None
        rest: list[KafkaMessage] = []
        try:
            if multi_topic:
                for partition, same_partition in itertools.groupby(records, _partition_of):
                    for topic, run in itertools.groupby(same_partition, _topic_of):
                        self._handle_partition_run(run, progress_of((topic or "", partition or 0)))
            else:
                topic = records[0].topic() or ""
                for partition, run in itertools.groupby(records, _partition_of):
                    self._handle_partition_run(run, progress_of((topic, partition or 0)))
        except _HandOffSignal as hand_off:
            rest = self._hand_off_rest(records, hand_off, progress_of)
        if mark is not None:
            assert governor is not None
            governor.record_since(mark, len(records) - len(rest))
        if rest:
            assert governor is not None  # only a governed executor runs inline
            governor.need_workers()
        return rest

    def _handle_partition_run(
        self, run: Iterable[KafkaMessage], progress: PartitionProgress | None
    ) -> None:
        """Handle one partition's run; raise _HandOffSignal at a message needing retries."""
        if progress is None:
            return  # revoked while this batch was fetched: not ours to handle
        handler = self._fast
        if handler is None:
            records = list(run)
            if not self._run_each(records, progress, inline=True):
                return
            last = records[-1].offset()
        else:
            # _run_fast without its per-message revoke and abort checks: on the fetch
            # thread, neither can happen before this returns.
            for record in run:
                key, value = record.key(), record.value()
                try:
                    handler(
                        "" if key is None else key.decode(),
                        "" if value is None else value.decode(),
                    )
                except Exception as exc:
                    self._failed(record, as_consume_error(record, exc), progress, inline=True)
            last = record.offset()
        progress.handled_through(-1 if last is None else last)

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
        self._resume[_position(failed)] = hand_off.state
        return records[at:]

    # -- sync -----------------------------------------------------------------------

    def run(self, lane: Lane, until: float | None = None) -> bool:
        """Handle the lane's work items until it has none left.

        With ``until`` (a ``time.perf_counter()`` deadline) it stops after the work
        item that passes it; returns True when the lane still has work (it stays
        scheduled and must be queued again).
        """
        board, governor = self.board, self.governor
        inline = until is not None
        item = board.take(lane)
        try:
            while item is not None:
                done: list[Segment] = []
                settled = 0
                # Timed per work item, not per segment: a segment may hold one or two
                # messages, and reading the thread's clocks costs a few us.
                mark = governor.mark() if governor is not None and governor.probing else None
                for position, segment in enumerate(item):
                    chunk, records = segment
                    settled += len(records)
                    progress = chunk.progress
                    if self.aborting or progress.revoked:
                        if self._resume:
                            self._resume.pop(_position(records[0]), None)
                        continue
                    try:
                        complete = self._run_segment(records, progress, inline)
                    except _HandOffSignal as hand_off:
                        # Leave the failed message and what follows it to a worker thread.
                        start = next(i for i, r in enumerate(records) if r is hand_off.record)
                        settled -= len(records) - start
                        rest = [(chunk, records[start:]), *item[position + 1 :]]
                        self._resume[_position(hand_off.record)] = hand_off.state
                        board.put_back(lane, done, settled, rest)
                        if governor is not None:
                            if mark is not None:
                                governor.record_since(mark, settled)
                            governor.need_workers()
                        return True
                    if complete:
                        done.append(segment)
                if mark is not None:
                    assert governor is not None
                    governor.record_since(mark, settled)
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

    def _run_segment(
        self, records: Sequence[KafkaMessage], progress: PartitionProgress, inline: bool
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
                if not self._recover(
                    records[0], progress, attempt=resume.attempts, delay=resume.delay
                ):
                    return False
                self._observe(records[0], started, resume.error)
                records = records[1:]
        if self._fast is not None:
            return self._run_fast(records, progress, inline)
        return self._run_each(records, progress, inline)

    def _run_fast(
        self, records: Sequence[KafkaMessage], progress: PartitionProgress, inline: bool = False
    ) -> bool:
        handler = self._fast
        assert handler is not None
        for record in records:
            if self.aborting or progress.revoked:
                return False
            key, value = record.key(), record.value()
            try:
                handler(
                    "" if key is None else key.decode(), "" if value is None else value.decode()
                )
            except Exception as exc:
                if not self._failed(record, as_consume_error(record, exc), progress, inline):
                    return False
        return True

    def _run_each(
        self, records: Sequence[KafkaMessage], progress: PartitionProgress, inline: bool = False
    ) -> bool:
        for record in records:
            if self.aborting or progress.revoked:
                return False
            started = time.perf_counter()
            error: BaseException | None = None
            try:
                self.handler.call(record)
            except Exception as exc:
                error = as_consume_error(record, exc)
                if not self._failed(record, error, progress, inline):
                    return False
            self._observe(record, started, error)
        return True

    def _failed(
        self, record: KafkaMessage, error: BaseException, progress: PartitionProgress, inline: bool
    ) -> bool:
        """Report a failed first attempt; retry per the policy. True once it counts as handled."""
        delay = self.policy.failed(record, error, 1)
        if delay is not None and inline:
            raise _HandOffSignal(record, _RetryState(1, delay, error))
        return self._recover(record, progress, attempt=1, delay=delay)

    def _recover(
        self,
        record: KafkaMessage,
        progress: PartitionProgress,
        *,
        attempt: int,
        delay: float | None,
    ) -> bool:
        """Retry after ``delay`` (None: give up, counted as handled) until it succeeds."""
        while delay is not None:
            if self._abort.wait(delay) or progress.revoked:
                return False
            try:
                self.handler.call(record)
                return True
            except Exception as exc:
                attempt += 1
                delay = self.policy.failed(record, as_consume_error(record, exc), attempt)
        return True

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
        try:
            while item is not None:
                done: list[Segment] = []
                settled = 0
                for segment in item:
                    chunk, records = segment
                    settled += len(records)
                    progress = chunk.progress
                    if self.aborting or progress.revoked:
                        continue
                    if await self._run_each_async(records, progress):
                        done.append(segment)
                item = board.finish(lane, done, settled)
        except BaseException:
            board.abandon(lane, item)  # as in run()
            raise

    async def _run_each_async(
        self, records: Sequence[KafkaMessage], progress: PartitionProgress
    ) -> bool:
        for record in records:
            if self.aborting or progress.revoked:
                return False
            started = time.perf_counter()
            error: BaseException | None = None
            try:
                await self.handler.call(record)
            except Exception as exc:
                error = as_consume_error(record, exc)
                if not await self._recover_async(record, error, progress):
                    return False
            self._observe(record, started, error)
        return True

    async def _recover_async(
        self, record: KafkaMessage, error: BaseException, progress: PartitionProgress
    ) -> bool:
        attempt = 1
        while True:
            delay = self.policy.failed(record, error, attempt)
            if delay is None:
                return True
            await self._pause(delay)
            if self.aborting or progress.revoked:
                return False
            try:
                await self.handler.call(record)
                return True
            except Exception as exc:
                error = as_consume_error(record, exc)
                attempt += 1

    async def _pause(self, delay: float) -> None:
        # Sleep in short steps so an abort is noticed without a cross-thread event.
        deadline = time.monotonic() + delay
        while not self.aborting:
            left = deadline - time.monotonic()
            if left <= 0:
                return
            await asyncio.sleep(min(left, 0.05))
