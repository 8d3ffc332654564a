"""Pusher and AsyncPusher: push messages to one Kafka topic, batched, never silently lost."""

from __future__ import annotations

import asyncio
import functools
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from types import TracebackType
from typing import TYPE_CHECKING, Any

from confluent_kafka import KafkaError, KafkaException
from confluent_kafka import Message as KafkaMessage
from typing_extensions import Self

from zeroqueue._kafka.settings import SaslMechanism
from zeroqueue.delay._push import DelayedPushes, delay_seconds
from zeroqueue.errors import ConfigError, PusherClosedError, PushTimeoutError
from zeroqueue.kq.config import KqConf
from zeroqueue.kq.pusher_conf import PusherConf
from zeroqueue.producer.balancer import Balancer
from zeroqueue.producer.core import ProducerCore
from zeroqueue.producer.deliver import REPORT_GRACE, deliver, produce_when_room
from zeroqueue.producer.options import (
    Acks,
    Compression,
    ErrorHandler,
    HeadersArg,
    ProducerFactory,
    PushOptions,
)
from zeroqueue.tracing import end_span, push_tracer

if TYPE_CHECKING:
    from zeroqueue.kq._fastpush import FastPush as _FastPushType

try:
    from zeroqueue.kq._fastpush import FastPush as _FastPush
except ImportError:  # built without a C compiler: the Python closures alone
    _FastPush = None  # type: ignore[assignment,misc]

__all__ = ["AsyncPusher", "Pusher"]

# produce() errors the full push_with_key handles: it waits for room or names the
# error; RuntimeError is confluent-kafka's "closed" when close() won a race.
_RETRY_IN_FULL = (BufferError, KafkaException, TypeError, RuntimeError)


class _PusherBase:
    """Options and state shared by the sync and async faces."""

    def __init__(
        self,
        brokers: Sequence[str] | str,
        topic: str,
        *,
        chunk_size: int = 1024 * 1024,
        flush_interval: float | None = None,
        sync_push: bool = False,
        allow_auto_topic_creation: bool = False,
        balancer: Balancer = "hash",
        acks: Acks = "all",
        idempotence: bool | None = None,
        compression: Compression = "none",
        max_message_bytes: int = 1024 * 1024,
        delivery_timeout: float = 120.0,
        buffer_full_timeout: float = 30.0,
        username: str = "",
        password: str = "",
        sasl_mechanism: SaslMechanism = "PLAIN",
        ca_file: str = "",
        client_id: str = "",
        error_handler: ErrorHandler | None = None,
        kafka_config: Mapping[str, Any] | None = None,
        producer_factory: ProducerFactory | None = None,
    ) -> None:
        options = PushOptions(
            chunk_size=chunk_size,
            flush_interval=flush_interval,
            sync_push=sync_push,
            allow_auto_topic_creation=allow_auto_topic_creation,
            balancer=balancer,
            acks=acks,
            idempotence=idempotence,
            compression=compression,
            max_message_bytes=max_message_bytes,
            delivery_timeout=delivery_timeout,
            buffer_full_timeout=buffer_full_timeout,
            username=username,
            password=password,
            sasl_mechanism=sasl_mechanism,
            ca_file=ca_file,
            client_id=client_id,
            error_handler=error_handler,
            kafka_config=kafka_config,
        )
        if not isinstance(topic, str) or not topic:
            raise ConfigError(f"topic: got {topic!r}; expected a non-empty topic name")
        self._core = ProducerCore(
            brokers, options, name=f"zeroqueue-pusher[{topic}]", producer_factory=producer_factory
        )
        self._topic = topic
        self._sync = options.sync_push
        self._closed = False
        self._delayed = DelayedPushes(self._core, topic)
        # Set when an OpenTelemetry SDK is there: every push then takes the full path.
        self._tracer = push_tracer(topic)
        # The hot path calls this directly: librdkafka's produce() when it picks the
        # partition itself, else the core's Python-balancer wrapper.
        self._produce: Callable[..., None] = (
            self._core.produce if self._core.sends_in_python else self._core.producer.produce
        )
        self._bind_hot_path()

    @classmethod
    def from_conf(cls, conf: PusherConf | KqConf, **options: Any) -> Self:
        """A pusher built from a config section: ``Pusher.from_conf(c.kq_pusher_conf)``.

        ``conf`` is a :class:`PusherConf`, or a :class:`KqConf` as go-zero's
        tutorial reuses for its pusher (its Brokers, Topic, Name and security
        settings are used). ``options`` are the Pusher's own, and win.
        """
        if isinstance(conf, KqConf):
            if not isinstance(conf.topic, str) or conf.topic.startswith("^"):
                raise ConfigError(f"Topic: got {conf.topic!r}; expected one topic name to push to")
            settings: dict[str, Any] = {
                "username": conf.username,
                "password": conf.password,
                "sasl_mechanism": conf.sasl_mechanism,
                "ca_file": conf.ca_file,
                "client_id": conf.name,
            }
            return cls(conf.brokers, conf.topic, **(settings | options))
        if not isinstance(conf, PusherConf):
            raise ConfigError(f"conf: got {type(conf).__name__}; expected a PusherConf or a KqConf")
        return cls(conf.brokers, conf.topic, **(conf.pusher_options() | options))

    def _bind_hot_path(self) -> None:
        """Let the face install a quicker push for the common case (see Pusher)."""

    def _unbind_hot_path(self) -> None:
        """Make the quicker push refuse, once closing begins."""

    @property
    def topic(self) -> str:
        """The topic this pusher writes to (go-queue's ``Name()``)."""
        return self._topic

    @property
    def options(self) -> PushOptions:
        """The validated options this pusher runs with."""
        return self._core.options

    def __len__(self) -> int:
        """Messages pushed but not yet acknowledged (or failed).

        Without ``sync_push`` an acknowledgement is counted when the background
        thread next serves reports, at most 0.1 s after it arrived.
        """
        return 0 if self._closed else len(self._core.producer)

    def _mark_closed(self) -> bool:
        """Flag the pusher closed; False if it already was."""
        if self._closed:
            return False
        self._closed = True
        self._produce = self._refuse_push
        self._unbind_hot_path()
        return True

    def _delayed_topic(
        self,
        key: str | bytes | None,
        headers: HeadersArg,
        delay: float | None,
        at: datetime | float | None,
    ) -> tuple[str, HeadersArg]:
        """Where a push with ``delay`` or ``at`` goes first (blocks on the first one)."""
        seconds = delay_seconds(delay, at)
        self._delayed.ensure_tiers()
        topic, planned = self._delayed.plan(key, headers, seconds)
        return topic, planned

    def _close_blocking(self, timeout: float | None) -> None:
        """Flush and release the client on this thread (either face; idempotent)."""
        if self._mark_closed():
            self._core.close(timeout)

    def _closed_error(self) -> PusherClosedError:
        return self._core.closed_error(self._topic)

    def _refuse_push(self, *args: object, **kwargs: object) -> None:
        # Stands in for produce() once closing began, for pushes that raced the flag.
        raise self._closed_error()

    def __repr__(self) -> str:
        state = "closed" if self._closed else "open"
        return f"<{type(self).__name__} topic={self._topic!r} {state}>"


class _SyncDelivery:
    """Receives the delivery report of one synchronous push, on any thread."""

    __slots__ = ("done", "error", "message")

    def __init__(self) -> None:
        self.done = threading.Event()
        self.error: KafkaError | None = None
        self.message: KafkaMessage | None = None

    def __call__(self, error: KafkaError | None, message: KafkaMessage) -> None:
        self.error, self.message = error, message
        self.done.set()


class Pusher(_PusherBase):
    """Push messages to one Kafka topic; safe to share between threads.

    Pushes are batched by librdkafka: a batch leaves when it holds ``chunk_size``
    bytes or its oldest message waited ``flush_interval`` seconds. A failed delivery
    is never only logged: it is passed to ``error_handler`` and raised by the next
    :meth:`flush` or :meth:`close` as a :class:`~zeroqueue.errors.DeliveryError`.
    With ``sync_push=True`` every push waits for the broker's acknowledgement and
    raises if it does not come.

    Args:
        brokers: ``host:port`` of one or more Kafka brokers.
        topic: The topic to push to.
        chunk_size: Bytes per batch (librdkafka ``batch.size``). Default 1 MiB.
        flush_interval: Seconds a message waits for its batch to fill
            (``linger.ms``). Default 0.005, or 0 with ``sync_push``.
        sync_push: Each push returns once the broker acknowledged it. Default False.
        allow_auto_topic_creation: Let the broker create a missing topic. Default False.
        balancer: ``"hash"`` (default: FNV-1a, same partitions as go-queue/Sarama),
            ``"murmur2"`` (Java), ``"round_robin"``, ``"least_bytes"`` or a callable
            ``(key, partition_count) -> partition``.
        acks: ``"all"`` (default), 1 or 0.
        idempotence: Idempotent producer: no duplicates or reordering on retries.
            Default on when ``acks="all"``.
        compression: ``"none"`` (default), ``"gzip"``, ``"snappy"``, ``"lz4"``, ``"zstd"``.
        max_message_bytes: Largest message accepted locally. Default 1 MiB.
        delivery_timeout: Seconds librdkafka keeps retrying a message before it
            fails it (``message.timeout.ms``). Default 120.
        buffer_full_timeout: Seconds a push waits for room when the local buffer is
            full, before raising PushTimeoutError. Default 30.
        username: SASL user name; turns SASL on.
        password: SASL password.
        sasl_mechanism: ``"PLAIN"`` (default), ``"SCRAM-SHA-256"``, ``"SCRAM-SHA-512"``.
        ca_file: PEM file of CA certificates; turns TLS on, with verification.
        client_id: Kafka client id, shown in broker logs and quotas.
        error_handler: ``(message, error)``, called on a background thread for each
            delivery that failed without ``sync_push``.
        kafka_config: Extra librdkafka settings, applied last.
        producer_factory: Builds the Kafka client from its librdkafka settings
            (``confluent_kafka.Producer`` by default); a seam for an in-memory
            stand-in in tests.

    """

    def _bind_hot_path(self) -> None:
        # librdkafka takes about 1 us to queue a 100-byte message; the Python call
        # on top of it is all a push adds. Counted with callgrind (main thread, per
        # push): raw produce() 3,674 instructions, through the closure below 4,252,
        # through the C FastPush (built from _fastpush.c where a compiler is there)
        # 3,802. So the instance gets a quick push for the common case, holding
        # produce() where closing swaps it for a refusal. Anything else (headers, a
        # full buffer, bad input, a race with close()) goes through the full method.
        # Not for sync_push, nor where a subclass overrides a push.
        cls = type(self)
        if (
            self._sync
            or self._tracer is not None
            or cls.push_with_key is not _PUSH_WITH_KEY_IN_FULL
        ):
            return
        # Each free variable costs every call a copy: only these three; the slow
        # path looks up the full method and the exception types as globals.
        produce, topic, pusher = self._produce, self._topic, self

        def push_with_key(
            key: str | bytes | None,
            value: str | bytes,
            headers: HeadersArg = None,
            *,
            delay: float | None = None,
            at: datetime | float | None = None,
        ) -> None:
            if headers is None and delay is None and at is None:
                try:
                    produce(topic, value, key)
                    return
                except _RETRY_IN_FULL:
                    pass
            _PUSH_WITH_KEY_IN_FULL(pusher, key, value, headers, delay=delay, at=at)

        def push(
            value: str | bytes, *, delay: float | None = None, at: datetime | float | None = None
        ) -> None:
            if delay is None and at is None:
                try:
                    produce(topic, value)
                    return
                except _RETRY_IN_FULL:
                    pass
            _PUSH_WITH_KEY_IN_FULL(pusher, None, value, None, delay=delay, at=at)

        for closure, method in ((push_with_key, _PUSH_WITH_KEY_IN_FULL), (push, _PUSH_IN_FULL)):
            closure.__doc__, closure.__qualname__ = method.__doc__, method.__qualname__
        quick_push_with_key: Callable[..., None] = push_with_key
        quick_push: Callable[..., None] = push
        fast_pushes: tuple[_FastPushType, ...] = ()
        if _FastPush is not None:
            # A push whose produce() raised goes straight to the full method: the
            # closure would only try produce() once more first.
            in_full = functools.partial(_PUSH_WITH_KEY_IN_FULL, pusher)
            fast_pushes = (
                _FastPush(produce, topic, push_with_key, in_full, _RETRY_IN_FULL, True),
                _FastPush(
                    produce, topic, push, functools.partial(in_full, None), _RETRY_IN_FULL, False
                ),
            )
            quick_push_with_key = functools.update_wrapper(fast_pushes[0], push_with_key)
            quick_push = functools.update_wrapper(fast_pushes[1], push)

        def unbind() -> None:
            nonlocal produce
            produce = pusher._refuse_push
            for fast_push in fast_pushes:
                fast_push.produce = produce

        self.push_with_key = quick_push_with_key  # type: ignore[method-assign]
        if cls.push is _PUSH_IN_FULL:
            self.push = quick_push  # type: ignore[method-assign]
        self._unbind_hot_path = unbind  # type: ignore[method-assign]

    def push(
        self, value: str | bytes, *, delay: float | None = None, at: datetime | float | None = None
    ) -> None:
        """Push ``value`` without a key (any partition).

        With ``delay`` (seconds) or ``at`` (a datetime, or a Unix time) it reaches
        the topic's consumers once due, no earlier: it waits in the topic's delay
        tiers, which the first delayed push creates and any zeroqueue Queue of the
        topic releases (see README, "Delayed messages").

        Raises:
            PusherClosedError: the pusher is closed.
            InvalidMessageError: ``value`` is not str or bytes.
            MessageTooLargeError: the message exceeds ``max_message_bytes``.
            PushTimeoutError: the local buffer stayed full for ``buffer_full_timeout``.
            DeliveryError: with ``sync_push``, the broker did not acknowledge it.
            InvalidDelayError: ``delay`` below 0, ``at`` in the past, or both given.

        """
        if delay is None and at is None:
            # A subclass may override push_with_key without the delay options.
            self.push_with_key(None, value)
        else:
            self.push_with_key(None, value, delay=delay, at=at)

    def push_with_key(
        self,
        key: str | bytes | None,
        value: str | bytes,
        headers: HeadersArg = None,
        *,
        delay: float | None = None,
        at: datetime | float | None = None,
    ) -> None:
        """Push ``value`` under ``key``: messages of one key keep their order.

        ``delay`` and ``at`` as for :meth:`push`. Raises the same errors as :meth:`push`.
        """
        if self._tracer is None:
            self._push_in_full(key, value, headers, delay, at)
            return
        span, traced = self._tracer.start(key, headers, delay)
        try:
            self._push_in_full(key, value, traced, delay, at)
        except BaseException as error:
            end_span(span, error)
            raise
        end_span(span)

    def _push_in_full(
        self,
        key: str | bytes | None,
        value: str | bytes,
        headers: HeadersArg,
        delay: float | None,
        at: datetime | float | None,
    ) -> None:
        if self._closed:
            raise self._closed_error()
        topic = self._topic
        if delay is not None or at is not None:
            topic, headers = self._delayed_topic(key, headers, delay, at)
        if self._sync:
            self._push_and_wait(topic, key, value, headers)
            return
        try:
            if headers is None:
                self._produce(topic, value, key)
            else:
                self._produce(topic, value, key, headers=headers)
        except BufferError:
            self._push_when_room(topic, key, value, headers)
        except (KafkaException, TypeError) as exc:
            raise self._core.push_error(exc, topic, key, value) from exc
        except RuntimeError as exc:
            if not self._closed:
                raise
            # close() released the client after this push found the pusher open.
            raise self._closed_error() from exc

    def _push_when_room(
        self,
        topic: str,
        key: str | bytes | None,
        value: str | bytes,
        headers: HeadersArg,
        on_delivery: _SyncDelivery | None = None,
    ) -> None:
        core = self._core
        deadline = core.room_deadline()
        while not core.try_produce(topic, key, value, headers, on_delivery=on_delivery):
            if time.monotonic() >= deadline:
                raise core.buffer_full_error(topic)
            core.wait_for_room()

    def _push_and_wait(
        self, topic: str, key: str | bytes | None, value: str | bytes, headers: HeadersArg
    ) -> None:
        delivery = _SyncDelivery()
        self._push_when_room(topic, key, value, headers, delivery)
        if not delivery.done.wait(self._core.options.delivery_timeout + REPORT_GRACE):
            raise PushTimeoutError(
                f"no delivery report for a message to topic {topic!r} within "
                f"{self._core.options.delivery_timeout + REPORT_GRACE}s"
            )
        if delivery.error is not None:
            assert delivery.message is not None
            raise self._core.delivery_error(delivery.error, delivery.message)

    def flush(self, timeout: float | None = None) -> None:
        """Wait until every pushed message is acknowledged; raise what failed meanwhile.

        Raises:
            DeliveryError: messages failed since the last flush (how many and why).
            PushTimeoutError: messages were still in flight after ``timeout`` seconds.

        """
        if self._closed:
            raise self._closed_error()
        self._core.flush(timeout)

    def close(self, timeout: float | None = None) -> None:
        """Flush, then release the client; later pushes raise PusherClosedError.

        Raises what :meth:`flush` raises; the client is released either way.
        """
        self._close_blocking(timeout)

    def __enter__(self) -> Pusher:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


# The methods as defined above, to tell an override (a subclass's, or a test's patch
# of the class) from them: an overridden push gets no closure.
_PUSH_IN_FULL = Pusher.push
_PUSH_WITH_KEY_IN_FULL = Pusher.push_with_key


class AsyncPusher(_PusherBase):
    """The asyncio face of :class:`Pusher`: same options, same guarantees.

    ``await pusher.push(value)`` returns as soon as the message is queued (or, with
    ``sync_push``, once the broker acknowledged it) without blocking the event loop.
    """

    __doc__ = (__doc__ or "") + "\n    Options: see :class:`Pusher`.\n"

    async def push(
        self, value: str | bytes, *, delay: float | None = None, at: datetime | float | None = None
    ) -> None:
        """Push ``value`` without a key; ``delay``/``at`` and errors as :meth:`Pusher.push`."""
        if delay is None and at is None:
            await self.push_with_key(None, value)
        else:
            await self.push_with_key(None, value, delay=delay, at=at)

    async def push_with_key(
        self,
        key: str | bytes | None,
        value: str | bytes,
        headers: HeadersArg = None,
        *,
        delay: float | None = None,
        at: datetime | float | None = None,
    ) -> None:
        """Push ``value`` under ``key``; ``delay``/``at`` and errors as :meth:`Pusher.push`."""
        if self._tracer is None:
            await self._push_in_full(key, value, headers, delay, at)
            return
        span, traced = self._tracer.start(key, headers, delay)
        try:
            await self._push_in_full(key, value, traced, delay, at)
        except BaseException as error:
            end_span(span, error)
            raise
        end_span(span)

    async def _push_in_full(
        self,
        key: str | bytes | None,
        value: str | bytes,
        headers: HeadersArg,
        delay: float | None,
        at: datetime | float | None,
    ) -> None:
        if self._closed:
            raise self._closed_error()
        core, topic = self._core, self._topic
        if delay is not None or at is not None:
            seconds = delay_seconds(delay, at)
            if not self._delayed.tiers_ready or core.needs_partition_count(topic):
                # The first delayed push creates the tiers: not on the loop.
                await asyncio.to_thread(self._delayed_topic, key, None, delay, at)
            topic, headers = self._delayed.plan(key, headers, seconds)
        if core.needs_partition_count(topic):
            # A Python balancer's first push reads the topic's metadata: not on the loop.
            await asyncio.to_thread(core.partition_count, topic)
        if self._sync:
            await deliver(core, topic, key, value, headers)
            return
        try:
            if headers is None:
                self._produce(topic, value, key)
            else:
                self._produce(topic, value, key, headers=headers)
        except BufferError:
            await produce_when_room(core, topic, key, value, headers)
        except (KafkaException, TypeError) as exc:
            raise core.push_error(exc, topic, key, value) from exc
        except RuntimeError as exc:
            if not self._closed:
                raise
            # close() released the client after this push found the pusher open.
            raise self._closed_error() from exc

    async def flush(self, timeout: float | None = None) -> None:
        """Wait (without blocking the loop) until every message is acknowledged.

        Raises like :meth:`Pusher.flush`.
        """
        if self._closed:
            raise self._closed_error()
        await asyncio.to_thread(self._core.flush, timeout)

    async def close(self, timeout: float | None = None) -> None:
        """Flush, then release the client; raises like :meth:`Pusher.close`."""
        await asyncio.to_thread(self._close_blocking, timeout)

    async def __aenter__(self) -> AsyncPusher:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()
