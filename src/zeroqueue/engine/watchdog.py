"""Tell the fetch thread that the handler it runs itself has turned slow.

The fetch thread handles batches itself only while the handler is measured
fast (see :mod:`zeroqueue.engine.governor`), because while it runs a handler it
neither polls (heartbeats, rebalances), commits, nor notices ``stop()``. A
handler can turn slow mid-run, though (a database that stalls), and the fetch
thread cannot time every call without slowing every message. So a watchdog
thread times each stretch of handling instead: when one runs past its limit it
trips a flag, which the fetch thread reads between messages (one attribute
read per message) and then hands the rest of its batch to the worker threads.
The call that was running when the flag tripped still finishes on the fetch
thread: that one call is the most a slow handler can hold it.

The watchdog sleeps while nothing is being handled, and wakes about once per
``limit`` while the fetch thread handles without pause, so it costs nothing
per message and nothing while idle.
"""

from __future__ import annotations

import threading
import time

__all__ = ["SlowHandlingWatch"]


class SlowHandlingWatch:
    """Trips :attr:`tripped` when a stretch of handling lasts longer than ``limit`` seconds."""

    def __init__(self, limit: float, name: str = "zeroqueue") -> None:
        self.limit = limit
        #: Read by the fetch thread between messages: stop handling here.
        self.tripped = False
        self._changed = threading.Condition()
        self._started: float | None = None
        self._stretch = 0
        self._closed = False
        # Whether the watchdog waits for a stretch to begin (else for a deadline that
        # is earlier than any new stretch's: it will see the new one then).
        self._idle = False
        self._thread = threading.Thread(target=self._watch, name=f"{name}-watchdog", daemon=True)
        self._thread.start()

    def begin(self) -> None:
        """The calling thread starts handling: time it from now."""
        with self._changed:
            self.tripped = False
            self._stretch += 1
            self._started = time.monotonic()
            if self._idle:
                self._changed.notify()

    def end(self) -> None:
        """The stretch of handling is over (tripped or not)."""
        with self._changed:
            self._started = None

    def close(self) -> None:
        """Stop the watchdog thread."""
        with self._changed:
            self._closed = True
            self._changed.notify_all()
        self._thread.join()

    def _watch(self) -> None:
        changed = self._changed
        with changed:
            while not self._closed:
                started, stretch = self._started, self._stretch
                if started is None:
                    self._idle = True
                    changed.wait()
                    self._idle = False
                    continue
                left = started + self.limit - time.monotonic()
                if left > 0:
                    changed.wait(left)
                    continue
                if self._stretch == stretch and self._started is not None:
                    self.tripped = True
                    # Tripped once per stretch: wait for the next one to begin.
                    self._idle = True
                    while self._stretch == stretch and not self._closed:
                        changed.wait()
                    self._idle = False
