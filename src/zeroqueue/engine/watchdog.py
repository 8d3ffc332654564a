"""Tell the fetch thread that the handler it runs itself has turned slow, or stuck.

The fetch thread handles batches itself only while the handler is measured
fast (see :mod:`zeroqueue.engine.governor`), because while it runs a handler it
neither polls (heartbeats, rebalances), commits, nor notices ``stop()``. A
handler can turn slow mid-run, though (a database that stalls), and the fetch
thread cannot time every call without slowing every message. So a watchdog
thread times each stretch of handling instead: when one runs past its limit it
trips the fetch thread's :class:`~zeroqueue.engine.hands.Hand`, which the fetch
thread reads between messages (one attribute read per message) and then hands
the rest of its batch to the worker threads.

The call that was running when the hand tripped cannot be moved. When it is
still running ``stuck_after`` seconds into the stretch (a handler that hangs),
the watchdog offers the stretch to ``on_stuck``: the engine then lets a new
fetch thread carry on, leaving the stuck call's key to wait for it while every
other key flows. The two threads settle who owns the stretch through
:meth:`SlowHandlingWatch.claim`: the stuck thread, back from its call, asks
before it touches anything the fetch thread owns, and learns whether it was
replaced.

The watchdog sleeps while nothing is being handled, and wakes about once per
``limit`` while the fetch thread handles without pause, so it costs nothing
per message and nothing while idle.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from zeroqueue.engine.hands import Hand

__all__ = ["SlowHandlingWatch"]

_log = logging.getLogger("zeroqueue.engine")


class SlowHandlingWatch:
    """Trips a stretch's hand when handling lasts longer than ``limit`` seconds.

    With ``on_stuck``, a stretch still running ``stuck_after`` seconds after it
    began is offered to it (on the watchdog thread, holding the claim lock);
    ``on_stuck`` returns True when it took the stretch over.
    """

    def __init__(
        self,
        limit: float,
        name: str = "zeroqueue",
        *,
        stuck_after: float = 1.0,
        on_stuck: Callable[[Hand], bool] | None = None,
    ) -> None:
        self.limit = limit
        self.stuck_after = max(stuck_after, limit)
        self._on_stuck = on_stuck
        self._changed = threading.Condition()
        self._started: float | None = None
        self._stretch = 0
        self._hand = Hand()
        self._tripped_stretch = 0
        self._offered_stretch = 0
        self._closed = False
        # Whether the watchdog waits for a stretch to begin, or for a deadline that
        # a new stretch may come before: begin() must wake it.
        self._idle = False
        # Who owns a stuck stretch: its thread (claimed) or a new fetch thread (taken).
        self._claim_lock = threading.Lock()
        self._claimed_stretch = 0
        # Every stretch taken over whose thread has not claimed it yet: several may be
        # (a new fetch thread can get stuck too before the first call returns).
        self._taken: set[int] = set()
        self._thread = threading.Thread(target=self._watch, name=f"{name}-watchdog", daemon=True)
        self._thread.start()

    def begin(self, hand: Hand) -> int:
        """The calling thread starts handling with ``hand``: time it from now.

        Returns the stretch's number, for :meth:`end` and :meth:`claim`.
        """
        with self._changed:
            hand.tripped = False
            self._hand = hand
            self._stretch += 1
            self._started = time.monotonic()
            if self._idle:
                self._changed.notify()
            return self._stretch

    def end(self, stretch: int) -> None:
        """The stretch of handling is over (tripped or not); a later one is left running."""
        with self._changed:
            if self._stretch == stretch:
                self._started = None

    def claim(self, stretch: int) -> bool:
        """Called by a tripped stretch's thread before it touches fetch-thread state.

        Returns False when the stretch was taken over (the thread must leave
        everything to the new fetch thread); True otherwise, and from then on the
        stretch can no longer be taken over.
        """
        with self._claim_lock:
            if stretch in self._taken:
                self._taken.discard(stretch)  # its thread knows now, and leaves
                return False
            self._claimed_stretch = stretch
            return True

    def close(self) -> None:
        """Stop the watchdog thread."""
        with self._changed:
            self._closed = True
            self._changed.notify_all()
        self._thread.join()

    def _watch(self) -> None:
        while True:
            with self._changed:
                stuck = self._wait_for_stuck()
            if stuck is None:
                return
            self._offer(*stuck)

    def _wait_for_stuck(self) -> tuple[int, Hand] | None:
        """Trip stretches as they pass ``limit``; return one stuck, or None once closed."""
        changed = self._changed
        while not self._closed:
            started, stretch = self._started, self._stretch
            if started is None:
                self._idle = True
                changed.wait()
                self._idle = False
                continue
            now = time.monotonic()
            if self._tripped_stretch != stretch:
                left = started + self.limit - now
                if left > 0:
                    changed.wait(left)
                    continue
                self._hand.tripped = True
                self._tripped_stretch = stretch
            if self._on_stuck is not None and self._offered_stretch != stretch:
                left = started + self.stuck_after - now
                if left > 0:
                    self._idle = True  # a new stretch may fall due before this deadline
                    changed.wait(left)
                    self._idle = False
                    continue
                self._offered_stretch = stretch
                return stretch, self._hand
            # Tripped (and offered): wait for the next stretch to begin.
            self._idle = True
            while self._stretch == stretch and not self._closed:
                changed.wait()
            self._idle = False
        return None

    def _offer(self, stretch: int, hand: Hand) -> None:
        assert self._on_stuck is not None
        with self._claim_lock:
            if self._claimed_stretch == stretch:
                return  # its thread came back first
            with self._changed:
                running = self._stretch == stretch and self._started is not None
            try:
                taken = running and self._on_stuck(hand)
            except Exception:
                # The watchdog must go on timing stretches whatever a takeover met.
                _log.exception("taking over from a stuck fetch thread failed")
                taken = False
            if taken:
                self._taken.add(stretch)
