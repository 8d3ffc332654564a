"""How the conn engine dispatches a fetched batch: by itself, or to the lanes."""

from __future__ import annotations

from collections.abc import Callable

from confluent_kafka import Message as KafkaMessage

from tests.engine.helpers import measured_fast
from zeroqueue.engine.conn import ConnEngine, EngineOptions
from zeroqueue.engine.handlers import FailurePolicy, resolve_handler
from zeroqueue.engine.source import RebalanceListener, Source


def record(partition: int, offset: int, value: str) -> KafkaMessage:
    return KafkaMessage(
        topic="t", partition=partition, offset=offset, key=b"k", value=value.encode()
    )


def no_source(listener: RebalanceListener) -> Source:
    raise AssertionError("these tests drive the engine without a Kafka client")


def engine_for(handler: Callable[[str, str], None]) -> ConnEngine:
    policy = FailurePolicy(
        force_commit=True, error_handler=None, retry_backoff=0.1, max_retry_backoff=0.1
    )
    engine = ConnEngine(
        no_source, resolve_handler(handler), policy, EngineOptions(processors=8), name="test"
    )
    engine.assigned([("t", 0), ("t", 1)])
    assert engine.governor is not None
    measured_fast(engine.governor)
    return engine


def test_with_nothing_in_flight_the_fetch_thread_handles_the_batch_itself() -> None:
    seen: list[str] = []
    engine = engine_for(lambda key, value: seen.append(value))
    # the governor measured a quick handler: the fetch thread runs it
    assert engine._executor.inline
    engine._dispatch([record(0, 0, "a"), record(1, 0, "b"), record(0, 1, "c")])
    assert seen == ["a", "b", "c"]
    assert engine.board.in_flight == 0
    assert {key: p.commit_due() for key, p in engine._progress.items()} == {
        ("t", 0): 2,
        ("t", 1): 1,
    }


def test_while_messages_are_in_flight_a_batch_waits_in_the_lanes() -> None:
    # given a message counted in flight (its lane's worker not done with it)
    seen: list[str] = []
    engine = engine_for(lambda key, value: seen.append(value))
    engine.board.in_flight = 1
    # when the next batch arrives
    engine._dispatch([record(0, 7, "later")])
    # then the fetch thread does not handle it itself: it queues in its key's lane
    assert seen == []
    assert engine.board.in_flight == 2
    assert [len(lane.pending) for lane in engine.board.lanes if lane.pending] == [1]


def test_records_of_a_partition_revoked_during_the_fetch_are_dropped() -> None:
    seen: list[str] = []
    engine = engine_for(lambda key, value: seen.append(value))
    # a revoke ran inside the fetch that returned these records
    engine.revoking([("t", 1)])
    engine._dispatch([record(0, 0, "mine"), record(1, 4, "stale"), record(0, 1, "mine too")])
    assert seen == ["mine", "mine too"]
    assert list(engine._progress) == [("t", 0)]
    assert engine.dispatched == 2


def test_a_revoked_partitions_records_stay_out_of_the_lanes_too() -> None:
    seen: list[str] = []
    engine = engine_for(lambda key, value: seen.append(value))
    engine.board.in_flight = 1  # work in flight: batches go to the lanes
    engine.revoking([("t", 1)])
    engine._dispatch([record(0, 0, "mine"), record(1, 4, "stale")])
    queued = [
        r.value()
        for lane in engine.board.lanes
        for item in lane.pending
        for _, records in item
        for r in records
    ]
    assert queued == [b"mine"]
    assert engine.board.in_flight == 2
