"""The fetch loop on a fake source: bounded stop in every mode, pauses, commits, retries.

A broker cannot time these (a handler slow from its first call, one that turns slow
mid-run, a stop during a retry pause), so the engine runs on tests.engine.fake_source.
"""

from __future__ import annotations

import threading
import time

from tests.engine.fake_source import EngineRun, wait_for
from tests.engine.helpers import measured_fast
from zeroqueue.engine.conn import ABORT_GRACE

# How much longer than its bound stop() may take here: thread scheduling on a busy box.
SLACK = 1.0


class Blocking:
    """A handler that blocks on values starting with "block" until released."""

    def __init__(self) -> None:
        self.release = threading.Event()
        self.entered = threading.Event()
        self.calls: list[tuple[str, str]] = []

    def __call__(self, key: str, value: str) -> None:
        self.calls.append((value, threading.current_thread().name))
        if value.startswith("block"):
            self.entered.set()
            self.release.wait(60)


def busy(seconds: float) -> None:
    """Compute for ``seconds``: a handler that only computes, as the governor sees it."""
    until = time.perf_counter() + seconds
    while time.perf_counter() < until:
        pass


def test_a_handler_slow_from_its_first_call_never_holds_the_fetch_thread() -> None:
    # given a Queue engine whose handler blocks on its very first message
    handler = Blocking()
    run = EngineRun(handler, shutdown_timeout=1.0)
    try:
        run.fake.add(["block-0", "after-1", "after-2"])
        assert handler.entered.wait(10)
        # then it runs on a worker: the fetch thread is measuring it, not running it
        assert handler.calls[0][1] != "fake"
        # and stop() returns within shutdown_timeout and the abort grace
        took = run.stop()
        assert took < 1.0 + ABORT_GRACE + SLACK, took
        # with nothing committed past the message still running
        assert run.fake.committed() in (None, 0)
        assert run.fake.closed
    finally:
        handler.release.set()


def test_a_handler_that_turns_slow_holds_the_fetch_thread_for_one_call_at_most() -> None:
    # given a handler the engine measured quick: the fetch thread runs it itself
    calls: list[tuple[str, str]] = []

    def handle(key: str, value: str) -> None:
        calls.append((value, threading.current_thread().name))
        if value.startswith("slow"):
            time.sleep(0.3)
        else:
            busy(0.0001)

    run = EngineRun(handle, shutdown_timeout=5.0)
    governor = run.engine.governor
    assert governor is not None
    fast = [f"fast-{i}" for i in range(200)]
    for _ in range(20):
        run.fake.add(fast, key="quick")
        if wait_for(lambda: governor.inline, timeout=0.5):
            break
    assert governor.inline
    handled_quick = len(calls)
    assert wait_for(lambda: len(calls) >= handled_quick)
    # when it turns slow on ten messages of ten keys
    run.fake.add([f"slow-{i}" for i in range(10)], key="quick")
    for i in range(10):
        run.fake.add([f"slow-key-{i}"], key=f"key-{i}")
    assert wait_for(lambda: sum(v.startswith("slow") for v, _ in calls) == 20, timeout=30)
    # then at most one slow call ran on the fetch thread: the watchdog sent the rest away
    on_fetch_thread = [
        v for v, thread in calls if v.startswith("slow") and thread.startswith("fake-fetch")
    ]
    assert len(on_fetch_thread) <= 1, on_fetch_thread
    assert not governor.inline
    # and stopping takes no handler's time
    assert run.stop() < SLACK
    assert run.error is None


def test_an_aborted_shutdown_waits_out_shutdown_timeout_once() -> None:
    # given a handler that outlives shutdown_timeout, on worker threads
    handler = Blocking()
    run = EngineRun(handler, shutdown_timeout=2.0, adaptive=False)
    try:
        run.fake.add(["block-0"])
        assert handler.entered.wait(10)
        # when stopped, closing the client revokes the partition a second time
        took = run.stop()
        # then shutdown_timeout is waited once (not again for the revoke), plus the grace
        assert 2.0 <= took < 2.0 + ABORT_GRACE + SLACK, took
    finally:
        handler.release.set()


def test_stop_ends_a_retry_pause_at_once_leaving_the_message_uncommitted() -> None:
    # given a message that fails, with 30 s between retries (ForceCommit false)
    failures = threading.Event()

    def handle(key: str, value: str) -> None:
        failures.set()
        raise ValueError("down")

    run = EngineRun(handle, force_commit=False, retry_backoff=30.0, shutdown_timeout=10.0)
    run.fake.add(["fails"])
    assert failures.wait(10)
    # when the engine stops during the pause
    took = run.stop()
    # then it does not wait for the retry, nor for shutdown_timeout
    assert took < SLACK, took
    assert run.fake.committed() is None


def test_a_message_retried_for_ever_does_not_hold_up_other_keys() -> None:
    # given a handler that always fails on one key (ForceCommit false) and one processor
    seen: list[str] = []

    def handle(key: str, value: str) -> None:
        if key == "bad":
            raise ValueError("never")
        seen.append(value)

    run = EngineRun(handle, force_commit=False, processors=1, retry_backoff=0.05)
    try:
        router = run.engine._router
        # a key outside the failing key's lane: a lane is sequential by design
        good = next(
            key
            for key in (f"good-{i}" for i in range(100))
            if router.lane_of_key(key.encode()) != router.lane_of_key(b"bad")
        )
        run.fake.add(["bad"], key="bad")
        run.fake.add([f"v{i}" for i in range(100)], key=good)
        # then the other key's messages are handled while the bad one waits between retries
        assert wait_for(lambda: len(seen) == 100), len(seen)
        # and nothing is committed past the failing message
        assert run.fake.committed() is None
    finally:
        run.stop()


def test_a_full_buffer_pauses_the_partitions_and_waits_without_spinning() -> None:
    # given a capacity of 20 and a first message that blocks its lane
    handler = Blocking()
    run = EngineRun(handler, capacity=20, shutdown_timeout=1.0)
    try:
        run.fake.add(["block-0", *(f"v{i}" for i in range(200))], key="same")
        assert handler.entered.wait(10)
        # then the partition is paused once the buffer stays full
        assert wait_for(lambda: bool(run.fake.paused), timeout=5)
        # and the fetch thread polls at its pace (group events) without spinning
        before, started = run.fake.fetches, time.monotonic()
        time.sleep(1.0)  # a span of time to count polls in: nothing to await
        rate = (run.fake.fetches - before) / (time.monotonic() - started)
        assert rate < 30, rate
        # when the lane moves again, fetching resumes and everything is handled
        handler.release.set()
        assert wait_for(lambda: len(handler.calls) == 201)
        assert not run.fake.paused
        assert wait_for(lambda: run.fake.committed() == 201)
    finally:
        handler.release.set()
        run.stop()


def test_a_failed_commit_is_sent_again() -> None:
    seen: list[str] = []
    run = EngineRun(lambda key, value: seen.append(value))
    run.fake.failing_commits = 1
    run.fake.add(["a", "b", "c"])
    assert wait_for(lambda: run.fake.committed() == 3)
    run.stop()
    assert seen == ["a", "b", "c"]


def test_lanes_the_fetch_thread_leaves_when_a_probe_begins_are_taken_by_workers() -> None:
    # given a worker blocked on one key while 3,000 messages of other keys arrive: the
    # buffer (capacity 200) fills and the partition is paused
    release = threading.Event()
    handled: list[str] = []

    def handle(key: str, value: str) -> None:
        if value == "block":
            release.wait(30)
        else:
            busy(0.002)
        handled.append(value)

    run = EngineRun(handle, processors=4, capacity=200, shutdown_timeout=2.0)
    engine = run.engine
    governor, router = engine.governor, engine._router
    assert governor is not None
    try:
        run.fake.add(["block"], key="blocker")
        assert wait_for(lambda: engine.board.in_flight == 1)
        blocked = router.lane_of_key(b"blocker")
        keys = [
            k
            for k in (f"key-{i}" for i in range(9000))
            if router.lane_of_key(k.encode()) != blocked
        ]
        for key in keys[:3000]:
            run.fake.add([key], key=key)
        assert wait_for(lambda: engine.board.in_flight >= 200)
        # when the handler is measured quick, so the fetch thread runs the lanes (in
        # batches of 500), and that run phase ends after 1 s with lanes still waiting
        governor.run_seconds = 1.0
        measured_fast(governor)
        engine._direct_batch = 500
        release.set()
        # then workers take the lanes it left, and everything is handled
        assert wait_for(lambda: len(handled) == 3001, timeout=30), len(handled)
    finally:
        release.set()
        run.stop()


def test_a_later_message_of_a_lane_given_up_at_stop_is_not_handled() -> None:
    for _ in range(3):
        # given a message retried every 5 s (ForceCommit false), then stop()
        calls: list[str] = []
        failed = threading.Event()

        def handle(
            key: str, value: str, calls: list[str] = calls, failed: threading.Event = failed
        ) -> None:
            calls.append(value)
            if value == "x0":
                failed.set()
                raise ValueError("not yet")

        run = EngineRun(
            handle, force_commit=False, retry_backoff=5.0, adaptive=False, shutdown_timeout=5.0
        )
        run.fake.add(["x0"], key="k")
        assert failed.wait(10)
        stopper = threading.Thread(target=run.stop)
        stopper.start()
        # when the key's next message arrives while the engine stops
        run.fake.add(["x1"], key="k")
        stopper.join(20)
        # then it does not overtake the message given up before it
        assert calls == ["x0"]
        assert run.fake.committed() is None


def test_a_slow_call_that_ends_a_batch_sends_the_handler_back_to_the_workers() -> None:
    # given a handler the fetch thread runs (measured quick)
    slow = threading.Event()
    calls: list[tuple[str, str]] = []

    def handle(key: str, value: str) -> None:
        if slow.is_set():
            time.sleep(0.5)  # the database stalls
        else:
            busy(0.0001)
        calls.append((value, threading.current_thread().name))

    run = EngineRun(handle)
    governor = run.engine.governor
    assert governor is not None
    try:
        for i in range(50):
            run.fake.add([f"fast-{i}-{j}" for j in range(200)], key=f"k{i}")
            if wait_for(lambda: governor.inline, timeout=0.3):
                break
        assert governor.inline
        assert wait_for(lambda: run.engine.board.in_flight == 0)
        # when it turns slow on a quiet topic: each batch is one message, so the slow
        # call is always the batch's last
        slow.set()
        for i in range(4):
            run.fake.add([f"slow-{i}"], key=f"key-{i}")
            handled = i + 1
            assert wait_for(
                lambda: sum(v.startswith("slow") for v, _ in calls) == handled,  # noqa: B023
                timeout=10,
            )
        # then only the first slow call ran on the fetch thread
        on_fetch_thread = [
            v for v, thread in calls if v.startswith("slow") and thread.startswith("fake-fetch")
        ]
        assert on_fetch_thread == ["slow-0"]
    finally:
        run.stop()
