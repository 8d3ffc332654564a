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

Plain Python: processors report what they measured, the fetch thread calls
:meth:`tick`, and the executor reads :attr:`limit`.
"""

from __future__ import annotations

import math
import threading
import time

__all__ = ["Governor"]

# A probe step ends once it lasted this long and timed this many messages...
PROBE_SECONDS = 0.2
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


class Governor:
    """Adapts the number of awake sync processors to the handler's CPU share."""

    def __init__(self, processors: int, *, run_seconds: float = 10.0) -> None:
        self.processors = processors
        self.run_seconds = run_seconds
        self._lock = threading.Lock()
        self._cpu = 0.0
        self._wall = 0.0
        self._messages = 0
        # When this step's first timed message was recorded: steps are measured from
        # there, not from when they began (the first one begins before the group join).
        self._first_timed: float | None = None
        self._share = 1.0
        self._phase = "single" if processors > 1 else "fixed"
        self._phase_started = time.monotonic()
        #: How many processors may be awake now.
        self.limit = 1
        #: Whether processors should time each message (only while probing).
        self.probing = self._phase == "single"
        self._workers_until = 0.0

    @property
    def inline(self) -> bool:
        """Whether the fetch thread runs the handler itself (one processor, no retries due)."""
        return self.limit == 1 and time.monotonic() >= self._workers_until

    def need_workers(self) -> None:
        """A handler failed and will be retried: keep it off the fetch thread for a while.

        Retry pauses would stop the fetch thread from polling, committing and
        noticing stop(); worker threads wait them out instead.
        """
        self._workers_until = time.monotonic() + self.run_seconds

    def record(self, cpu: float, wall: float, messages: int = 1) -> None:
        """Account timed messages: thread CPU seconds and wall seconds they took."""
        with self._lock:
            if self._first_timed is None:
                # Reported when the work ends: the step's clock starts when it began.
                self._first_timed = time.monotonic() - wall
            self._cpu += cpu
            self._wall += wall
            self._messages += messages

    def tick(self, now: float | None = None) -> bool:
        """Advance the probe/run cycle; True when :attr:`limit` changed."""
        if self._phase == "fixed":
            return False
        now = time.monotonic() if now is None else now
        if self._phase == "run":
            elapsed = now - self._phase_started
            return elapsed >= self.run_seconds and self._enter("single", 1, now)
        with self._lock:
            cpu, wall, messages, first = self._cpu, self._wall, self._messages, self._first_timed
        if first is None:
            return False
        elapsed = now - max(first, self._phase_started)
        enough = elapsed >= PROBE_SECONDS and messages >= PROBE_MESSAGES and wall >= PROBE_MIN_WALL
        if not (enough or (elapsed >= PROBE_MAX_SECONDS and messages)) or wall <= 0:
            return False
        if self._phase == "single":
            self._share = max(cpu / wall, 1e-6)
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
            self._cpu = self._wall = 0.0
            self._messages = 0
            self._first_timed = None
        self._phase, self._phase_started = phase, now
        self.probing = phase != "run"
        changed, self.limit = limit != self.limit, limit
        return changed

    @property
    def phase(self) -> str:
        """``single``/``pair`` while probing, ``run`` in between, ``fixed`` for one processor."""
        return self._phase
