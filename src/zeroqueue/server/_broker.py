"""Broker: publish typed messages through a codec, kratos-transport's ``Broker.Publish``."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from zeroqueue.codec import CONTENT_TYPE_HEADER, Codec, get_codec
from zeroqueue.errors import InvalidMessageError, PusherClosedError
from zeroqueue.kq.pusher import AsyncPusher, Pusher
from zeroqueue.producer.options import HeadersArg

__all__ = ["Broker"]


class Broker:
    """Publishes Python values (pydantic models, dataclasses, dicts, ...) to any topic.

    Each value is encoded by the broker's codec (or the one a publish names) and
    sent with a ``content-type`` header naming it, through one
    :class:`~zeroqueue.Pusher` per topic (one :class:`~zeroqueue.AsyncPusher`
    for :meth:`publish_async`), made on first use: batching, delivery errors,
    balancers and delays are the Pusher's. Safe to share between threads.

    Args:
        brokers: ``host:port`` of one or more Kafka brokers.
        codec: The default codec: ``"json"`` (default), ``"msgpack"``,
            ``"protobuf"``, ``"raw"``, a registered name, or a Codec.
        pusher_options: Options for every Pusher (``balancer``, ``sync_push``,
            ``username``, ``kafka_config``, ...): see :class:`~zeroqueue.Pusher`.
    """

    def __init__(
        self, brokers: Sequence[str] | str, *, codec: str | Codec = "json", **pusher_options: Any
    ) -> None:
        self.brokers = brokers
        self.codec = get_codec(codec)
        self._options = pusher_options
        self._pushers: dict[str, Pusher] = {}
        self._async_pushers: dict[str, AsyncPusher] = {}
        self._lock = threading.Lock()
        self._closed = False

    def publish(
        self,
        topic: str,
        message: Any,
        *,
        key: str | bytes | None = None,
        headers: HeadersArg = None,
        codec: str | Codec | None = None,
        delay: float | None = None,
        at: datetime | float | None = None,
    ) -> None:
        """Encode ``message`` and push it to ``topic`` (``delay``/``at`` as Pusher.push).

        Raises:
            InvalidMessageError: the codec cannot encode ``message``.
            ConfigError: ``codec`` names no codec.
            PushError: what :meth:`Pusher.push_with_key` raises.
        """
        value, sent = self._encoded(topic, message, headers, codec)
        pusher = self._pusher(topic)
        if delay is None and at is None:
            pusher.push_with_key(key, value, sent)
        else:
            pusher.push_with_key(key, value, sent, delay=delay, at=at)

    async def publish_async(
        self,
        topic: str,
        message: Any,
        *,
        key: str | bytes | None = None,
        headers: HeadersArg = None,
        codec: str | Codec | None = None,
        delay: float | None = None,
        at: datetime | float | None = None,
    ) -> None:
        """:meth:`publish` without blocking the event loop (through an AsyncPusher)."""
        value, sent = self._encoded(topic, message, headers, codec)
        pusher = self._async_pushers.get(topic)
        if pusher is None:
            # Making a client may resolve the brokers' addresses: not on the loop.
            pusher = await asyncio.to_thread(self._async_pusher, topic)
        if delay is None and at is None:
            await pusher.push_with_key(key, value, sent)
        else:
            await pusher.push_with_key(key, value, sent, delay=delay, at=at)

    def flush(self, timeout: float | None = None) -> None:
        """Wait until every published message is acknowledged (raises as Pusher.flush)."""
        for pusher in list(self._pushers.values()):
            pusher.flush(timeout)

    def close(self, timeout: float | None = None) -> None:
        """Deliver what is pending and release every client (a ServiceGroup closer).

        Raises the first error a Pusher's close raised, after closing them all.
        """
        with self._lock:
            self._closed = True
            pushers: list[Pusher | AsyncPusher] = [
                *self._pushers.values(),
                *self._async_pushers.values(),
            ]
        errors: list[BaseException] = []
        for pusher in pushers:
            try:
                pusher._close_blocking(timeout)
            except Exception as error:
                errors.append(error)
        if errors:
            raise errors[0]

    async def aclose(self, timeout: float | None = None) -> None:
        """:meth:`close` without blocking the event loop."""
        await asyncio.to_thread(self.close, timeout)

    def __enter__(self) -> Broker:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # -- inside ----------------------------------------------------------------------

    def _encoded(
        self, topic: str, message: Any, headers: HeadersArg, codec: str | Codec | None
    ) -> tuple[bytes, list[tuple[str, str | bytes | None]]]:
        chosen = self.codec if codec is None else get_codec(codec)
        try:
            value = chosen.encode(message)
        except Exception as error:
            raise InvalidMessageError(
                f"message for topic {topic!r}: a {type(message).__name__} cannot be encoded"
                f" with codec {chosen.name!r}: {error}"
            ) from error
        pairs: list[tuple[str, str | bytes | None]] = []
        if headers is not None:
            pairs = list(headers.items() if isinstance(headers, Mapping) else headers)
        if not any(name.lower() == CONTENT_TYPE_HEADER for name, _ in pairs):
            pairs.append((CONTENT_TYPE_HEADER, chosen.content_type))
        return value, pairs

    def _pusher(self, topic: str) -> Pusher:
        pusher = self._pushers.get(topic)
        if pusher is None:
            with self._lock:
                pusher = self._pushers.get(topic)
                if pusher is None:
                    self._check_open()
                    pusher = self._pushers[topic] = Pusher(self.brokers, topic, **self._options)
        return pusher

    def _async_pusher(self, topic: str) -> AsyncPusher:
        with self._lock:
            pusher = self._async_pushers.get(topic)
            if pusher is None:
                self._check_open()
                pusher = AsyncPusher(self.brokers, topic, **self._options)
                self._async_pushers[topic] = pusher
        return pusher

    def _check_open(self) -> None:
        if self._closed:
            raise PusherClosedError(
                "the broker is closed (close() was called, or the Server holding it stopped);"
                " publish while it is open"
            )
