"""The lane runner's direct path: a fetched batch handled on the fetch thread, no lanes."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator

import pytest
from confluent_kafka import Message as KafkaMessage

from tests.engine.helpers import measured_fast
from zeroqueue.engine.governor import Governor
from zeroqueue.engine.handlers import FailurePolicy, resolve_handler
from zeroqueue.engine.hands import Hand
from zeroqueue.engine.lanes import Lane, Router, WorkBoard
from zeroqueue.engine.offsets import PartitionProgress
from zeroqueue.engine.runner import LaneRunner
from zeroqueue.engine.watchdog import SlowHandlingWatch
from zeroqueue.message import Message

_watches: list[SlowHandlingWatch] = []


@pytest.fixture(autouse=True)
def _close_watchdogs() -> Iterator[None]:
    yield
    while _watches:
        _watches.pop().close()


def new_watch(limit: float = 0.2) -> SlowHandlingWatch:
    """A watchdog closed after the test."""
    watch = SlowHandlingWatch(limit, "test")
    _watches.append(watch)
    return watch


def record(partition: int, offset: int, value: str, topic: str = "t") -> KafkaMessage:
    return KafkaMessage(
        topic=topic, partition=partition, offset=offset, key=b"k", value=value.encode()
    )


def owned(*keys: tuple[str, int]) -> dict[tuple[str, int], PartitionProgress]:
    return {key: PartitionProgress(*key) for key in keys}


def runner_for(
    handler: object, *, force_commit: bool, errors: list[str] | None = None
) -> LaneRunner:
    policy = FailurePolicy(
        force_commit=force_commit,
        error_handler=None if errors is None else lambda m, e: errors.append(f"{m.offset}:{e}"),
        retry_backoff=0.25,
        max_retry_backoff=1.0,
    )
    return LaneRunner(
        WorkBoard(4),
        resolve_handler(handler),
        policy,
        governor=measured_fast(Governor(8)),
        watch=new_watch(),
    )


def test_a_batch_is_handled_in_fetch_order_and_each_partition_recorded() -> None:
    # given a batch with runs of two partitions, one of them split in two runs
    seen: list[str] = []
    runner = runner_for(lambda key, value: seen.append(value), force_commit=True)
    progresses = owned(("t", 0), ("t", 1))
    batch = [record(0, 10, "a"), record(0, 11, "b"), record(1, 5, "c"), record(0, 12, "d")]
    # when the runner handles it directly
    rest = runner.run_direct(batch, progresses.get, multi_topic=False)
    # then every message ran in fetch order and each partition may commit past its last one
    assert rest == []
    assert seen == ["a", "b", "c", "d"]
    assert progresses[("t", 0)].commit_due() == 13
    assert progresses[("t", 1)].commit_due() == 6


def test_records_of_a_partition_no_longer_owned_are_skipped() -> None:
    seen: list[str] = []
    runner = runner_for(lambda key, value: seen.append(value), force_commit=True)
    progresses = owned(("t", 1))
    batch = [record(0, 1, "gone"), record(1, 1, "mine")]
    runner.run_direct(batch, progresses.get, multi_topic=False)
    assert seen == ["mine"]
    assert progresses[("t", 1)].commit_due() == 2


def test_runs_of_several_topics_are_recorded_per_topic() -> None:
    seen: list[str] = []
    runner = runner_for(lambda key, value: seen.append(value), force_commit=True)
    progresses = owned(("a", 0), ("b", 0))
    batch = [record(0, 3, "a3", "a"), record(0, 7, "b7", "b"), record(0, 8, "b8", "b")]
    runner.run_direct(batch, progresses.get, multi_topic=True)
    assert seen == ["a3", "b7", "b8"]
    assert progresses[("a", 0)].commit_due() == 4
    assert progresses[("b", 0)].commit_due() == 9


def test_with_force_commit_a_failure_is_reported_and_passed() -> None:
    errors: list[str] = []
    seen: list[str] = []

    def handle(key: str, value: str) -> None:
        if value == "bad":
            raise ValueError("nope")
        seen.append(value)

    runner = runner_for(handle, force_commit=True, errors=errors)
    progresses = owned(("t", 0))
    batch = [record(0, 0, "a"), record(0, 1, "bad"), record(0, 2, "c")]
    assert runner.run_direct(batch, progresses.get, multi_topic=False) == []
    assert seen == ["a", "c"]
    assert errors == ["1:nope"]
    assert progresses[("t", 0)].commit_due() == 3


def test_a_message_to_retry_and_all_after_it_go_to_the_workers() -> None:
    # given a handler that fails once on "bad", without ForceCommit
    errors: list[str] = []
    seen: list[str] = []

    def handle(message: Message) -> None:
        if message.value_str == "bad" and "bad" not in errors[-1:]:
            errors.append("bad")
            raise ValueError("once")
        seen.append(message.value_str)

    runner = runner_for(handle, force_commit=False)
    governor = runner.governor
    assert governor is not None
    assert governor.inline
    progresses = owned(("t", 0), ("t", 1))
    batch = [record(1, 0, "x"), record(0, 4, "a"), record(0, 5, "bad"), record(1, 1, "y")]
    # when the batch is handled directly
    rest = runner.run_direct(batch, progresses.get, multi_topic=False)
    # then it stops at the failure: the failed message and what follows are left over
    assert rest == batch[2:]
    assert seen == ["x", "a"]
    # what ran before it counts as handled, and the fetch thread stops handling
    assert progresses[("t", 0)].commit_due() == 5
    assert progresses[("t", 1)].commit_due() == 1
    assert not governor.inline
    # and the worker that gets the failed message continues its retries, in order
    assert runner._run_segment(rest[:1], progresses[("t", 0)], Hand(), inline=False)
    assert seen == ["x", "a", "bad"]
    assert runner._resume == {}


def hand_off_once(
    runner: LaneRunner,
    progresses: dict[tuple[str, int], PartitionProgress],
    batch: list[KafkaMessage],
) -> Lane:
    """Run ``batch`` directly, where its first message fails once; queue the rest on a lane."""
    rest = runner.run_direct(batch, progresses.get, multi_topic=False)
    assert rest == batch
    router = Router(4, "key", False, multi_topic=False)
    items = router.route(rest, lambda t, p: progresses[(t, p)])
    (lane,) = runner.board.post(items, len(rest))
    return lane


def fails_once(calls: list[str]) -> Callable[[str, str], None]:
    failed: list[str] = []

    def handle(key: str, value: str) -> None:
        if value == "bad" and not failed:
            failed.append(value)
            raise ValueError("first try")
        calls.append(value)

    return handle


def test_a_handed_off_retry_the_fetch_thread_gets_back_is_handed_off_again() -> None:
    # given a message handed off for retries (backoff 0.25 s), and the one after it
    calls: list[str] = []
    runner = runner_for(fails_once(calls), force_commit=False)
    progresses = owned(("t", 0))
    lane = hand_off_once(runner, progresses, [record(0, 5, "bad"), record(0, 6, "next")])
    state = runner._resume[("t", 0, 5)]
    # when the fetch thread runs the lane inline before any worker took it
    assert runner.run(lane, until=time.perf_counter() + 1.0)
    # then it calls no handler: the message goes back, its retry series intact
    assert calls == []
    assert runner._resume == {("t", 0, 5): state}
    assert runner.board.in_flight == 2
    # and a worker then continues the series after the pause, in offset order
    started = time.perf_counter()
    assert not runner.run(lane)
    assert time.perf_counter() - started >= 0.25
    assert calls == ["bad", "next"]
    assert runner.board.in_flight == 0
    assert runner._resume == {}


def test_a_handed_off_retry_of_a_revoked_partition_is_forgotten() -> None:
    calls: list[str] = []
    runner = runner_for(fails_once(calls), force_commit=False)
    progresses = owned(("t", 0))
    lane = hand_off_once(runner, progresses, [record(0, 5, "bad")])
    progresses[("t", 0)].revoked = True
    assert not runner.run(lane)
    assert calls == []
    assert runner._resume == {}
    assert runner.board.in_flight == 0


def test_a_handed_off_retry_is_measured_once_it_succeeds() -> None:
    calls: list[str] = []
    measured: list[tuple[int, str]] = []
    policy = FailurePolicy(
        force_commit=False, error_handler=None, retry_backoff=0.01, max_retry_backoff=0.01
    )
    runner = LaneRunner(
        WorkBoard(4),
        resolve_handler(fails_once(calls)),
        policy,
        metrics=lambda topic, partition, seconds, error: measured.append((partition, str(error))),
        governor=measured_fast(Governor(8)),
        watch=new_watch(),
    )
    progresses = owned(("t", 0))
    lane = hand_off_once(runner, progresses, [record(0, 5, "bad"), record(0, 6, "next")])
    assert not runner.run(lane)
    assert calls == ["bad", "next"]
    # the retried message succeeded: its outcome is no error, not the first try's
    assert measured == [(0, "None"), (0, "None")]
