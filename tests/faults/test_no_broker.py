"""No broker at start-up: a clear error naming the brokers within its bound, never a hang.

The bounds are README's promises (``connect_timeout`` for ``Queue.start()``,
``delivery_timeout`` for a push, the ``timeout`` given to ``flush``/``close``),
each with 1.5 s of slack: librdkafka looks for timed-out messages once a second,
and the machine may be busy. Nothing listens on the port.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import pytest

from zeroqueue import (
    BrokerUnavailableError,
    DeliveryError,
    KqConf,
    Pusher,
    PushTimeoutError,
    Queue,
)
from zeroqueue._process import free_port

SLACK = 1.5


@pytest.fixture
def address() -> str:
    return f"127.0.0.1:{free_port()}"


@contextmanager
def within(bound: float) -> Iterator[None]:
    started = time.monotonic()
    yield
    elapsed = time.monotonic() - started
    assert elapsed < bound + SLACK, f"took {elapsed:.1f}s; the bound is {bound}s"


def test_queue_start_raises_within_connect_timeout(address: str, group: str) -> None:
    queue = Queue(
        KqConf(Brokers=[address], Group=group, Topic="t"), lambda k, v: None, connect_timeout=2.0
    )
    with within(2.0), pytest.raises(BrokerUnavailableError) as caught:
        queue.start()
    assert f"Brokers=['{address}']" in str(caught.value)
    assert "Connection refused" in str(caught.value)


@pytest.mark.parametrize(
    ("case", "bound"),
    [
        ("flush after delivery_timeout", 2.0),
        ("sync push after delivery_timeout", 2.0),
        ("flush(timeout)", 1.0),
        ("close(timeout)", 1.0),
    ],
)
def test_a_push_raises_within_its_bound(address: str, case: str, bound: float) -> None:
    pusher, act, error = _case(address, case)
    try:
        with within(bound), pytest.raises(error) as caught:
            act(pusher)
        # the error quotes what the client saw: the broker it could not reach
        assert f"{address} failed: Connection refused" in str(caught.value)
    finally:
        with contextlib.suppress(DeliveryError):  # what it still held, dropped
            pusher.close(0)


def _case(address: str, case: str) -> tuple[Pusher, Callable[[Pusher], object], type[Exception]]:
    if case == "flush after delivery_timeout":
        pusher = Pusher([address], "t", delivery_timeout=2.0)
        pusher.push_with_key("k", "v")
        return pusher, lambda p: p.flush(), DeliveryError
    if case == "sync push after delivery_timeout":
        pusher = Pusher([address], "t", sync_push=True, delivery_timeout=2.0)
        return pusher, lambda p: p.push_with_key("k", "v"), DeliveryError
    # the defaults: delivery_timeout (120 s) is longer than the caller's patience
    pusher = Pusher([address], "t")
    pusher.push_with_key("k", "v")
    if case == "flush(timeout)":
        return pusher, lambda p: p.flush(1.0), PushTimeoutError
    return pusher, lambda p: p.close(1.0), DeliveryError
