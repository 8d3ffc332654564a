"""The Python contenders of bench.peer, each written as its documentation shows, at its defaults.

Every push function sends ``load.count`` keyed 100-byte values to a topic that
exists, and returns messages per second from the first send until the last one
is acknowledged; each pushes and flushes one message first, untimed, so
connecting and reading metadata are not measured.

Every consumer starter subscribes a fresh group to a topic, from its start, and
calls ``handle(key, value)`` (both ``str``) for each message, on a background
thread or event loop, until its :class:`Background` is stopped. On the embedded
broker the session timeout (and the heartbeat with it) is the one setting
changed from each library's defaults: Tansu holds a JoinGroup for half of it,
and joining is not what is measured. Apache Kafka answers at once (the embedded
KafkaBroker has no initial rebalance delay): there every default stays.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable, Coroutine, Sequence
from dataclasses import dataclass
from typing import Any

from confluent_kafka import Consumer, Producer

from bench._common import unique
from zeroqueue import AsyncPusher, KqConf, Pusher, Queue

__all__ = [
    "Background",
    "Handler",
    "Load",
    "Starter",
    "consume_aiokafka",
    "consume_faststream",
    "consume_raw",
    "consume_zeroqueue",
    "consume_zeroqueue_async",
    "push_aiokafka",
    "push_faststream",
    "push_raw",
    "push_zeroqueue",
    "push_zeroqueue_async",
]

Handler = Callable[[str, str], None]
# Longest wait for a flush, a gather of acknowledgements or a consumer's stop.
FLUSH_TIMEOUT = 120.0
STOP_TIMEOUT = 30.0


@dataclass(frozen=True)
class Load:
    """What one push run sends: ``count`` values, keyed round-robin over ``keys``."""

    topic: str
    count: int
    keys: Sequence[str]
    value: bytes


# -- push ------------------------------------------------------------------------------


def push_raw(brokers: str, load: Load) -> float:
    """confluent-kafka's Producer at librdkafka's defaults; on BufferError, poll and retry."""
    producer = Producer({"bootstrap.servers": brokers})
    produce, poll = producer.produce, producer.poll
    topic, keys, value, key_count = load.topic, load.keys, load.value, len(load.keys)
    produce(topic, value, keys[0])
    producer.flush(FLUSH_TIMEOUT)
    started = time.perf_counter()
    for i in range(load.count):
        key = keys[i % key_count]
        while True:
            try:
                produce(topic, value, key)
                break
            except BufferError:
                poll(0.005)
    if producer.flush(FLUSH_TIMEOUT):
        raise RuntimeError(f"messages still in flight after {FLUSH_TIMEOUT:.0f}s")
    rate = load.count / (time.perf_counter() - started)
    producer.close()
    return rate


def push_zeroqueue(brokers: str, load: Load) -> float:
    """``Pusher.push_with_key`` at zeroqueue's defaults, then ``flush()``."""
    with Pusher([brokers], load.topic) as pusher:
        push, keys, value, key_count = pusher.push_with_key, load.keys, load.value, len(load.keys)
        push(keys[0], value)
        pusher.flush()
        started = time.perf_counter()
        for i in range(load.count):
            push(keys[i % key_count], value)
        pusher.flush(FLUSH_TIMEOUT)
        return load.count / (time.perf_counter() - started)


def push_zeroqueue_async(brokers: str, load: Load) -> float:
    """``await AsyncPusher.push_with_key`` at zeroqueue's defaults, then ``await flush()``."""

    async def run() -> float:
        async with AsyncPusher([brokers], load.topic) as pusher:
            push, keys, value = pusher.push_with_key, load.keys, load.value
            key_count = len(keys)
            await push(keys[0], value)
            await pusher.flush()
            started = time.perf_counter()
            for i in range(load.count):
                await push(keys[i % key_count], value)
            await pusher.flush(FLUSH_TIMEOUT)
            return load.count / (time.perf_counter() - started)

    return asyncio.run(run())


def push_aiokafka(brokers: str, load: Load) -> float:
    """AIOKafkaProducer at its defaults: ``await send()`` each, then gather the futures."""
    from aiokafka import AIOKafkaProducer  # noqa: PLC0415 - an optional extra

    keys = [key.encode() for key in load.keys]

    async def run() -> float:
        producer = AIOKafkaProducer(bootstrap_servers=brokers)
        await producer.start()
        try:
            await producer.send_and_wait(load.topic, load.value, key=keys[0])
            send, topic, value, key_count = producer.send, load.topic, load.value, len(keys)
            started = time.perf_counter()
            futures = [await send(topic, value, key=keys[i % key_count]) for i in range(load.count)]
            await asyncio.wait_for(asyncio.gather(*futures), FLUSH_TIMEOUT)
            return load.count / (time.perf_counter() - started)
        finally:
            await producer.stop()

    return asyncio.run(run())


def push_faststream(brokers: str, load: Load) -> float:
    """FastStream's ``KafkaBroker.publish(..., no_confirm=True)``, then gather the futures."""
    from faststream.kafka import KafkaBroker  # noqa: PLC0415 - an optional extra

    keys = [key.encode() for key in load.keys]

    async def run() -> float:
        async with KafkaBroker(brokers) as broker:
            await broker.publish(load.value, load.topic, key=keys[0])
            publish, topic, value, key_count = broker.publish, load.topic, load.value, len(keys)
            started = time.perf_counter()
            futures = [
                await publish(value, topic, key=keys[i % key_count], no_confirm=True)
                for i in range(load.count)
            ]
            await asyncio.wait_for(asyncio.gather(*futures), FLUSH_TIMEOUT)
            return load.count / (time.perf_counter() - started)

    return asyncio.run(run())


# -- consume -----------------------------------------------------------------------


class Background:
    """A consumer running on a thread of its own until :meth:`stop`."""

    def __init__(self, name: str, loop: Callable[[threading.Event], None]) -> None:
        self.name = name
        self.error: BaseException | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(loop,), name=name, daemon=True)
        self._thread.start()

    def _run(self, loop: Callable[[threading.Event], None]) -> None:
        try:
            loop(self._stop)
        except BaseException as exc:
            self.error = exc

    def stop(self) -> None:
        """Stop the loop and wait for it (bounded); raise what it raised."""
        self._stop.set()
        self._thread.join(STOP_TIMEOUT)
        if self._thread.is_alive():
            raise RuntimeError(f"{self.name} did not stop within {STOP_TIMEOUT:.0f}s")
        if self.error is not None:
            raise self.error


def on_loop(name: str, main: Callable[[threading.Event], Coroutine[Any, Any, None]]) -> Background:
    """A :class:`Background` running the coroutine ``main(stop)`` on an event loop of its own."""
    return Background(name, lambda stop: asyncio.run(main(stop)))


async def until(stop: threading.Event) -> None:
    """Return once ``stop`` is set (checked every 50 ms, which only the stop waits for)."""
    while not stop.is_set():
        await asyncio.sleep(0.05)


Starter = Callable[[str, str, Handler, "float | None", bool], Background]


def _session(seconds: float | None, session: str, heartbeat: str) -> dict[str, Any]:
    """Session timeout and heartbeat interval (ms) under the library's names; None: its defaults."""
    if seconds is None:
        return {}
    return {session: int(seconds * 1000), heartbeat: max(100, int(seconds * 1000) // 3)}


def consume_raw(
    brokers: str, topic: str, handle: Handler, session: float | None, batch: bool
) -> Background:
    """confluent-kafka's Consumer at librdkafka's defaults.

    For throughput (``batch``) a ``consume(500)`` loop, for latency a ``poll()``
    loop: ``consume(n, timeout)`` waits for ``n`` messages or the timeout.
    """
    consumer = Consumer(
        {
            "bootstrap.servers": brokers,
            "group.id": unique("peer-raw"),
            "auto.offset.reset": "earliest",
            **_session(session, "session.timeout.ms", "heartbeat.interval.ms"),
        }
    )
    consumer.subscribe([topic])

    def loop(stop: threading.Event) -> None:
        try:
            while not stop.is_set():
                records = consumer.consume(500, 0.1) if batch else [consumer.poll(0.1)]
                for record in records:
                    if record is None or record.error() is not None:
                        continue
                    key, value = record.key(), record.value()
                    handle(
                        "" if key is None else key.decode(), "" if value is None else value.decode()
                    )
        finally:
            consumer.close()

    return Background("raw consumer", loop)


def _queue(brokers: str, topic: str, handler: Any, session: float | None, name: str) -> Background:
    options: dict[str, Any] = {} if session is None else {"session_timeout": session}
    queue = Queue(
        KqConf(Brokers=[brokers], Group=unique("peer-zq"), Topic=topic, Offset="first"),
        handler,
        handle_signals=False,
        **options,
    )

    def loop(stop: threading.Event) -> None:
        with queue.running():
            stop.wait()

    return Background(name, loop)


def consume_zeroqueue(
    brokers: str, topic: str, handle: Handler, session: float | None, batch: bool
) -> Background:
    """A Queue at zeroqueue's defaults (Processors 8) with the sync handler itself."""
    return _queue(brokers, topic, handle, session, "zeroqueue Queue")


def consume_zeroqueue_async(
    brokers: str, topic: str, handle: Handler, session: float | None, batch: bool
) -> Background:
    """A Queue at zeroqueue's defaults with an ``async def`` handler."""

    async def handler(key: str, value: str) -> None:
        handle(key, value)

    return _queue(brokers, topic, handler, session, "zeroqueue Queue (async)")


def consume_aiokafka(
    brokers: str, topic: str, handle: Handler, session: float | None, batch: bool
) -> Background:
    """AIOKafkaConsumer at its defaults, a ``getmany()`` loop."""
    from aiokafka import AIOKafkaConsumer  # noqa: PLC0415 - an optional extra

    timeouts = _session(session, "session_timeout_ms", "heartbeat_interval_ms")

    async def main(stop: threading.Event) -> None:
        consumer = AIOKafkaConsumer(
            topic,
            bootstrap_servers=brokers,
            group_id=unique("peer-aiokafka"),
            auto_offset_reset="earliest",
            **timeouts,
        )
        await consumer.start()
        try:
            while not stop.is_set():
                batches = await consumer.getmany(timeout_ms=100)
                for records in batches.values():
                    for record in records:
                        key, value = record.key, record.value
                        handle(
                            "" if key is None else key.decode(),
                            "" if value is None else value.decode(),
                        )
        finally:
            await consumer.stop()

    return on_loop("aiokafka consumer", main)


def consume_faststream(
    brokers: str, topic: str, handle: Handler, session: float | None, batch: bool
) -> Background:
    """A FastStream subscriber at its defaults, taking the value as ``str``.

    FastStream logs every message it handles at INFO by default; that access log
    is off here (``logger=None``), so what is measured is the library, not a
    stream of log lines.
    """
    from faststream.kafka import KafkaBroker  # noqa: PLC0415 - an optional extra

    timeouts = _session(session, "session_timeout_ms", "heartbeat_interval_ms")

    async def main(stop: threading.Event) -> None:
        broker = KafkaBroker(brokers, logger=None)

        async def handler(body: str) -> None:
            handle("", body)

        broker.subscriber(
            topic, group_id=unique("peer-faststream"), auto_offset_reset="earliest", **timeouts
        )(handler)

        await broker.start()
        try:
            await until(stop)
        finally:
            await broker.stop()

    return on_loop("FastStream subscriber", main)
