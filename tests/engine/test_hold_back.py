"""Holding back messages not due: the partition waits, others flow, a rebalance forgets nothing."""

from __future__ import annotations

import threading
import time

import pytest
from confluent_kafka import Message as KafkaMessage

from tests.engine.fake_source import FakeSource
from tests.kafka_helpers import eventually
from zeroqueue.engine import holding
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
        # The value whose call blocks until ``release`` is set, and set when it began.
        self.hang: str | None = None
        self.release, self.entered = threading.Event(), threading.Event()
        ready = threading.Event()

        def make_source(listener: RebalanceListener) -> FakeSource:
            self.source = FakeSource(listener, [("later", 0), ("now", 0)])
            ready.set()
            return self.source

        def handle(key: str, value: str) -> None:
            if value == self.hang:
                self.entered.set()
                self.release.wait(30)
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
        self.release.set()
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


def test_records_due_soon_wait_in_memory_and_are_not_fetched_again() -> None:
    run = Run()
    assert run.source is not None
    due = time.time() + 0.4
    try:
        # when a partition's head is due within KEEP_WITHIN, with a record after it
        run.source.add([f"{due}", "0"], topic="later")
        assert run.wait_for(2)
    finally:
        run.stop()
    # then both come from memory once due, in order: each was fetched once
    assert [value for value, _ in run.handled] == [f"{due}", "0"]
    assert due <= run.handled[0][1] < due + 0.3
    later = [offset for topic, _, offset in run.source.handed_out if topic == "later"]
    assert later == [0, 1]


def test_a_partition_due_later_is_fetched_again_shortly_before_it_is_due(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(holding, "KEEP_WITHIN", 0.3)
    run = Run()
    assert run.source is not None
    due = time.time() + 1.0
    try:
        # when a partition's head is due after KEEP_WITHIN
        run.source.add([f"{due}"], topic="later")
        assert run.wait_for(1)
    finally:
        run.stop()
    # then it was let go (sought back), fetched again before it was due, and handled on time
    later = [offset for topic, _, offset in run.source.handed_out if topic == "later"]
    assert later == [0, 0]
    [(_, at)] = run.handled
    assert due <= at < due + 0.3


class _Seeks:
    """The part of a Source that HeldPartitions uses: it notes pauses and seeks."""

    def __init__(self) -> None:
        self.paused: list[tuple[str, int]] = []
        self.seeks: list[tuple[tuple[str, int], int]] = []

    def pause(self, partitions: list[tuple[str, int]]) -> None:
        self.paused += partitions

    def seek(self, partition: tuple[str, int], offset: int) -> None:
        self.seeks.append((partition, offset))


def _record(offset: int, due: float) -> KafkaMessage:
    return KafkaMessage(topic="later", partition=0, offset=offset, value=f"{due}".encode())


def test_a_stray_record_of_a_held_partition_is_left_to_be_fetched_again() -> None:
    held = holding.HeldPartitions(DueAt(), "test")
    source = _Seeks()
    due = time.time() + 0.2
    owned = {("later", 0)}
    # when a partition is held at offset 5 (6 kept with it) and a stray record
    # fetched before the pause comes in a later batch
    assert held.hold([_record(5, due), _record(6, due)], owned, source) == []  # type: ignore[arg-type]
    assert held.hold([_record(7, due)], owned, source) == []  # type: ignore[arg-type]
    # then the stray is dropped, the partition goes on after what is kept (7 is fetched again)
    assert source.seeks == [(("later", 0), 7)]
    assert ("later", 0) in held
    while time.time() < due:
        time.sleep(0.01)
    records, resume = held.wake(source)  # type: ignore[arg-type]
    assert [record.offset() for record in records] == [5, 6]
    assert resume == [("later", 0)]
    assert not held


def test_kept_records_due_later_than_keep_within_are_let_go_and_fetched_again() -> None:
    held = holding.HeldPartitions(DueAt(), "test")
    source = _Seeks()
    due = time.time() + 0.1
    later = due + holding.KEEP_WITHIN + 5
    owned = {("later", 0)}
    # when one fetch kept a record due soon and one due long after it
    assert held.hold([_record(3, due), _record(4, later)], owned, source) == []  # type: ignore[arg-type]
    while time.time() < due:
        time.sleep(0.01)
    records, resume = held.wake(source)  # type: ignore[arg-type]
    # then the first is released, the partition goes back to the second, to fetch it
    # again KEEP_WITHIN before it is due, and is not resumed yet
    assert [record.offset() for record in records] == [3]
    assert resume == []
    assert source.seeks == [(("later", 0), 5), (("later", 0), 4)]
    assert held.next_wake() == pytest.approx(later - holding.KEEP_WITHIN)


def test_a_call_that_hangs_on_kept_records_leaves_their_partition_flowing() -> None:
    run = Run()
    assert run.source is not None
    governor = run.engine.governor
    assert governor is not None
    try:
        # given the fetch thread handles quick messages itself
        for batch in range(100):
            run.source.add([f"w{batch}-{n}" for n in range(100)], topic="now")
            if eventually(lambda: governor.inline, 0.3):
                break
        assert governor.inline, "the handler was never measured quick"
        # when a kept record falls due and its call hangs there, so a new fetch thread takes over
        due = time.time() + 0.5
        run.hang = f"{due}"
        run.source.add([f"{due}"], topic="later")
        assert run.entered.wait(10)
        assert eventually(lambda: len(run.engine._fetch_threads) == 2, 5), "no takeover"
        run.release.set()
        # then its partition was resumed: what comes next in it is handled
        run.source.add(["0"], topic="later")
        assert eventually(lambda: "0" in [value for value, _ in run.handled], 5), (
            f"later[0] left paused: {run.source.paused}"
        )
    finally:
        run.stop()
