"""An async handler's handle_run: a lane's run of messages at once, the rest one by one."""

from __future__ import annotations

import asyncio
from unittest.mock import AsyncMock

import pytest
from confluent_kafka import Message as KafkaMessage

from zeroqueue.engine.handlers import FailurePolicy, RunHandling, resolve_handler
from zeroqueue.engine.lanes import Router, WorkBoard
from zeroqueue.engine.offsets import PartitionProgress
from zeroqueue.engine.runner import LaneRunner
from zeroqueue.message import Message

pytestmark = pytest.mark.builds_records


def record(offset: int, key: str) -> KafkaMessage:
    return KafkaMessage(
        topic="t", partition=0, offset=offset, key=key.encode(), value=str(offset).encode()
    )


class RunHandler(RunHandling):
    """Handles runs; ``refuse_from`` says where each run stops (None: all handled)."""

    def __init__(self, refuse_from: int | None = None, raises: bool = False) -> None:
        self.refuse_from = refuse_from
        self.raises = raises
        self.runs: list[list[int]] = []
        self.one_by_one: list[int] = []

    async def __call__(self, message: Message) -> None:
        self.one_by_one.append(message.offset)

    async def handle_run(self, messages: list[Message]) -> int | None:
        self.runs.append([message.offset for message in messages])
        if self.raises:
            raise RuntimeError("the broker went away")
        return self.refuse_from


def run_lanes(handler: object, records: list[KafkaMessage]) -> PartitionProgress:
    """Route ``records`` to lanes and run every lane to the end; return the progress."""
    policy = FailurePolicy(
        force_commit=False, error_handler=None, retry_backoff=0.01, max_retry_backoff=0.01
    )
    runner = LaneRunner(WorkBoard(4), resolve_handler(handler), policy)
    progress = PartitionProgress("t", 0)
    items = Router(4, "key", False, multi_topic=False).route(records, lambda t, p: progress)
    lanes = runner.board.post(items, len(records))

    async def run_all() -> None:
        for lane in lanes:
            await runner.run_async(lane)

    asyncio.run(run_all())
    assert runner.board.in_flight == 0
    return progress


def test_each_lanes_run_comes_at_once_in_offset_order() -> None:
    handler = RunHandler()
    records = [record(offset, f"k{offset % 2}") for offset in range(6)]
    progress = run_lanes(handler, records)
    # one call per lane (the two keys may share one), each in offset order
    assert sorted(offset for run in handler.runs for offset in run) == list(range(6))
    assert all(run == sorted(run) for run in handler.runs)
    assert handler.one_by_one == []
    assert progress.commit_due() == 6


def test_what_a_run_did_not_handle_goes_one_by_one_from_where_it_stopped() -> None:
    handler = RunHandler(refuse_from=1)
    progress = run_lanes(handler, [record(offset, "k") for offset in range(4)])
    assert handler.runs == [[0, 1, 2, 3]]
    assert handler.one_by_one == [1, 2, 3]
    assert progress.commit_due() == 4


def test_a_run_that_raises_goes_one_by_one() -> None:
    handler = RunHandler(raises=True)
    progress = run_lanes(handler, [record(offset, "k") for offset in range(3)])
    assert handler.one_by_one == [0, 1, 2]
    assert progress.commit_due() == 3


def test_a_sync_handler_or_a_plain_coroutine_function_has_no_run_handler() -> None:
    class SyncWithRun:
        def __call__(self, message: Message) -> None:
            pass

        async def handle_run(self, messages: list[Message]) -> int | None:
            return None

    async def plain(message: Message) -> None:
        pass

    assert resolve_handler(SyncWithRun()).handle_run is None
    assert resolve_handler(plain).handle_run is None
    assert resolve_handler(RunHandler()).handle_run is not None


def test_a_users_own_handle_run_or_an_async_mock_is_not_a_run_handler() -> None:
    class Billing:
        def __init__(self) -> None:
            self.consumed: list[str] = []

        async def consume(self, key: str, value: str) -> None:
            self.consumed.append(value)

        async def handle_run(self, run_id: object) -> None:  # unrelated to zeroqueue
            pass

    billing = Billing()
    assert resolve_handler(billing).handle_run is None
    assert resolve_handler(AsyncMock()).handle_run is None
    progress = run_lanes(billing, [record(offset, "k") for offset in range(3)])
    assert billing.consumed == ["0", "1", "2"]
    assert progress.commit_due() == 3


@pytest.mark.parametrize("bogus", [-1, 5, True, 1.5, "1"])
def test_a_run_handler_answering_no_index_has_its_run_go_one_by_one(bogus: object) -> None:
    handler = RunHandler(refuse_from=bogus)  # type: ignore[arg-type]
    progress = run_lanes(handler, [record(offset, "k") for offset in range(4)])
    assert handler.one_by_one == [0, 1, 2, 3]
    assert progress.commit_due() == 4
