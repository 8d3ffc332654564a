"""PushOptions: every Pusher/AsyncPusher option, validated, and the types they use."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol, TypeAlias

from zeroqueue._checks import (
    check_client_id,
    check_flag,
    check_number,
    check_seconds,
    check_settings,
)
from zeroqueue._kafka.settings import SaslMechanism
from zeroqueue.errors import ConfigError, PushError
from zeroqueue.message import Message
from zeroqueue.producer.balancer import Balancer, librdkafka_partitioner

__all__ = [
    "Acks",
    "Compression",
    "ErrorHandler",
    "HeadersArg",
    "KafkaProducer",
    "ProducerFactory",
    "PushOptions",
]

_INT32_MAX = 2**31 - 1

#: Headers as given to push: a mapping or a sequence of (name, value) pairs.
HeadersArg: TypeAlias = (
    Mapping[str, str | bytes | None] | Sequence[tuple[str, str | bytes | None]] | None
)
#: ``error_handler(message, error)`` for deliveries that failed in the background.
ErrorHandler: TypeAlias = Callable[[Message, PushError], object]


class KafkaProducer(Protocol):
    """The part of ``confluent_kafka.Producer`` a ProducerCore uses (``close`` optional)."""

    def produce(self, topic: str, *args: Any, **kwargs: Any) -> None:
        """Queue one message (confluent-kafka's signature)."""

    def poll(self, timeout: float = ...) -> int:
        """Serve delivery reports and client events."""

    def flush(self, timeout: float = ...) -> int:
        """Wait for deliveries; return how many are still pending."""

    def purge(self, *args: Any, **kwargs: Any) -> None:
        """Drop queued and in-flight messages."""

    def list_topics(self, topic: str | None = None, timeout: float = ...) -> Any:
        """Cluster metadata."""

    def __len__(self) -> int:
        """Messages and events not yet served."""


#: Builds the Kafka client from its librdkafka settings: ``confluent_kafka.Producer``,
#: or a stand-in with the same methods (an in-memory broker's, for tests).
ProducerFactory: TypeAlias = Callable[[dict[str, Any]], KafkaProducer]
Acks: TypeAlias = Literal["all", 0, 1, -1]
Compression: TypeAlias = Literal["none", "gzip", "snappy", "lz4", "zstd"]

_COMPRESSIONS = ("none", "gzip", "snappy", "lz4", "zstd")

# Default linger for batching pushes; go-queue's ChunkExecutor waits 1 s, which
# holds every message back that long. librdkafka keeps batching while a request
# is in flight, so a few milliseconds reach the same batch sizes.
_DEFAULT_FLUSH_INTERVAL = 0.005


@dataclass(frozen=True)
class PushOptions:
    """Every Pusher/AsyncPusher option, validated; see the Pusher docstring."""

    chunk_size: int = 1024 * 1024
    flush_interval: float | None = None
    sync_push: bool = False
    allow_auto_topic_creation: bool = False
    balancer: Balancer = "hash"
    acks: Acks = "all"
    idempotence: bool | None = None
    compression: Compression = "none"
    max_message_bytes: int = 1024 * 1024
    delivery_timeout: float = 120.0
    buffer_full_timeout: float = 30.0
    username: str = ""
    # Out of repr(), so a Pusher's options printed in a log do not carry the password.
    password: str = field(default="", repr=False)
    sasl_mechanism: SaslMechanism = "PLAIN"
    ca_file: str = ""
    client_id: str = ""
    error_handler: ErrorHandler | None = None
    kafka_config: Mapping[str, Any] | None = None

    def __post_init__(self) -> None:
        check_flag("sync_push", self.sync_push)
        check_flag("allow_auto_topic_creation", self.allow_auto_topic_creation)
        check_flag("idempotence", self.idempotence, optional=True)
        check_settings("kafka_config", self.kafka_config)
        check_client_id("client_id", self.client_id)
        # Upper bounds are librdkafka's: past them it would refuse its own
        # property, and the error would not name ours.
        check_number(
            "chunk_size", self.chunk_size, minimum=1, maximum=_INT32_MAX, limit_of="batch.size"
        )
        check_number(
            "max_message_bytes",
            self.max_message_bytes,
            minimum=1000,
            maximum=1_000_000_000,
            limit_of="message.max.bytes",
        )
        check_number(
            "delivery_timeout",
            self.delivery_timeout,
            minimum=0.001,  # whole milliseconds, and librdkafka reads 0 as "never"
            maximum=_INT32_MAX / 1000,
            limit_of="message.timeout.ms",
        )
        check_seconds("buffer_full_timeout", self.buffer_full_timeout)
        if self.flush_interval is not None:
            check_number(
                "flush_interval",
                self.flush_interval,
                minimum=0,
                maximum=900,
                limit_of="linger.ms",
            )
        if self.linger * 1000 >= int(self.delivery_timeout * 1000):
            raise ConfigError(
                f"delivery_timeout: got {self.delivery_timeout!r} with flush_interval="
                f"{self.linger!r}; expected longer than flush_interval (a batch must be able"
                " to leave before its messages time out)"
            )
        if self.acks not in ("all", 0, 1, -1):
            raise ConfigError(f"acks: got {self.acks!r}; expected 'all', -1, 1 or 0")
        if self.compression not in _COMPRESSIONS:
            raise ConfigError(
                f"compression: got {self.compression!r}; expected one of "
                + ", ".join(repr(c) for c in _COMPRESSIONS)
            )
        if self.idempotence and self.acks not in ("all", -1):
            raise ConfigError(
                f"idempotence: got True with acks={self.acks!r}; "
                "expected acks='all' (idempotent delivery needs every replica's ack)"
            )
        librdkafka_partitioner(self.balancer)  # validates the name
        if self.error_handler is not None and not callable(self.error_handler):
            raise ConfigError(
                f"error_handler: got {self.error_handler!r}; "
                "expected a callable (message, error) or None"
            )

    @property
    def linger(self) -> float:
        """Seconds a message may wait for its batch to fill."""
        if self.flush_interval is not None:
            return self.flush_interval
        # A synchronous push waits for its own ack: do not add a linger to that wait.
        return 0.0 if self.sync_push else _DEFAULT_FLUSH_INTERVAL

    @property
    def idempotent(self) -> bool:
        """Whether the producer is idempotent: on by default when acks='all'."""
        if self.idempotence is not None:
            return self.idempotence
        return self.acks in ("all", -1)
