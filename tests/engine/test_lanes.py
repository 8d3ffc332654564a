"""Routing to key lanes and the work board's bookkeeping."""

from __future__ import annotations

import pytest
from confluent_kafka import Message as KafkaMessage

from zeroqueue.engine.lanes import Router, WorkBoard, WorkItem
from zeroqueue.engine.offsets import PartitionProgress


def record(partition: int, offset: int, key: bytes | None, topic: str = "t") -> KafkaMessage:
    return KafkaMessage(topic=topic, partition=partition, offset=offset, key=key, value=b"v")


def offset_of(r: KafkaMessage) -> int:
    offset = r.offset()
    assert offset is not None
    return offset


class Progresses(dict[tuple[str, int], PartitionProgress]):
    def __call__(self, topic: str, partition: int) -> PartitionProgress:
        return self.setdefault((topic, partition), PartitionProgress(topic, partition))


def lanes_of(items: dict[int, WorkItem]) -> dict[bytes | None, set[int]]:
    """For each key, the set of lanes its records were routed to."""
    seen: dict[bytes | None, set[int]] = {}
    for lane, item in items.items():
        for _, records in item:
            for r in records:
                seen.setdefault(r.key(), set()).add(lane)
    return seen


def test_one_key_always_lands_in_one_lane_in_offset_order() -> None:
    router = Router(16, "key", False, multi_topic=False)
    batch = [record(i % 3, i, f"k{i % 7}".encode()) for i in range(300)]
    items = router.route(batch, Progresses())
    assert all(len(lanes) == 1 for lanes in lanes_of(items).values())
    for item in items.values():
        for _, records in item:
            keys = {r.key() for r in records}
            for key in keys:
                offsets = [offset_of(r) for r in records if r.key() == key]
                assert offsets == sorted(offsets)


@pytest.mark.parametrize("unordered_keyless", [False, True])
def test_a_keyed_record_is_routed_to_lane_of_key(unordered_keyless: bool) -> None:
    router = Router(16, "key", unordered_keyless, multi_topic=False)
    keys = [f"user-{i}".encode() for i in range(200)]
    items = router.route([record(0, i, key) for i, key in enumerate(keys)], Progresses())
    assert lanes_of(items) == {key: {router.lane_of_key(key)} for key in keys}


def test_keys_spread_over_several_lanes() -> None:
    router = Router(16, "key", False, multi_topic=False)
    items = router.route([record(0, i, f"user-{i}".encode()) for i in range(500)], Progresses())
    assert len(items) > 8


def test_keyless_records_keep_their_partition_lane() -> None:
    router = Router(16, "key", False, multi_topic=False)
    items = router.route([record(2, i, None) for i in range(50)], Progresses())
    assert list(items) == [router.lane_of_partition("t", 2)]


def test_unordered_keyless_records_spread_over_lanes() -> None:
    router = Router(16, "key", True, multi_topic=False)
    items = router.route([record(2, i, None) for i in range(64)], Progresses())
    assert len(items) == 16


def test_partition_ordering_puts_a_whole_partition_in_one_lane() -> None:
    router = Router(16, "partition", False, multi_topic=False)
    items = router.route([record(1, i, f"k{i}".encode()) for i in range(100)], Progresses())
    assert list(items) == [router.lane_of_partition("t", 1)]


def test_runs_become_chunks_counting_their_segments() -> None:
    # given a batch with a run of partition 0, then 1, then 0 again
    router = Router(4, "key", False, multi_topic=False)
    progresses = Progresses()
    batch = (
        [record(0, i, f"a{i}".encode()) for i in range(10)]
        + [record(1, i, b"b") for i in range(5)]
        + [record(0, i, f"a{i}".encode()) for i in range(10, 13)]
    )
    items = router.route(batch, progresses)
    segments = [segment for item in items.values() for segment in item]
    chunks = {id(chunk): chunk for chunk, _ in segments}
    # then three chunks exist, each counting the segments cut from it
    assert sorted(c.last_offset for c in chunks.values()) == [4, 9, 12]
    for chunk in chunks.values():
        assert chunk.remaining == sum(1 for c, _ in segments if c is chunk)
    assert sum(len(records) for _, records in segments) == len(batch)
    assert progresses[("t", 0)].in_flight_messages == 13


def test_multi_topic_runs_split_by_topic() -> None:
    router = Router(4, "key", False, multi_topic=True)
    progresses = Progresses()
    batch = [record(0, 0, b"k", "a"), record(0, 0, b"k", "b"), record(0, 1, b"k", "b")]
    router.route(batch, progresses)
    assert progresses[("a", 0)].in_flight_messages == 1
    assert progresses[("b", 0)].in_flight_messages == 2


def test_work_board_schedules_a_lane_once_and_counts_in_flight() -> None:
    board = WorkBoard(4)
    router = Router(4, "partition", False, multi_topic=False)
    progresses = Progresses()
    first = router.route([record(0, i, None) for i in range(3)], progresses)
    second = router.route([record(0, i, None) for i in range(3, 5)], progresses)
    woken = board.post(first, 3)
    assert len(woken) == 1
    assert board.post(second, 2) == []  # already scheduled
    assert board.in_flight == 5
    lane = woken[0]

    item = board.take(lane)
    assert item is not None
    following = board.finish(lane, item, 3)
    assert following is not None
    assert board.finish(lane, following, 2) is None
    assert not lane.scheduled
    assert board.in_flight == 0
    assert progresses[("t", 0)].commit_due() == 5


def test_drop_pending_forgets_unstarted_work() -> None:
    board = WorkBoard(2)
    router = Router(2, "partition", False, multi_topic=False)
    board.post(router.route([record(0, i, None) for i in range(7)], Progresses()), 7)
    assert board.drop_pending() == 7
    assert board.in_flight == 0


def test_router_needs_a_lane() -> None:
    with pytest.raises(ValueError, match="lane_count"):
        Router(0, "key", False)
