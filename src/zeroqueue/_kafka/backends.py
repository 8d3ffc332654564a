"""Which client a Brokers value gets: librdkafka's, or an in-memory broker's.

A Brokers entry ``memory://<name>`` names an in-memory broker of
:mod:`zeroqueue.testing`: every client zeroqueue builds for it (a Pusher's
producer, a Queue's group members, the admin calls of retries and delays) is
then that broker's, so a Pusher, a Queue or a Server built from an unchanged
config runs against it. Any other value gets confluent-kafka's clients. The
choice costs one string test when a client is built, nothing per message.

The in-memory side is imported only when such a value is first seen, so the
runtime does not depend on the test kit.
"""

from __future__ import annotations

import importlib
from collections.abc import Collection, Sequence
from typing import Any, Protocol, cast

from confluent_kafka import Consumer, Producer
from confluent_kafka.admin import AdminClient

__all__ = [
    "MEMORY_SCHEME",
    "Backend",
    "admin_client",
    "backend_for",
    "consumer",
    "is_memory",
    "producer",
]

#: The prefix of a Brokers entry that names an in-memory broker.
MEMORY_SCHEME = "memory://"
# The module that resolves memory:// names: ``broker_named(name) -> Backend``.
_PROVIDER = "zeroqueue.testing._registry"


class Backend(Protocol):
    """What an in-memory broker offers in place of confluent-kafka's clients."""

    def producer(self, settings: dict[str, Any]) -> Any:
        """A stand-in for ``confluent_kafka.Producer(settings)``."""

    def admin_client(self, settings: dict[str, Any]) -> Any:
        """A stand-in for ``confluent_kafka.admin.AdminClient(settings)``."""

    def consumer(self, settings: dict[str, Any]) -> Any:
        """A stand-in for a ``confluent_kafka.Consumer`` that reads metadata and offsets."""

    def source(
        self,
        settings: dict[str, Any],
        topics: Sequence[str],
        listener: Any,
        *,
        missing_topic_timeout: float,
        from_start: Collection[str] = (),
    ) -> Any:
        """A group member: the engine's ``Source`` (see ``zeroqueue.engine.source``)."""


def _servers(brokers: Sequence[str] | str | None) -> str:
    if brokers is None:
        return ""
    return brokers if isinstance(brokers, str) else ",".join(brokers)


def is_memory(brokers: Sequence[str] | str | None) -> bool:
    """Whether ``brokers`` (a list, or librdkafka's comma-joined string) names a memory broker."""
    return _servers(brokers).lstrip().startswith(MEMORY_SCHEME)


def backend_for(brokers: Sequence[str] | str | None) -> Backend | None:
    """The in-memory broker ``brokers`` names, or None for a real cluster."""
    servers = _servers(brokers).strip()
    if not servers.startswith(MEMORY_SCHEME):
        return None
    # One broker per value: "memory://a,memory://a" is "a"; the first entry names it.
    name = servers.split(",")[0].strip()[len(MEMORY_SCHEME) :]
    provider = importlib.import_module(_PROVIDER)
    return cast(Backend, provider.broker_named(name))


def producer(settings: dict[str, Any]) -> Any:
    """``confluent_kafka.Producer(settings)``, or the memory broker's stand-in."""
    backend = backend_for(settings.get("bootstrap.servers"))
    return Producer(settings) if backend is None else backend.producer(settings)


def admin_client(settings: dict[str, Any]) -> AdminClient:
    """``AdminClient(settings)``, or the memory broker's stand-in."""
    backend = backend_for(settings.get("bootstrap.servers"))
    if backend is None:
        return AdminClient(settings)
    return cast(AdminClient, backend.admin_client(settings))


def consumer(settings: dict[str, Any]) -> Consumer:
    """``confluent_kafka.Consumer(settings)`` (for metadata and offsets), or the stand-in."""
    backend = backend_for(settings.get("bootstrap.servers"))
    if backend is None:
        return Consumer(settings)
    return cast(Consumer, backend.consumer(settings))
