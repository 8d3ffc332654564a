"""The producer engine shared by Pusher and AsyncPusher.

One confluent-kafka Producer, a background thread that serves its delivery
reports, and the bookkeeping that makes sure no delivery failure is only
logged: failures are counted, passed to ``error_handler`` and raised by the
next ``flush()``/``close()``. The sync and async faces differ only in how they
wait (a thread blocks, a coroutine awaits).
"""

from __future__ import annotations

import atexit
import logging
import threading
import time
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal, TypeAlias

from confluent_kafka import KafkaError, KafkaException, Producer
from confluent_kafka import Message as KafkaMessage

from zeroqueue._checks import check_number, check_seconds
from zeroqueue._kafka.settings import (
    KAFKA_LOGGER,
    ClientErrors,
    SaslMechanism,
    Security,
    client_settings,
)
from zeroqueue.admin import max_message_bytes
from zeroqueue.errors import (
    ConfigError,
    DeliveryError,
    InvalidMessageError,
    MessageTooLargeError,
    PusherClosedError,
    PushError,
    PushTimeoutError,
)
from zeroqueue.kq.balancer import (
    Balancer,
    BalancerFunc,
    LeastBytesBalancer,
    librdkafka_partitioner,
    python_balancer,
)
from zeroqueue.message import Message

__all__ = ["ErrorHandler", "HeadersArg", "ProducerCore", "PushOptions"]

_log = logging.getLogger("zeroqueue.kq.pusher")

# How long reading the topic's size limit may take, once, when the broker first
# rejects a message as too large.
_LIMIT_LOOKUP_TIMEOUT = 5.0
# kafka_config entries an admin client refuses (confluent-kafka's producer callbacks);
# the rest it takes or ignores, so it reaches the cluster as the producer does.
_PRODUCER_ONLY = frozenset({"on_delivery", "dr_cb", "dr_msg_cb"})

#: Headers as given to push: a mapping or a sequence of (name, value) pairs.
HeadersArg: TypeAlias = (
    Mapping[str, str | bytes | None] | Sequence[tuple[str, str | bytes | None]] | None
)
#: ``error_handler(message, error)`` for deliveries that failed in the background.
ErrorHandler: TypeAlias = Callable[[Message, PushError], object]
Acks: TypeAlias = Literal["all", 0, 1, -1]
Compression: TypeAlias = Literal["none", "gzip", "snappy", "lz4", "zstd"]

_COMPRESSIONS = ("none", "gzip", "snappy", "lz4", "zstd")
_INT32_MAX = 2**31 - 1
# Default linger for batching pushes; go-queue's ChunkExecutor waits 1 s, which
# holds every message back that long. librdkafka keeps batching while a request
# is in flight, so a few milliseconds reach the same batch sizes.
_DEFAULT_FLUSH_INTERVAL = 0.005
# How long each wait step sleeps while the local buffer is full.
_ROOM_POLL = 0.005
# How often, without sync_push, the background thread serves failed deliveries
# and client errors: error_handler hears of a failure at most this much later.
_REPORT_INTERVAL = 0.1
# How often the partition count behind a Python balancer is refreshed.
_METADATA_MAX_AGE = 30.0


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
    password: str = ""
    sasl_mechanism: SaslMechanism = "PLAIN"
    ca_file: str = ""
    client_id: str = ""
    error_handler: ErrorHandler | None = None
    kafka_config: Mapping[str, Any] | None = None

    def __post_init__(self) -> None:
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


def _encode(data: str | bytes | None) -> bytes | None:
    return data.encode() if isinstance(data, str) else data


def _size(key: str | bytes | None, value: str | bytes | None) -> int:
    return len(_encode(key) or b"") + len(_encode(value) or b"")


class ProducerCore:
    """One librdkafka producer for one topic, plus delivery bookkeeping."""

    def __init__(self, brokers: Sequence[str] | str, topic: str, options: PushOptions) -> None:
        if not isinstance(topic, str) or not topic:
            raise ConfigError(f"topic: got {topic!r}; expected a non-empty topic name")
        self.topic = topic
        self.options = options
        self._balancer: BalancerFunc | None = python_balancer(options.balancer)
        self._partition_count = 0
        self._partition_count_at = 0.0
        self._lock = threading.Lock()
        self._failed = 0
        self._reasons: Counter[str] = Counter()
        self._client_errors = ClientErrors()
        self._closed = False
        security = Security(
            username=options.username,
            password=options.password,
            sasl_mechanism=options.sasl_mechanism,
            ca_file=options.ca_file,
        )
        self._brokers = brokers
        self._admin_config = security.librdkafka() | {
            key: value
            for key, value in (options.kafka_config or {}).items()
            if key not in _PRODUCER_ONLY
        }
        if options.client_id:
            self._admin_config["client.id"] = options.client_id
        self._limit_lock = threading.Lock()
        self._limit_lookup: threading.Thread | None = None
        self._topic_limit: int | None = None
        settings = client_settings(
            brokers, security, client_id=options.client_id, overrides=None
        ) | {
            "acks": options.acks,
            "enable.idempotence": options.idempotent,
            "linger.ms": options.linger * 1000.0,
            "batch.size": options.chunk_size,
            "compression.type": options.compression,
            "message.max.bytes": options.max_message_bytes,
            "message.timeout.ms": int(options.delivery_timeout * 1000),
            "allow.auto.create.topics": options.allow_auto_topic_creation,
            # Successful deliveries cost no Python work; failures still reach us.
            "delivery.report.only.error": not options.sync_push,
            "on_delivery": self._on_failed_delivery,
            "error_cb": self._on_client_error,
        }
        partitioner = librdkafka_partitioner(options.balancer)
        if partitioner is not None:
            settings["partitioner"] = partitioner
        if options.kafka_config:
            settings |= dict(options.kafka_config)
        try:
            self.producer = Producer(settings)
        except KafkaException as exc:
            raise ConfigError(f"kafka_config: {exc.args[0].str()}") from exc
        self._stop_polling = threading.Event()
        self._poller = threading.Thread(
            target=self._serve_delivery_reports, name=f"zeroqueue-pusher[{topic}]", daemon=True
        )
        self._poller.start()
        _open_cores.add(self)

    # -- what the faces call --------------------------------------------------------

    @property
    def sends_in_python(self) -> bool:
        """Whether partitions are chosen in Python (so pushes go through :meth:`produce`)."""
        return self._balancer is not None

    def produce(
        self,
        topic: str,
        value: str | bytes | None,
        key: str | bytes | None = None,
        *,
        headers: HeadersArg = None,
        on_delivery: Callable[[KafkaError | None, KafkaMessage], None] | None = None,
    ) -> None:
        """Hand one message to librdkafka, choosing its partition in Python if needed.

        Raises BufferError when the local buffer is full, like confluent-kafka.
        Whatever it raises, it raises before the message is queued: the Pusher's
        hot path retries a push that raised, so nothing may follow produce() that
        can fail.
        """
        kwargs: dict[str, Any] = {}
        if headers is not None:
            kwargs["headers"] = headers
        if on_delivery is not None:
            kwargs["on_delivery"] = on_delivery
        if self._balancer is None:
            self.producer.produce(topic, value, key, **kwargs)
            return
        raw_key = _encode(key)
        partition = self._choose_partition(raw_key)
        self.producer.produce(topic, value, key, partition=partition, **kwargs)
        if isinstance(self._balancer, LeastBytesBalancer):
            # Counted once it is queued: a push retried on a full buffer counts once.
            self._balancer.record(partition, len(raw_key or b"") + len(_encode(value) or b""))

    def try_produce(
        self,
        key: str | bytes | None,
        value: str | bytes | None,
        headers: HeadersArg,
        on_delivery: Callable[[KafkaError | None, KafkaMessage], None] | None = None,
    ) -> bool:
        """Produce one message; False when the local buffer is full; PushError on bad input.

        Raises PusherClosedError once :meth:`close` began, so a push waiting for
        room gives up instead of queueing behind the final flush.
        """
        if self._closed:
            raise self.closed_error()
        try:
            self.produce(self.topic, value, key, headers=headers, on_delivery=on_delivery)
        except BufferError:
            return False
        except (KafkaException, TypeError) as exc:
            raise self.push_error(exc, key, value) from exc
        except RuntimeError as exc:
            if not self._closed:
                raise
            # confluent-kafka's "Producer has been closed": close() won the race.
            raise self.closed_error() from exc
        return True

    def closed_error(self) -> PusherClosedError:
        """The error for a push to a closed pusher."""
        return PusherClosedError(f"the pusher for topic {self.topic!r} is closed")

    def push_error(
        self, exc: KafkaException | TypeError, key: str | bytes | None, value: str | bytes | None
    ) -> PushError:
        """Translate a confluent-kafka produce() error into zeroqueue's tree."""
        if isinstance(exc, TypeError):
            return InvalidMessageError(
                f"cannot push to topic {self.topic!r}: {exc}; key and value must be str, "
                f"bytes or None (got key {type(key).__name__}, value {type(value).__name__}), "
                "headers a mapping or a list of (str, str | bytes | None) pairs"
            )
        error: KafkaError = exc.args[0]
        if error.code() == KafkaError.MSG_SIZE_TOO_LARGE:
            size = _size(key, value)
            return MessageTooLargeError(
                f"message of {size} bytes (key + value) to topic {self.topic!r} is larger than "
                f"max_message_bytes={self.options.max_message_bytes}; raise max_message_bytes "
                "(and the broker's message.max.bytes) or send smaller messages",
                size=size,
                limit=self.options.max_message_bytes,
            )
        if error.code() == KafkaError._UNKNOWN_TOPIC:
            return PushError(
                f"topic {self.topic!r} does not exist and allow_auto_topic_creation is "
                f"{self.options.allow_auto_topic_creation}: create it first"
            )
        return PushError(f"cannot push to topic {self.topic!r}: {error.str()}")

    def room_deadline(self) -> float:
        """When a push that found the buffer full gives up."""
        return time.monotonic() + self.options.buffer_full_timeout

    def buffer_full_error(self) -> PushTimeoutError:
        """The error for a push that waited ``buffer_full_timeout`` in vain."""
        return PushTimeoutError(
            f"the local buffer of the pusher for topic {self.topic!r} stayed full for "
            f"buffer_full_timeout={self.options.buffer_full_timeout}s "
            f"({len(self.producer)} messages waiting){self._client_error_hint()}"
        )

    def wait_for_room(self) -> None:
        """Block briefly while librdkafka drains its buffer."""
        try:
            self.producer.poll(_ROOM_POLL)
        except RuntimeError:
            if not self._closed:
                raise
            # Closed meanwhile: the next try_produce says so.

    def delivery_error(
        self, error: KafkaError, message: KafkaMessage, *, wait_for_limit: bool = True
    ) -> PushError:
        """The error for one message Kafka did not acknowledge.

        For a message refused as too large it names the topic's limit, which may
        mean asking the cluster: ``wait_for_limit=False`` (delivery callbacks)
        does not wait for the answer.
        """
        key = message.key()
        # Key and value, as the local max_message_bytes check counts (len() is the value's).
        size = len(key or b"") + len(message.value() or b"")
        where = f"to topic {self.topic!r}" + (f" with key {key!r}" if key is not None else "")
        if error.code() == KafkaError.MSG_SIZE_TOO_LARGE:
            return self._too_large(size, where, self.topic_size_limit(wait=wait_for_limit))
        reason = error.str()
        return DeliveryError(
            f"message {where} was not delivered: {reason}{self._client_error_hint()}",
            count=1,
            reasons={reason: 1},
        )

    def _too_large(self, size: int, where: str, limit: int | None) -> MessageTooLargeError:
        if limit is None:
            said = "its limit (the topic's max.message.bytes) is smaller"
        elif size <= limit:
            # The message fits: the batch holding it did not.
            said = (
                f"the topic's max.message.bytes is {limit}, below the batch it travelled in; "
                f"lower chunk_size (now {self.options.chunk_size})"
            )
        else:
            said = f"the topic's max.message.bytes is {limit}"
        return MessageTooLargeError(
            f"the broker refused a message of {size} bytes {where} as too large: {said}",
            size=size,
            limit=limit,
        )

    def topic_size_limit(self, *, wait: bool = True) -> int | None:
        """The topic's ``max.message.bytes``, asked of the cluster once (None if unknown).

        The question runs on its own thread; ``wait=False`` returns at once, with
        None until the answer is in.
        """
        with self._limit_lock:
            if self._limit_lookup is None:
                self._limit_lookup = threading.Thread(
                    target=self._read_topic_limit,
                    name=f"zeroqueue-pusher-limit[{self.topic}]",
                    daemon=True,
                )
                self._limit_lookup.start()
            lookup = self._limit_lookup
        if wait:
            lookup.join()
        return self._topic_limit

    def _read_topic_limit(self) -> None:
        try:
            self._topic_limit = max_message_bytes(
                self._brokers,
                self.topic,
                timeout=_LIMIT_LOOKUP_TIMEOUT,
                kafka_config=self._admin_config,
            )
        except Exception as exc:  # only a hint for an error message: never fatal
            _log.warning("could not read the size limit of topic %r: %s", self.topic, exc)

    def flush(self, timeout: float | None = None) -> None:
        """Wait for every pushed message to be acknowledged, then raise what failed.

        Raises:
            DeliveryError: messages failed since the last flush (how many and why).
            PushTimeoutError: messages were still in flight after ``timeout`` seconds.

        """
        deadline = None if timeout is None else time.monotonic() + timeout
        remaining = len(self.producer)
        while remaining:
            step = 0.2 if deadline is None else min(0.2, deadline - time.monotonic())
            # Out of time or not, serve what is ready: len() also counts client events
            # (a refused connection, say) that no pushed message stands behind.
            remaining = self.producer.flush(max(step, 0.0))
            if step <= 0:
                break
        self.raise_failures()
        if remaining:
            raise PushTimeoutError(
                f"{remaining} message(s) to topic {self.topic!r} were still in flight after "
                f"{timeout}s{self._client_error_hint()}"
            )

    def raise_failures(self) -> None:
        """Raise (and forget) the delivery failures recorded since the last call."""
        with self._lock:
            failed, reasons = self._failed, self._reasons
            self._failed, self._reasons = 0, Counter()
        if failed:
            summary = "; ".join(f"{reason} ({count})" for reason, count in reasons.most_common())
            raise DeliveryError(
                f"{failed} message(s) to topic {self.topic!r} were not delivered: "
                f"{summary}{self._client_error_hint()}",
                count=failed,
                reasons=reasons,
            )

    def close(self, timeout: float | None = None) -> None:
        """Flush, then stop the delivery-report thread and release the client.

        Messages still in flight after ``timeout`` are dropped (each reaches
        ``error_handler``) and reported by a PushTimeoutError.
        """
        if self._closed:
            return
        self._closed = True
        try:
            self.flush(timeout)
        except PushTimeoutError as exc:
            # librdkafka's close() would wait for them; drop them and say so instead.
            self.producer.purge()
            self.producer.poll(0)
            raise PushTimeoutError(f"{exc}; close() dropped them") from None
        finally:
            self._stop_polling.set()
            if self._poller is not threading.current_thread():
                self._poller.join()
            if len(self.producer):
                # A push that raced close() got in after the final flush: drop it rather
                # than let librdkafka's close() wait out delivery_timeout for it. Each
                # one reaches error_handler.
                _log.warning(
                    "close() dropped %d message(s) to topic %r pushed while it was closing",
                    len(self.producer),
                    self.topic,
                )
                self.producer.purge()
                self.producer.poll(0)
            self.producer.close()
            _open_cores.discard(self)

    # -- background -----------------------------------------------------------------

    def _serve_delivery_reports(self) -> None:
        if self.options.sync_push:
            # Every push waits for its own report: hand each over the moment it lands.
            while not self._stop_polling.is_set():
                self.producer.poll(0.1)
            return
        # Not a blocking poll(): librdkafka reports every delivery, success too
        # (confluent-kafka drops the successes itself, for delivery.report.only.error),
        # so while pushes flow a thread parked in poll() returns hundreds of times a
        # second, each return takes the GIL from the pushing thread, and on a loaded
        # machine that thread then waits to be scheduled again. Measured here, it
        # slowed a push loop by about 20%. Served in bulk every 0.1 s instead, the
        # reports hold their buffer space that much longer, and failures are heard
        # of that much later.
        while not self._stop_polling.wait(_REPORT_INTERVAL):
            self.producer.poll(0)

    def _on_failed_delivery(self, error: KafkaError | None, message: KafkaMessage) -> None:
        # Without sync_push librdkafka reports failures only; with it, every message has
        # its own callback and this one is never reached.
        if error is None:
            return
        with self._lock:
            self._failed += 1
            self._reasons[error.str()] += 1
        handler = self.options.error_handler
        if handler is None:
            _log.debug("delivery to %r failed: %s", self.topic, error.str())
            return
        try:
            error_now = self.delivery_error(error, message, wait_for_limit=False)
            handler(Message.from_kafka(message), error_now)
        except Exception:
            _log.exception("error_handler of the pusher for topic %r raised", self.topic)

    def _on_client_error(self, error: KafkaError) -> None:
        self._client_errors.record(error)
        if error.fatal():
            KAFKA_LOGGER.critical("fatal producer error on topic %r: %s", self.topic, error.str())

    def _client_error_hint(self) -> str:
        return self._client_errors.hint()

    # -- Python balancers -----------------------------------------------------------

    def _choose_partition(self, raw_key: bytes | None) -> int:
        assert self._balancer is not None
        count = self._partitions()
        partition = self._balancer(raw_key, count)
        if isinstance(partition, bool) or not isinstance(partition, int):
            raise PushError(
                f"balancer {self._balancer!r} returned {partition!r}; expected an int partition"
            )
        if not 0 <= partition < count:
            raise PushError(
                f"balancer {self._balancer!r} returned partition {partition}; topic "
                f"{self.topic!r} has partitions 0..{count - 1}"
            )
        return partition

    def _partitions(self) -> int:
        now = time.monotonic()
        if self._partition_count and now - self._partition_count_at < _METADATA_MAX_AGE:
            return self._partition_count
        try:
            metadata = self.producer.list_topics(self.topic, timeout=10.0)
        except KafkaException as exc:
            raise PushError(
                f"cannot read the partitions of topic {self.topic!r}: {exc.args[0].str()}"
            ) from exc
        topic = metadata.topics.get(self.topic)
        if topic is None or topic.error is not None or not topic.partitions:
            reason = topic.error.str() if topic is not None and topic.error else "no partitions"
            raise PushError(
                f"topic {self.topic!r} is not available ({reason}); allow_auto_topic_creation "
                f"is {self.options.allow_auto_topic_creation}"
            )
        self._partition_count = len(topic.partitions)
        self._partition_count_at = now
        return self._partition_count


# Pushers still open at interpreter exit are flushed, so a script that forgets
# close() does not silently drop what it pushed last.
_open_cores: set[ProducerCore] = set()


@atexit.register
def _close_open_cores() -> None:
    for core in list(_open_cores):
        try:
            core.close(timeout=core.options.delivery_timeout)
        except Exception:
            _log.exception("pusher for topic %r failed to flush at exit", core.topic)
