"""Holding back messages not due: the partition waits, others flow, a rebalance forgets nothing."""

from __future__ import annotations

import threading
import time

from confluent_kafka import Message as KafkaMessage

from tests.engine.fake_source import FakeSource
from zeroqueue.engine.conn import ConnEngine, EngineOptions
from zeroqueue.engine.handlers import FailurePolicy, resolve_handler
from zeroqueue.engine.source import RebalanceListener


class DueAt:
    """Messages of topic "later" are due at the time (seconds) their value says."""

    topics = frozenset({"later"})

    def due(self, record: KafkaMessage) -> float:
        return float((record.value() or b"0").decode())


class Run:
    """A ConnEngine with a hold-back on a FakeSource with partitions later[0] and now[0]."""

    def __init__(self) -> None:
        self.handled: list[tuple[str, float]] = []
        self.source: FakeSource | None = None
        ready = threading.Event()

        def make_source(listener: RebalanceListener) -> FakeSource:
            self.source = FakeSource(listener, [("later", 0), ("now", 0)])
            ready.set()
            return self.source

        def handle(key: str, value: str) -> None:
            self.handled.append((value, time.time()))

        policy = FailurePolicy(
            force_commit=True, error_handler=None, retry_backoff=0.05, max_retry_backoff=0.05
        )
        self.engine = ConnEngine(
            make_source,
            resolve_handler(handle),
            policy,
            EngineOptions(commit_interval=0.05),
            name="hold",
            hold_back=DueAt(),
        )
        self.thread = threading.Thread(target=self.engine.run, daemon=True)
        self.thread.start()
        assert ready.wait(5)

    def wait_for(self, count: int, timeout: float = 10.0) -> bool:
        deadline = time.monotonic() + timeout
        while len(self.handled) < count:
            if time.monotonic() > deadline:
                return False
            time.sleep(0.01)
        return True

    def stop(self) -> None:
        self.engine.stop()
        self.thread.join(10)


def test_a_message_not_due_waits_while_other_partitions_flow() -> None:
    run = Run()
    assert run.source is not None
    due = time.time() + 0.6
    try:
        run.source.add([f"{due}"], topic="later")
        run.source.add(["x"], topic="now")
        assert run.wait_for(2)
    finally:
        run.stop()
    (first, _), (second, second_at) = run.handled
    assert first == "x"
    assert second == f"{due}"
    assert due <= second_at < due + 0.5


def test_a_held_partition_revoked_and_assigned_back_is_not_stuck() -> None:
    run = Run()
    assert run.source is not None
    due = time.time() + 0.8
    try:
        run.source.add([f"{due}"], topic="later")
        # when it is held back (paused) and a rebalance takes it away and gives it back
        deadline = time.monotonic() + 5
        while ("later", 0) not in run.source.paused:
            assert time.monotonic() < deadline, "never held back"
            time.sleep(0.01)
        run.source.reassign()
        # then it is still handled once due (librdkafka kept the pause: the engine must resume)
        assert run.wait_for(1, timeout=5), "the held partition stayed paused"
    finally:
        run.stop()
    [(_, at)] = run.handled
    assert due <= at < due + 0.5


def test_a_held_partition_whose_seek_back_fails_skips_nothing() -> None:
    run = Run()
    assert run.source is not None
    run.source.refused_seeks = 2
    due = time.time() + 0.3
    try:
        # when the partition is held at its first message and seeking back to it fails twice
        run.source.add([f"{due}", "0"], topic="later")
        # then the held message and the one after it are still handled, in order, once due
        assert run.wait_for(2, timeout=10), run.handled
    finally:
        run.stop()
    assert [value for value, _ in run.handled] == [f"{due}", "0"]
    assert run.source.refused_seeks == 0
    assert run.handled[0][1] >= due
