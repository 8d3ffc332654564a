"""What a consumer does with one reserved copy: the delay queue's logic, no sockets.

The order of steps is what makes "once, and never lost" hold:

1. a body not in go-queue's format is buried (and listed), never dropped;
2. the ledger decides: a copy of a job handled, revoked or buried elsewhere is
   deleted; one another consumer holds is released until its lease ends; Redis
   down releases it for a little while (nothing is handled without the ledger);
3. a claimed job that beanstalkd made ready early (it counts whole seconds)
   waits out the rest on this thread, so it never runs before it is due;
4. handled: the ledger records it done *before* the copy is deleted, so a crash
   in between leaves a copy that the next consumer deletes, not re-handles;
5. failed: the ledger counts it, then the copy is released with a backoff, or
   buried (and listed with the error) once it failed ``max_failures`` times.
"""

from __future__ import annotations

import logging
import math
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field

from zeroqueue.dq._beanstalk import BeanstalkConnection, Reserved
from zeroqueue.dq._job import Job
from zeroqueue.dq._ledger import Ledger
from zeroqueue.dq._wire import CopyId, dedup_key, unwrap
from zeroqueue.errors import DelayQueueError

__all__ = ["HandlingOptions", "InFlight", "JobHandling"]

_log = logging.getLogger("zeroqueue.dq")

# How long a copy waits when Redis cannot say whether it was handled.
_LEDGER_DOWN_DELAY = 2
# Seconds a copy waits while another copy is being handled, before it looks again.
_BUSY_RECHECK = 2
# beanstalkd makes a job ready up to a second early (it counts whole seconds); a
# consumer waits that out, but hands back a job that comes much earlier.
_LONGEST_WAIT = 2.0
# beanstalkd keeps the priority of a job it releases or buries as given.
_PRIORITY = 2


@dataclass(frozen=True)
class HandlingOptions:
    """The consumer's knobs one job's handling needs."""

    max_failures: int
    retry_delay: float
    max_retry_delay: float
    lease: float
    window: float


@dataclass
class InFlight:
    """A claimed job whose handler runs: what the keeper renews."""

    connection: BeanstalkConnection
    job_id: int
    key: str
    token: str
    failures: int
    renewed: float = field(default_factory=time.monotonic)


class JobHandling:
    """One worker's handling of the copies its connection reserves."""

    def __init__(
        self,
        connection: BeanstalkConnection,
        ledger: Ledger,
        handle: Callable[[Job], None],
        options: HandlingOptions,
        *,
        stopping: threading.Event,
        on_failure: Callable[[Job, BaseException, str], None],
    ) -> None:
        self.connection = connection
        self.ledger = ledger
        self.handle = handle
        self.options = options
        self.stopping = stopping
        self.on_failure = on_failure
        #: The job whose handler runs (by job id): what the keeper renews.
        self.in_flight: dict[int, InFlight] = {}

    def __call__(self, reserved: Reserved) -> None:
        """Decide what becomes of one reserved copy; handle it if it is this copy's turn."""
        connection, ledger, options = self.connection, self.ledger, self.options
        copy = CopyId(connection.node.endpoint, connection.node.tube, reserved.job_id)
        parsed = unwrap(reserved.body)
        if parsed is None:
            reason = (
                "the body does not start with '<due time in Unix nanoseconds>/' (go-queue's dq)"
            )
            _log.error("buried %s: %s; body %r", copy, reason, reserved.body[:100])
            connection.bury(copy.job_id, priority=_PRIORITY)
            self._record_buried(copy, reason, 0, None)
            return
        due_ns, payload = parsed
        due = due_ns / 1e9
        key = dedup_key(reserved.body)
        token = uuid.uuid4().hex
        try:
            claim = ledger.claim(key, token, copy, options.lease)
        except DelayQueueError as exc:
            _log.error(
                "%s waits %ds: cannot tell whether it was handled: %s",
                copy,
                _LEDGER_DOWN_DELAY,
                exc,
            )
            connection.release(copy.job_id, priority=_PRIORITY, delay=_LEDGER_DOWN_DELAY)
            return
        if claim.verdict == "busy":
            # Another consumer handles a copy; most handlers are quick, so look again
            # soon (and at the latest when its lease would have run out).
            delay = min(math.ceil(claim.retry_after) + 1, _BUSY_RECHECK)
            connection.release(copy.job_id, priority=_PRIORITY, delay=delay)
            return
        if claim.verdict != "claimed":
            _log.debug("%s: deleted (job %s elsewhere)", copy, claim.verdict)
            connection.delete(copy.job_id)
            return
        early = due - time.time()
        if early > _LONGEST_WAIT:
            # Ready much too early: the producer's clock runs ahead of this one.
            self._hand_back(copy, key, token, due)
            return
        self.in_flight[copy.job_id] = InFlight(connection, copy.job_id, key, token, claim.failures)
        try:
            if early > 0 and self.stopping.wait(early):
                # Stopping before it is due: hand it back as it was.
                self._hand_back(copy, key, token, due)
                return
            job = Job(str(copy), payload, due, claim.failures)
            try:
                self.handle(job)
            except BaseException as exc:
                # Whatever it raises (SystemExit, KeyboardInterrupt too): this is a
                # worker thread, and one that died would leave its node unread.
                self.in_flight.pop(copy.job_id, None)
                self._failed(job, exc, copy, key)
                return
        finally:
            self.in_flight.pop(copy.job_id, None)
        self._handled(copy, key)

    def _handled(self, copy: CopyId, key: str) -> None:
        for attempt in range(3):
            try:
                self.ledger.finish(key, self.options.window)
                break
            except DelayQueueError as exc:
                if attempt == 2:
                    _log.error(
                        "%s was handled but Redis did not record it (%s): its other copies"
                        " may be handled again",
                        copy,
                        exc,
                    )
                else:
                    self.stopping.wait(0.5)
        if not self.connection.delete(copy.job_id):
            _log.warning("%s was handled after beanstalkd gave it back (time-to-run ran out)", copy)

    def _failed(self, job: Job, error: BaseException, copy: CopyId, key: str) -> None:
        connection, options = self.connection, self.options
        try:
            verdict, failures = self.ledger.fail(key, copy, options.max_failures, options.window)
        except DelayQueueError as exc:
            _log.error("%s failed (%r) and Redis did not count it: %s", copy, error, exc)
            verdict, failures = "retry", job.failures + 1
        if verdict == "done":
            self.on_failure(job, error, "handled-elsewhere")
            connection.delete(copy.job_id)
            return
        if verdict == "bury":
            _log.error("%s failed %d times, buried: %r", copy, failures, error)
            self.on_failure(job, error, "buried")
            connection.bury(copy.job_id, priority=_PRIORITY)
            self._record_buried(copy, f"{type(error).__name__}: {error}", failures, job.due)
            return
        delay = min(options.retry_delay * 2 ** (failures - 1), options.max_retry_delay)
        _log.warning(
            "%s failed (%d of %d), retry in %.0fs: %r",
            copy,
            failures,
            options.max_failures,
            delay,
            error,
        )
        self.on_failure(job, error, "retrying")
        connection.release(copy.job_id, priority=_PRIORITY, delay=math.ceil(delay))

    def _hand_back(self, copy: CopyId, key: str, token: str, due: float) -> None:
        try:
            self.ledger.unclaim(key, token, self.options.window)
        except DelayQueueError as exc:
            _log.warning("%s: the claim stays until its lease ends: %s", copy, exc)
        delay = max(0, math.floor(due - time.time()))
        self.connection.release(copy.job_id, priority=_PRIORITY, delay=delay)

    def _record_buried(self, copy: CopyId, reason: str, failures: int, due: float | None) -> None:
        try:
            self.ledger.record_buried(copy, reason, failures, due)
        except DelayQueueError as exc:
            _log.error("%s is buried but not listed (Redis: %s)", copy, exc)
