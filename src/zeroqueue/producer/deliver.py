"""Push one message from asyncio and await the broker's acknowledgement."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable, Coroutine
from typing import Any

from confluent_kafka import KafkaError
from confluent_kafka import Message as KafkaMessage

from zeroqueue.errors import PushTimeoutError
from zeroqueue.producer.core import ProducerCore
from zeroqueue.producer.options import HeadersArg

__all__ = ["REPORT_GRACE", "deliver", "produce_when_room", "send"]

# A delivery report comes within delivery_timeout; this much more before giving up on it.
REPORT_GRACE = 5.0


async def produce_when_room(
    core: ProducerCore,
    topic: str,
    key: str | bytes | None,
    value: str | bytes | None,
    headers: HeadersArg,
    *,
    on_delivery: Callable[[KafkaError | None, KafkaMessage], None] | None = None,
    partition: int | None = None,
) -> None:
    """Queue one message, waiting (without blocking the loop) while the buffer is full."""
    deadline = core.room_deadline()
    while not core.try_produce(
        topic, key, value, headers, on_delivery=on_delivery, partition=partition
    ):
        if time.monotonic() >= deadline:
            raise core.buffer_full_error(topic)
        await asyncio.sleep(0.005)


async def deliver(
    core: ProducerCore,
    topic: str,
    key: str | bytes | None,
    value: str | bytes | None,
    headers: HeadersArg = None,
    *,
    partition: int | None = None,
) -> None:
    """Push one message and return once the broker acknowledged it.

    Raises:
        PushTimeoutError: no report came within the delivery timeout (and a grace).
        DeliveryError: the broker did not take it.
    """
    acknowledged = await send(core, topic, key, value, headers, partition=partition)
    await acknowledged


async def send(
    core: ProducerCore,
    topic: str,
    key: str | bytes | None,
    value: str | bytes | None,
    headers: HeadersArg = None,
    *,
    partition: int | None = None,
) -> Coroutine[Any, Any, None]:
    """Queue one message; return what to await for the broker's acknowledgement.

    Several sent before any is awaited share the client's batches and keep their
    order per partition (the producer is idempotent): :func:`deliver` for many
    at once. The returned coroutine must be awaited; it raises as deliver does.
    """
    loop = asyncio.get_running_loop()
    report: asyncio.Future[tuple[KafkaError | None, KafkaMessage]] = loop.create_future()

    def on_delivery(error: KafkaError | None, message: KafkaMessage) -> None:
        # Runs on the delivery-report thread: hand the verdict to the loop, unless
        # the loop is gone (the push's caller with it): nobody is left to tell.
        with contextlib.suppress(RuntimeError):
            loop.call_soon_threadsafe(_resolve, report, error, message)

    await produce_when_room(
        core, topic, key, value, headers, on_delivery=on_delivery, partition=partition
    )
    return _acknowledged(core, topic, report)


async def _acknowledged(
    core: ProducerCore,
    topic: str,
    report: asyncio.Future[tuple[KafkaError | None, KafkaMessage]],
) -> None:
    wait = core.options.delivery_timeout + REPORT_GRACE
    try:
        error, message = await asyncio.wait_for(report, wait)
    except asyncio.TimeoutError:
        raise PushTimeoutError(
            f"no delivery report for a message to topic {topic!r} within {wait}s"
        ) from None
    if error is not None:
        # Naming a too-large message's limit may ask the cluster: not on the loop.
        raise await asyncio.to_thread(core.delivery_error, error, message)


def _resolve(
    report: asyncio.Future[tuple[KafkaError | None, KafkaMessage]],
    error: KafkaError | None,
    message: KafkaMessage,
) -> None:
    if not report.done():
        report.set_result((error, message))
