"""The releaser's handle_run against a stand-in for send(): no broker."""

from __future__ import annotations

import asyncio
import gc
import warnings
from collections.abc import Coroutine
from typing import Any

import pytest

import zeroqueue.delay._releaser as releaser_module
from zeroqueue._kafka.headers import encode_long
from zeroqueue.delay import _headers as h
from zeroqueue.delay._releaser import Releaser
from zeroqueue.message import Message
from zeroqueue.producer.options import PushOptions


def tier_message(offset: int) -> Message:
    headers: tuple[tuple[str, bytes | None], ...] = (
        (h.DUE, encode_long(1000)),
        (h.TARGET, b"orders"),
        (h.PARTITIONER, b"hash"),
        (h.HOP_DUE, encode_long(1000)),
    )
    return Message("orders.delay-1s", 0, offset, b"k", f"k-{offset}".encode(), headers)


class Partition:
    """What lands in the target partition; ``fail`` values fail their first delivery."""

    def __init__(self, fail: set[bytes] = frozenset()) -> None:  # type: ignore[assignment]
        self.log: list[str] = []
        self.fail = set(fail)

    async def send(
        self,
        core: Any,
        topic: str,
        key: Any,
        value: bytes,
        headers: Any,
        *,
        partition: int | None = None,
    ) -> Coroutine[Any, Any, None]:
        ok = value not in self.fail
        self.fail.discard(value)
        if ok:
            self.log.append(value.decode())

        async def acknowledged() -> None:
            await asyncio.sleep(0.001)
            if not ok:
                raise RuntimeError(f"{value!r} refused")

        return acknowledged()


@pytest.fixture
def releaser(monkeypatch: pytest.MonkeyPatch) -> Releaser:
    releaser = Releaser(["unused:9092"], PushOptions(sync_push=True))
    monkeypatch.setattr(releaser, "_core", lambda balancer: None)
    return releaser


def test_a_run_reports_the_first_message_not_acknowledged(
    releaser: Releaser, monkeypatch: pytest.MonkeyPatch
) -> None:
    partition = Partition(fail={b"k-1"})
    monkeypatch.setattr(releaser_module, "send", partition.send)
    left = asyncio.run(releaser.handle_run([tier_message(i) for i in range(4)]))
    assert left == 1
    # k-2 and k-3 landed before k-1 (the idempotent client leaves a gap for a
    # message that fails alone): the key's order holds for successful runs only.
    assert partition.log == ["k-0", "k-2", "k-3"]


def test_a_cancelled_run_reports_nothing_and_leaves_no_coroutine_unawaited(
    releaser: Releaser, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(releaser_module, "send", Partition().send)

    async def cancel_mid_run() -> None:
        task = asyncio.ensure_future(releaser.handle_run([tier_message(i) for i in range(4)]))
        await asyncio.sleep(0)
        await asyncio.sleep(0)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        asyncio.run(cancel_mid_run())
        gc.collect()
