"""Server: typed subscribers, each a Queue, served together (kratos-transport's Server)."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from zeroqueue.codec import Codec, get_codec
from zeroqueue.engine.conn import ABORT_GRACE
from zeroqueue.errors import ConfigError
from zeroqueue.kq.config import KqConf
from zeroqueue.kq.queue import Queue
from zeroqueue.retry import RetryConf
from zeroqueue.server._broker import Broker
from zeroqueue.server._typed import typed_handler
from zeroqueue.service import ServiceGroup

__all__ = ["Server", "Subscription"]

F = TypeVar("F", bound=Callable[..., Any])


@dataclass(frozen=True)
class Subscription:
    """One subscriber: its topic, group, codec, the handler as written, and its Queue."""

    topic: str
    group: str
    codec: Codec
    handler: Callable[..., Any]
    queue: Queue


class Server:
    """Subscribers with typed handlers, served together; publishes through :attr:`broker`.

    Each subscriber is a :class:`~zeroqueue.Queue` of its topic and group (per-key
    order, at-least-once commits, retries and dead letters as configured) whose
    handler gets the value decoded into its parameter's type. The server is a
    service: :meth:`start` runs every subscriber until :meth:`stop` (or SIGINT /
    SIGTERM on the main thread), then closes the broker; add it to a
    :class:`~zeroqueue.service.ServiceGroup` beside an HTTP server.

    Args:
        brokers: ``host:port`` of one or more Kafka brokers.
        group: The default consumer group of subscribers.
        codec: The default codec (``"json"``): how values without a content-type
            header are decoded, and how :meth:`publish` encodes.
        settings: KqConf keys every subscriber shares (``Username``,
            ``Password``, ``CaFile``, ``Offset``, ``Processors``, ...).
        handle_signals: On the main thread, SIGINT/SIGTERM stop the server.
        grace: Seconds each subscriber gets to drain and commit when stopping.
        pusher_options: Options of the broker's Pushers (see :class:`Broker`).
    """

    def __init__(
        self,
        brokers: Sequence[str] | str,
        *,
        group: str = "",
        codec: str | Codec = "json",
        settings: Mapping[str, Any] | None = None,
        handle_signals: bool = True,
        grace: float = 30.0,
        **pusher_options: Any,
    ) -> None:
        self.brokers = [brokers] if isinstance(brokers, str) else list(brokers)
        self.group = group
        self.codec = get_codec(codec)
        self.settings = dict(settings or {})
        self.handle_signals = handle_signals
        self.grace = grace
        # Checked now (a typo fails here, not at start), and the Pushers reach the
        # cluster the same way as the subscribers (SASL, TLS).
        shared = KqConf.from_mapping(
            {**self.settings, "Brokers": self.brokers, "Group": group or "-", "Topic": "-"},
            source="Server settings",
        )
        pusher_options = shared.security_options() | pusher_options
        self.broker = Broker(self.brokers, codec=self.codec, **pusher_options)
        self.subscriptions: list[Subscription] = []
        self._lock = threading.Lock()
        self._group: ServiceGroup | None = None
        self._stop_requested = False

    # -- subscribing ---------------------------------------------------------------

    def subscriber(
        self,
        topic: str,
        *,
        group: str | None = None,
        codec: str | Codec | None = None,
        retry: RetryConf | None = None,
        settings: Mapping[str, Any] | None = None,
        **queue_options: Any,
    ) -> Callable[[F], F]:
        """Decorate a handler to subscribe it: ``@server.subscriber("orders", group="billing")``.

        The handler takes the payload (annotated with the type to decode into)
        and optionally the :class:`~zeroqueue.Message`; see :meth:`subscribe`.
        """

        def register(handler: F) -> F:
            self.subscribe(
                topic,
                handler,
                group=group,
                codec=codec,
                retry=retry,
                settings=settings,
                **queue_options,
            )
            return handler

        return register

    def subscribe(
        self,
        topic: str,
        handler: Callable[..., Any],
        *,
        group: str | None = None,
        codec: str | Codec | None = None,
        retry: RetryConf | None = None,
        settings: Mapping[str, Any] | None = None,
        **queue_options: Any,
    ) -> Subscription:
        """Subscribe ``handler`` to ``topic`` in ``group`` (the server's by default).

        Args:
            topic: The topic (one name, or a ``^regex`` pattern).
            handler: ``(payload)`` or ``(payload, message)``, sync or ``async def``;
                the payload's annotation picks the decoding (a pydantic model, a
                dataclass, ``dict``, ``str``, ``bytes``, or ``Message``).
            group: The consumer group; the server's when not given.
            codec: How values without a content-type header are decoded.
            retry: Retries, retry topics and the dead-letter topic (a value that
                does not decode goes straight to the dead-letter topic).
            settings: KqConf keys for this subscriber (over the server's).
            queue_options: Options of its :class:`~zeroqueue.Queue`
                (``ordering``, ``shutdown_timeout``, ``metrics``, ...).

        Raises:
            ConfigError: no group, a bad setting, or a handler of neither shape.
        """
        chosen_group = self.group if group is None else group
        if not chosen_group:
            raise ConfigError(
                f"group: subscriber of {topic!r} has none; expected Server(group=...) or"
                " subscribe(..., group=...)"
            )
        chosen_codec = self.codec if codec is None else get_codec(codec)
        conf = KqConf.from_mapping(
            {
                **self.settings,
                **(settings or {}),
                "Brokers": self.brokers,
                "Group": chosen_group,
                "Topic": topic,
            },
            source=f"subscriber {topic!r}",
        )
        # A Queue's stop takes its shutdown_timeout, then ABORT_GRACE to let go: both
        # within the server's grace, or the group gives up on it and closes the broker.
        queue_options.setdefault(
            "shutdown_timeout", max(0.5, min(10.0, self.grace - ABORT_GRACE - 1.0))
        )
        queue = Queue(
            conf,
            typed_handler(handler, chosen_codec),
            retry=retry,
            handle_signals=False,
            **queue_options,
        )
        subscription = Subscription(topic, chosen_group, chosen_codec, handler, queue)
        with self._lock:
            if self._group is not None:
                raise RuntimeError("subscribers are added before start()")
            self.subscriptions.append(subscription)
        return subscription

    # -- publishing ----------------------------------------------------------------

    def publish(self, topic: str, message: Any, **options: Any) -> None:
        """:meth:`Broker.publish` on the server's broker."""
        self.broker.publish(topic, message, **options)

    async def publish_async(self, topic: str, message: Any, **options: Any) -> None:
        """:meth:`Broker.publish_async` on the server's broker."""
        await self.broker.publish_async(topic, message, **options)

    # -- serving -------------------------------------------------------------------

    def start(self) -> None:
        """Run every subscriber until :meth:`stop`; then close the broker.

        Raises:
            ServiceError: a subscriber failed (a broker that stayed down, a bug);
                the others were stopped first.
        """
        group = ServiceGroup(grace=self.grace, handle_signals=self.handle_signals)
        for subscription in self.subscriptions:
            group.add(
                subscription.queue, name=f"subscriber {subscription.topic}/{subscription.group}"
            )
        group.add_closer(self.broker, name="broker")
        with self._lock:
            if self._group is not None:
                raise RuntimeError("Server.start() called twice")
            self._group = group
            stop_now = self._stop_requested
        if stop_now:
            group.stop()
        group.start()

    def stop(self) -> None:
        """Ask :meth:`start` to stop every subscriber and return; safe from any thread."""
        with self._lock:
            self._stop_requested = True
            group = self._group
        if group is not None:
            group.stop()

    @contextlib.contextmanager
    def running(self) -> Iterator[Server]:
        """Run :meth:`start` on a background thread for the ``with`` block; stop on exit."""
        errors: list[BaseException] = []

        def run() -> None:
            try:
                self.start()
            except BaseException as error:
                errors.append(error)

        thread = threading.Thread(target=run, name="zeroqueue-server")
        thread.start()
        try:
            yield self
        finally:
            self.stop()
            thread.join(self.grace * max(1, len(self.subscriptions)) + 15)
        if errors:
            raise errors[0]
