"""How many sync processors may run at once: all of them, unless that only adds contention.

Python code runs under the GIL, so eight threads running a handler that only
computes do no more work than one; they spend CPU handing the GIL around
(measured on a no-op handler: 8 threads ~15% slower than 1). A handler that
waits on I/O, on the other hand, needs every processor.

The governor tells them apart by measuring. During a short *probe* one
processor runs and times each message: CPU time against wall time. A handler
on CPU half the time overlaps with one other, one on CPU 1% of the time with a
hundred, so the governor allows ``round(wall / cpu)`` processors, at most
``processors``. If that is fewer than all, and the handler takes long enough per
message for threads to matter at all, a second probe step runs two processors:
if both stayed busy and together burned clearly more CPU per second than one
could (the handler computes outside the GIL, as hashlib or zlib do), every
processor is allowed.
The allowance holds for ``run_seconds``, then the handler is probed again.

Wall time spent waiting for a CPU is not waiting on I/O: on a busy machine a
handler that only computes is often runnable but not running, and would look
I/O-bound. Where Linux reports it, the time a thread waited in the run queue
is left out of its wall time.

When the allowance is one processor and the handler measured fast, the fetch
thread may run it itself (:attr:`inline`), which saves every hand-off between
threads. Never before that: the probe runs on a worker thread, so a handler
that is slow from the start never holds the fetch thread (which polls, commits
and notices ``stop()``). A handler that turns slow later is caught by the
watchdog (:mod:`zeroqueue.engine.watchdog`), and :meth:`slowed` sends it back
to a worker and to a new probe.

Plain Python: processors report what they measured, the fetch thread calls
:meth:`tick`, and the executor reads :attr:`limit`.
"""

from __future__ import annotations

import contextlib
import math
import os
import threading
import time
from collections.abc import Callable, Iterator

__all__ = ["Governor", "TimingMark"]

#: What :meth:`Governor.mark` read: thread CPU seconds, wall clock, run-queue wait.
TimingMark = tuple[float, float, float]

# A probe step ends once it lasted this long and timed this many messages...
PROBE_SECONDS = 0.1
PROBE_MESSAGES = 20
# ...or after this long with at least one timed message.
PROBE_MAX_SECONDS = 2.0
# Timed handler wall time a probe step needs before it decides: a decision on a
# fraction of a millisecond can be swayed by one preemption (measured: a no-op
# handler whose first 500 messages took 0.3 ms looked 90% idle after a 2 ms stall).
PROBE_MIN_WALL = 0.02
# In the pair step both processors count as busy when their timed messages cover this
# share of the step (2.0 = both busy throughout)...
PAIR_BUSY = 1.6
# ...and as running in parallel when they burned this many single-processor CPU shares.
PAIR_GAIN = 1.4
# Handlers quicker than this per message skip the pair step: handing a message to
# another thread costs microseconds, so even GIL-free work that short cannot gain
# from a second processor, while the step itself runs two threads fighting for the
# GIL (measured: a no-op handler at about half speed for the step's duration).
PAIR_MIN_SECONDS_PER_MESSAGE = 50e-6
# The fetch thread runs the handler itself only when a message took at most this long
# on average in the probe: its batches are sized to take INLINE_BUDGET (conn.py), and
# a handler this quick fills one with a few messages at least.
INLINE_MAX_SECONDS_PER_MESSAGE = 0.005


class _RunQueueClock:
    """How long the calling thread has waited for a CPU, from ``/proc/thread-self/schedstat``.

    One per thread (kept in a ``threading.local``, so its file closes when the
    thread ends); reads 0 where the file does not exist.
    """

    __slots__ = ("fd",)

    def __init__(self) -> None:
        try:
            self.fd = os.open("/proc/thread-self/schedstat", os.O_RDONLY)
        except OSError:
            self.fd = -1

    def __del__(self, _close: Callable[[int], None] = os.close) -> None:
        # os.close is bound early: at interpreter exit the os global may be gone.
        if self.fd >= 0:
            _close(self.fd)

    def waited(self) -> float:
        """Seconds this thread spent runnable but not running, since it started."""
        if self.fd < 0:
            return 0.0
        try:
            # "<ns on CPU> <ns waiting in the run queue> <timeslices>"
            return int(os.pread(self.fd, 64, 0).split()[1]) / 1e9
        except (OSError, ValueError, IndexError):
            return 0.0


_per_thread = threading.local()


def _run_queue_wait() -> float:
    clock: _RunQueueClock | None = getattr(_per_thread, "run_queue", None)
    if clock is None:
        clock = _per_thread.run_queue = _RunQueueClock()
    return clock.waited()


def _forget_parent_clock() -> None:
    # A forked child inherits the file of the parent's thread: open its own.
    _per_thread.__dict__.pop("run_queue", None)


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_parent_clock)


class Governor:
    """Adapts the number of awake sync processors to the handler's CPU share."""

    def __init__(self, processors: int, *, run_seconds: float = 10.0) -> None:
        self.processors = processors
        self.run_seconds = run_seconds
        self._lock = threading.Lock()
        self._cpu = 0.0
        self._wall = 0.0
        self._waited = 0.0
        self._messages = 0
        # When this step's first timed message was recorded: steps are measured from
        # there, not from when they began (the first one begins before the group join).
        self._first_timed: float | None = None
        self._share = 1.0
        # Whether the last probe found the handler quick enough for the fetch thread.
        self._fast = False
        self._phase = "single"
        self._phase_started = time.monotonic()
        #: How many processors may be awake now.
        self.limit = 1
        #: Whether processors should time each message (only while probing).
        self.probing = True
        self._workers_until = 0.0
        # Drains under way (only the fetch thread enters them).
        self._draining = 0

    @property
    def inline(self) -> bool:
        """Whether the fetch thread runs the handler itself.

        Only between probes, with one processor allowed, for a handler measured
        fast, and while no retry needs the worker threads.
        """
        return (
            self._fast
            and self.limit == 1
            and self._phase == "run"
            and not self._draining
            and time.monotonic() >= self._workers_until
        )

    def slowed(self) -> None:
        """The handler ran slow on the fetch thread: back to a worker, and measure again."""
        self._fast = False
        self._enter("single", 1, time.monotonic())

    def need_workers(self) -> None:
        """A handler failed and will be retried: keep it off the fetch thread for a while.

        Retry pauses would stop the fetch thread from polling, committing and
        noticing stop(); worker threads wait them out instead.
        """
        self._workers_until = time.monotonic() + self.run_seconds

    @contextlib.contextmanager
    def draining(self) -> Iterator[None]:
        """Keep the handler off the fetch thread while the engine drains.

        In a rebalance or at shutdown, a handler that hangs must hold a worker, not
        the thread that polls, commits and answers the group.
        """
        self._draining += 1
        try:
            yield
        finally:
            self._draining -= 1

    @staticmethod
    def mark() -> TimingMark:
        """Read the calling thread's clocks, before timing work with :meth:`record_since`."""
        return time.thread_time(), time.perf_counter(), _run_queue_wait()

    def record_since(self, mark: TimingMark, messages: int, *, idle: float = 0.0) -> None:
        """Account ``messages`` handled on this thread since ``mark``.

        ``idle`` is time in there that was no handling at all (a retry pause): it
        is left out, or a retry would make any handler look like it waits on I/O.
        """
        cpu, wall, waited = self.mark()
        self.record(cpu - mark[0], max(wall - mark[1] - idle, 0.0), messages, waited - mark[2])

    def record(self, cpu: float, wall: float, messages: int = 1, waited: float = 0.0) -> None:
        """Account timed messages: thread CPU seconds, wall seconds, and run-queue wait."""
        with self._lock:
            if self._first_timed is None:
                # Reported when the work ends: the step's clock starts when it began.
                self._first_timed = time.monotonic() - wall
            self._cpu += cpu
            self._wall += wall
            self._waited += waited
            self._messages += messages

    def tick(self, now: float | None = None) -> bool:
        """Advance the probe/run cycle; True when :attr:`limit` changed."""
        now = time.monotonic() if now is None else now
        if self._phase == "run":
            elapsed = now - self._phase_started
            return elapsed >= self.run_seconds and self._enter("single", 1, now)
        with self._lock:
            cpu, wall, messages, first = self._cpu, self._wall, self._messages, self._first_timed
            waited = self._waited
        if first is None:
            return False
        elapsed = now - max(first, self._phase_started)
        enough = elapsed >= PROBE_SECONDS and messages >= PROBE_MESSAGES and wall >= PROBE_MIN_WALL
        if not (enough or (elapsed >= PROBE_MAX_SECONDS and messages)) or wall <= 0:
            return False
        if self._phase == "single":
            # Off CPU but not waiting for one: the time the handler waits on I/O.
            self._share = max(cpu / max(wall - waited, cpu, 1e-9), 1e-6)
            self._fast = wall / messages <= INLINE_MAX_SECONDS_PER_MESSAGE
            if self._overlap() >= self.processors:
                return self._enter("run", self.processors, now)
            if wall / messages < PAIR_MIN_SECONDS_PER_MESSAGE:
                return self._enter("run", self._overlap(), now)
            return self._enter("pair", 2, now)
        busy = wall >= PAIR_BUSY * elapsed
        parallel = busy and cpu / elapsed > PAIR_GAIN * self._share
        return self._enter("run", self.processors if parallel else self._overlap(), now)

    def _overlap(self) -> int:
        """Processors that can overlap usefully for the measured CPU share."""
        return min(self.processors, max(1, math.floor(1 / self._share + 0.5)))

    def _enter(self, phase: str, limit: int, now: float) -> bool:
        with self._lock:
            self._cpu = self._wall = self._waited = 0.0
            self._messages = 0
            self._first_timed = None
        self._phase, self._phase_started = phase, now
        self.probing = phase != "run"
        changed, self.limit = limit != self.limit, limit
        return changed

    @property
    def phase(self) -> str:
        """``single``/``pair`` while probing, ``run`` in between."""
        return self._phase
