"""Processors: threads for sync handlers, tasks on an event loop for async ones.

Both take ready lanes from a queue and run each until it has no work left.
Threads wake only up to the :class:`~zeroqueue.engine.governor.Governor`'s limit.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import queue
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from typing import Protocol, TypeAlias

from zeroqueue.engine.governor import Governor
from zeroqueue.engine.lanes import Lane
from zeroqueue.engine.runner import LaneRunner

__all__ = ["AsyncExecutor", "CrashHandler", "Executor", "ThreadExecutor", "make_executor"]

#: Told when a processor fails outside any handler (a bug): the lane it held, or
#: None on the fetch thread's direct path, can no longer move, so the engine must
#: stop.
CrashHandler: TypeAlias = Callable[["Lane | None", BaseException], None]


class Executor(Protocol):
    """Runs lanes with ``processors`` concurrent workers."""

    @property
    def inline(self) -> bool:
        """Whether the fetch thread must run the lanes (see :meth:`run_inline`)."""

    def start(self) -> None:
        """Start the workers."""

    def schedule(self, lanes: Sequence[Lane]) -> None:
        """Queue lanes that just became ready."""

    def has_ready(self) -> bool:
        """Whether lanes wait for a processor."""

    def run_inline(self, budget: float) -> bool:
        """Run ready lanes on the calling thread for about ``budget`` seconds."""

    def shutdown(self, timeout: float) -> bool:
        """Stop the workers; False if some were still busy after ``timeout``."""

    def owns(self, thread: threading.Thread) -> bool:
        """Whether ``thread`` is one of its workers."""


class ThreadExecutor:
    """Up to ``processors`` worker threads running a sync handler.

    Ready lanes wait in one queue; a parked worker is woken only while fewer than
    the governor's limit are awake, so a handler that holds the GIL is not run
    on threads that could only take turns. When the fetch thread may run the
    handler (:attr:`inline`), no worker is woken at all: it runs the lanes itself
    (:meth:`run_inline`), which saves every hand-off between threads.

    A worker waiting out a retry pause runs no handler, so it does not count:
    another is woken in its place (a spare thread is started for that when all
    are taken, at most one per lane), and a message retried for ever never holds
    up the keys of other lanes.
    """

    def __init__(
        self,
        runner: LaneRunner,
        processors: int,
        name: str,
        on_crash: CrashHandler,
        governor: Governor | None = None,
    ) -> None:
        self._runner = runner
        self._processors = processors
        self._name = name
        self._on_crash = on_crash
        self._governor = governor
        self._lock = threading.Lock()
        self._ready: deque[Lane] = deque()
        self._awake = 0
        self._wake: queue.SimpleQueue[bool] = queue.SimpleQueue()
        # Every lane may be pausing at once, beside `processors` handling.
        self._max_threads = processors + len(runner.board.lanes)
        self._threads: list[threading.Thread] = []
        for _ in range(processors):
            self._threads.append(self._new_thread())
        self._started = False
        runner.on_pause = self._wake_for_pause

    def _new_thread(self) -> threading.Thread:
        return threading.Thread(
            target=self._work, name=f"{self._name}-processor-{len(self._threads)}", daemon=True
        )

    def start(self) -> None:
        """Start the worker threads (parked until there is work)."""
        with self._lock:
            self._started = True
            threads = list(self._threads)
        for thread in threads:
            thread.start()

    @property
    def inline(self) -> bool:
        """Whether lanes run on the fetch thread (see the class docstring)."""
        return self._governor is not None and self._governor.inline

    def _workers_allowed(self) -> int:
        if self._governor is None:
            allowed = self._processors
        elif self._governor.inline:
            return 0  # the fetch thread runs the lanes that are ready
        else:
            allowed = self._governor.limit
        # Workers waiting out retry pauses or held by a long call use no CPU: they do
        # not count against the limit, or one hanging message would hold every lane.
        held = self._runner.pausing + self._runner.hands.long_held
        return min(self._max_threads, allowed + held)

    def _wake_for_pause(self) -> None:
        if self._ready:
            self.schedule(())

    def has_ready(self) -> bool:
        """Whether lanes wait for a processor."""
        return bool(self._ready)

    def run_inline(self, budget: float) -> bool:
        """Run ready lanes on the calling thread for about ``budget`` seconds.

        Returns whether any lane ran. A lane still busy when the budget is spent
        goes back to the front of the queue.
        """
        until = time.perf_counter() + budget
        ran = False
        while time.perf_counter() < until and self.inline:
            with self._lock:
                if not self._ready:
                    break
                lane = self._ready.popleft()
            ran = True
            try:
                more = self._runner.run(lane, until)
            except BaseException as exc:
                self._on_crash(lane, exc)
                break
            if more:
                with self._lock:
                    self._ready.appendleft(lane)
        if not self.inline:
            self.schedule(())  # a retry moved the work to the worker threads
        return ran

    def schedule(self, lanes: Sequence[Lane]) -> None:
        """Queue ready lanes and wake workers, up to the allowed number."""
        limit = self._workers_allowed()
        spares: list[threading.Thread] = []
        with self._lock:
            self._ready.extend(lanes)
            wake = min(limit - self._awake, len(self._ready))
            if wake > 0:
                self._awake += wake
                # More awake than threads only while workers wait out retry pauses.
                while self._started and len(self._threads) < min(self._awake, self._max_threads):
                    spare = self._new_thread()
                    self._threads.append(spare)
                    spares.append(spare)
        for spare in spares:
            spare.start()
        for _ in range(wake):
            self._wake.put(True)

    def owns(self, thread: threading.Thread) -> bool:
        """Whether ``thread`` is one of its workers."""
        with self._lock:
            return thread in self._threads

    def shutdown(self, timeout: float) -> bool:
        """Tell every worker to exit once idle and wait up to ``timeout`` for them."""
        with self._lock:
            self._started = False  # no spare thread from now on: it would get no stop token
            threads = list(self._threads)
        for _ in threads:
            self._wake.put(False)
        return _join_all(threads, timeout)

    def _work(self) -> None:
        runner, ready, lock = self._runner, self._ready, self._lock
        while self._wake.get():
            while True:
                with lock:
                    if not ready or self._awake > self._workers_allowed():
                        self._awake -= 1
                        break
                    lane = ready.popleft()
                try:
                    runner.run(lane)
                except BaseException as exc:
                    # Even SystemExit from a handler: this thread must keep serving
                    # (and counting itself awake) until the stopping engine parks it.
                    self._on_crash(lane, exc)


class AsyncExecutor:
    """``processors`` tasks on an event loop running an ``async def`` handler.

    Without a loop it starts its own in a thread; given one (the caller's
    running loop) it adds its tasks there.
    """

    def __init__(
        self,
        runner: LaneRunner,
        processors: int,
        name: str,
        on_crash: CrashHandler,
        loop: asyncio.AbstractEventLoop | None = None,
    ) -> None:
        self._runner = runner
        self._processors = processors
        self._name = name
        self._on_crash = on_crash
        self._own_loop = loop is None
        self._loop = loop or asyncio.new_event_loop()
        self._thread: threading.Thread | None = None
        self._ready: asyncio.Queue[Lane | None] | None = None
        self._workers: asyncio.Future[list[BaseException | None]] | None = None

    inline = False

    def has_ready(self) -> bool:
        """Whether lanes wait for a task (not tracked: tasks take them at once)."""
        return False

    def owns(self, thread: threading.Thread) -> bool:
        """Whether ``thread`` runs its event loop."""
        return thread is self._thread

    def run_inline(self, budget: float) -> bool:
        """Never needed: async handlers always run on their event loop."""
        return False

    def start(self) -> None:
        """Start the loop (if ours) and the worker tasks."""
        if self._own_loop:
            self._thread = threading.Thread(
                target=self._loop.run_forever, name=f"{self._name}-loop", daemon=True
            )
            self._thread.start()
        asyncio.run_coroutine_threadsafe(self._spawn(), self._loop).result()

    async def _spawn(self) -> None:
        self._ready = asyncio.Queue()
        # return_exceptions: a task that ended early (reported through on_crash)
        # must not end the wait for the others at shutdown.
        self._workers = asyncio.gather(
            *(self._work() for _ in range(self._processors)), return_exceptions=True
        )

    def schedule(self, lanes: Sequence[Lane]) -> None:
        """Queue ready lanes, from any thread."""
        if lanes:
            self._loop.call_soon_threadsafe(self._put_all, list(lanes))

    def _put_all(self, lanes: list[Lane]) -> None:
        assert self._ready is not None
        for lane in lanes:
            self._ready.put_nowait(lane)

    async def _work(self) -> None:
        assert self._ready is not None
        ready, runner = self._ready, self._runner
        while (lane := await ready.get()) is not None:
            try:
                await runner.run_async(lane)
            except BaseException as exc:
                self._on_crash(lane, exc)
                if not isinstance(exc, Exception):
                    raise  # a cancelled task must end, or its loop cannot shut down

    def shutdown(self, timeout: float) -> bool:
        """Stop the tasks once idle (and our loop); False if still busy after ``timeout``."""
        self._loop.call_soon_threadsafe(self._put_all_stop)
        finished = True
        if self._workers is not None:
            done = asyncio.run_coroutine_threadsafe(_wait(self._workers), self._loop)
            try:
                done.result(timeout)
            except concurrent.futures.TimeoutError:
                finished = False
        if self._own_loop:
            self._loop.call_soon_threadsafe(self._loop.stop)
            if self._thread is not None:
                self._thread.join(timeout)
                finished = finished and not self._thread.is_alive()
            if finished:
                self._loop.close()
        return finished

    def _put_all_stop(self) -> None:
        assert self._ready is not None
        for _ in range(self._processors):
            self._ready.put_nowait(None)


async def _wait(workers: asyncio.Future[list[BaseException | None]]) -> None:
    await workers


def _join_all(threads: Sequence[threading.Thread], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    for thread in threads:
        thread.join(max(0.0, deadline - time.monotonic()))
    return not any(thread.is_alive() for thread in threads)


def make_executor(
    runner: LaneRunner,
    processors: int,
    name: str,
    on_crash: CrashHandler,
    loop: asyncio.AbstractEventLoop | None = None,
) -> Executor:
    """Threads for a sync handler, event-loop tasks for an async one."""
    if runner.handler.is_async:
        return AsyncExecutor(runner, processors, name, on_crash, loop)
    return ThreadExecutor(runner, processors, name, on_crash, runner.governor)
