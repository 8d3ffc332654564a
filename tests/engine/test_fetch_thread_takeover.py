"""A call that hangs on the fetch thread: the takeover by a new fetch thread, where it is hardest.

Each test times what a broker cannot: a stop() before the takeover, a second takeover
before the first stuck call returns, an error_handler that hangs on the fetch thread,
a stuck call that returns while the takeover is under way. The invariants: one thread
fetches at a time (a replaced one leaves once its call returns), nothing is handled
twice, every key moves on once its stuck call returns, and stop() keeps its bound.
"""

from __future__ import annotations

import itertools
import logging
import threading
import time
from collections import Counter
from collections.abc import Iterator

import pytest

from tests.engine.fake_source import EngineRun, wait_for
from zeroqueue import Message
from zeroqueue.engine.conn import ABORT_GRACE, STUCK_ON_FETCH_THREAD

SLACK = 1.0
SHUTDOWN_TIMEOUT = 2.0


def busy(seconds: float) -> None:
    """Compute for ``seconds``: a quick handler the governor lets the fetch thread run."""
    until = time.perf_counter() + seconds
    while time.perf_counter() < until:
        pass


class Handler:
    """Counts each value; values named in ``hangs`` block until their event is set."""

    def __init__(self, *hangs: str) -> None:
        self.lock = threading.Lock()
        self.calls: Counter[str] = Counter()
        self.hangs = {value: threading.Event() for value in hangs}
        self.entered = {value: threading.Event() for value in hangs}
        self.threads: dict[str, str] = {}

    def __call__(self, key: str, value: str) -> None:
        with self.lock:
            self.calls[value] += 1
        release = self.hangs.get(value)
        if release is not None:
            self.threads[value] = threading.current_thread().name
            self.entered[value].set()
            release.wait(60)
        else:
            busy(0.00002)

    def release_all(self) -> None:
        for event in self.hangs.values():
            event.set()


_warm_batches = itertools.count()


def warm_up(run: EngineRun, key: str = "warm") -> None:
    """Feed quick messages (each value new) until the fetch thread runs the handler itself."""
    governor = run.engine.governor
    assert governor is not None
    for _ in range(100):
        batch = next(_warm_batches)
        run.fake.add([f"w{batch}-{j}" for j in range(100)], key=key)
        if wait_for(lambda: governor.inline, timeout=0.3):
            return
    raise AssertionError("the handler was never measured quick")


def keys_in_own_lanes(run: EngineRun, count: int) -> list[str]:
    """``count`` keys that share no lane with each other nor with "warm"."""
    router = run.engine._router
    taken = {router.lane_of_key(b"warm")}
    keys = []
    for key in (f"key-{i}" for i in range(10_000)):
        lane = router.lane_of_key(key.encode())
        if lane not in taken:
            taken.add(lane)
            keys.append(key)
            if len(keys) == count:
                return keys
    raise AssertionError("not enough lanes")


def fetch_threads_alive(run: EngineRun) -> list[str]:
    return [thread.name for thread in run.engine._fetch_threads if thread.is_alive()]


def one_fetches_beside(run: EngineRun, stuck: str, gone: str) -> bool:
    """Whether ``gone`` left and one fetch thread runs beside the ``stuck`` one.

    Which one that is is not asserted: on a starved machine a quick call can also
    run past the takeover delay, and a further takeover is then right.
    """
    alive = fetch_threads_alive(run)
    return gone not in alive and len([name for name in alive if name != stuck]) == 1


@pytest.fixture
def slow_takeover_log() -> Iterator[list[threading.Event]]:
    """A log handler that takes 0.3 s over the takeover warning (a remote syslog, say).

    Append an event to the yielded list: it is set when the warning is emitted, before
    the pause, so a stuck call can return while the takeover is under way.
    """
    on_takeover: list[threading.Event] = []

    class Slow(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            if "takes over" in str(record.msg) and on_takeover:
                on_takeover.pop(0).set()
                time.sleep(0.3)

    handler = Slow(logging.WARNING)
    logger = logging.getLogger("zeroqueue.engine")
    # Earlier tests may leave the logger quieter or disabled (logging config tests):
    # the warning must reach this handler, or the stuck call is never released.
    level, disabled = logger.level, logger.disabled
    logger.setLevel(logging.WARNING)
    logger.disabled = False
    logger.addHandler(handler)
    try:
        yield on_takeover
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)
        logger.disabled = disabled


def test_stop_in_the_first_second_of_a_hang_on_the_fetch_thread_keeps_its_bound() -> None:
    # given a call that hangs on the fetch thread
    handler = Handler("hang")
    run = EngineRun(handler, shutdown_timeout=SHUTDOWN_TIMEOUT)
    try:
        warm_up(run)
        run.fake.add(["hang"], key="stuck")
        assert handler.entered["hang"].wait(10)
        assert handler.threads["hang"].startswith("fake-fetch")
        # when stop() comes before a new fetch thread took over
        time.sleep(0.3)
        took = run.stop(timeout=STUCK_ON_FETCH_THREAD + SHUTDOWN_TIMEOUT + ABORT_GRACE + 10)
        # then run() returns within the takeover delay, shutdown_timeout and the grace
        assert took < STUCK_ON_FETCH_THREAD + SHUTDOWN_TIMEOUT + ABORT_GRACE + SLACK, took
        # leaving the stuck message uncommitted
        hang_offset = run.fake._next_offset[("t", 0)] - 1
        assert (run.fake.committed() or 0) <= hang_offset
    finally:
        handler.release_all()


def test_a_first_stuck_call_that_returns_after_a_second_takeover_leaves() -> None:
    # given a call stuck on the fetch thread (taken over), then another on the new one
    handler = Handler("hang-0", "hang-1")
    run = EngineRun(handler, shutdown_timeout=SHUTDOWN_TIMEOUT)
    engine = run.engine
    try:
        warm_up(run)
        first, second = keys_in_own_lanes(run, 2)
        run.fake.add(["hang-0", "a1", "a2", "a3"], key=first)
        assert wait_for(lambda: len(engine._fetch_threads) == 2, timeout=10)
        warm_up(run)
        run.fake.add(["hang-1"], key=second)
        assert wait_for(lambda: len(engine._fetch_threads) == 3, timeout=10)
        assert handler.threads == {"hang-0": "fake-fetch-0", "hang-1": "fake-fetch-1"}
        # when the first call returns, the second still hanging
        handler.hangs["hang-0"].set()
        # then its thread leaves (one thread fetches), and its key moves on
        assert wait_for(lambda: one_fetches_beside(run, "fake-fetch-1", gone="fake-fetch-0"))
        assert wait_for(lambda: all(handler.calls[v] == 1 for v in ("a1", "a2", "a3")))
        # with only the second stuck call in flight, and nothing handled twice
        assert wait_for(lambda: engine.board.in_flight == 1)
        assert max(handler.calls.values()) == 1
    finally:
        handler.release_all()
        run.stop()


def test_a_lane_call_that_returns_while_a_takeover_is_under_way_leaves(
    slow_takeover_log: list[threading.Event],
) -> None:
    # given a call stuck on the fetch thread (taken over): with it in flight, the new
    # fetch thread runs the lanes itself (run_inline), and a call hangs there too
    handler = Handler("hang-0", "hang-1")
    run = EngineRun(handler, shutdown_timeout=SHUTDOWN_TIMEOUT)
    engine = run.engine
    try:
        warm_up(run)
        first, second, third = keys_in_own_lanes(run, 3)
        run.fake.add(["hang-0"], key=first)
        assert wait_for(lambda: len(engine._fetch_threads) == 2, timeout=10)
        warm_up(run)
        assert wait_for(lambda: engine.board.in_flight == 1)
        # when the second call returns while the takeover is under way (logging it)
        slow_takeover_log.append(handler.hangs["hang-1"])
        run.fake.add(["hang-1", *(f"b{i}" for i in range(20))], key=second)
        assert handler.entered["hang-1"].wait(10)
        assert handler.threads["hang-1"] == "fake-fetch-1"
        assert wait_for(lambda: len(engine._fetch_threads) == 3, timeout=10)
        # then its thread leaves: one thread fetches (beside the one still stuck)
        assert wait_for(lambda: one_fetches_beside(run, "fake-fetch-0", gone="fake-fetch-1"))
        run.fake.add([f"c{i}" for i in range(50)], key=third)
        assert wait_for(lambda: engine.board.in_flight == 1)
        assert max(handler.calls.values()) == 1
    finally:
        handler.release_all()
        run.stop()


@pytest.mark.parametrize("force_commit", [True, False], ids=["ForceCommit", "no-ForceCommit"])
def test_an_error_handler_that_hangs_after_a_quick_failure_is_taken_over_once(
    force_commit: bool,
) -> None:
    # given a handler on the fetch thread that fails once on "bad", whose error_handler
    # then hangs (an alerting service that does not answer)
    handler = Handler()
    release, reported = threading.Event(), threading.Event()

    def handle(key: str, value: str) -> None:
        handler(key, value)
        if value == "bad" and handler.calls["bad"] == 1:
            raise ValueError("first attempt fails")

    def error_handler(message: Message, error: BaseException) -> None:
        if message.value_str == "bad" and not reported.is_set():
            reported.set()
            release.wait(60)

    run = EngineRun(
        handle,
        force_commit=force_commit,
        error_handler=error_handler,
        shutdown_timeout=SHUTDOWN_TIMEOUT,
    )
    engine = run.engine
    try:
        warm_up(run)
        bad, *others = keys_in_own_lanes(run, 4)
        run.fake.add(["bad", "bad-next"], key=bad)
        for i, key in enumerate(others):
            run.fake.add([f"o{i}-{j}" for j in range(5)], key=key)
        assert reported.wait(10)
        # when a new fetch thread took over, and then the error_handler returns
        assert wait_for(lambda: len(engine._fetch_threads) == 2, timeout=10)
        release.set()
        # then the old thread leaves, nothing was handled twice (but a retried "bad"),
        # the key moves on and everything is committed
        assert wait_for(lambda: one_fetches_beside(run, stuck="", gone="fake-fetch-0"))
        assert wait_for(lambda: handler.calls["bad-next"] == 1)
        assert wait_for(lambda: engine.board.in_flight == 0)
        end = run.fake._next_offset[("t", 0)]
        assert wait_for(lambda: run.fake.committed() == end)
        twice = {value for value, count in handler.calls.items() if count > 1}
        assert twice == (set() if force_commit else {"bad"})
    finally:
        release.set()
        run.stop()


def test_an_error_handler_that_hangs_after_a_slow_failure_does_not_hold_the_fetch_thread() -> None:
    # given a handler on the fetch thread that fails after 0.5 s (the watchdog tripped),
    # whose error_handler then hangs
    handler = Handler()
    release, reported = threading.Event(), threading.Event()

    def handle(key: str, value: str) -> None:
        handler(key, value)
        if value == "bad":
            time.sleep(0.5)
            raise ValueError("slow failure")

    def error_handler(message: Message, error: BaseException) -> None:
        if message.value_str == "bad" and not reported.is_set():
            reported.set()
            release.wait(60)

    run = EngineRun(handle, error_handler=error_handler, shutdown_timeout=SHUTDOWN_TIMEOUT)
    try:
        warm_up(run)
        bad, other = keys_in_own_lanes(run, 2)
        run.fake.add(["bad"], key=bad)
        assert reported.wait(10)
        # then other keys flow while the error_handler hangs
        run.fake.add([f"o{i}" for i in range(50)], key=other)
        assert wait_for(lambda: all(handler.calls[f"o{i}"] == 1 for i in range(50)), timeout=10)
        # and stop() keeps its bound
        took = run.stop(timeout=STUCK_ON_FETCH_THREAD + SHUTDOWN_TIMEOUT + ABORT_GRACE + 10)
        assert took < STUCK_ON_FETCH_THREAD + SHUTDOWN_TIMEOUT + ABORT_GRACE + SLACK, took
    finally:
        release.set()
        run.engine.stop()
