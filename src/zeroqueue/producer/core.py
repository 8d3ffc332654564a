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
from collections.abc import Callable, Sequence
from typing import Any

from confluent_kafka import KafkaError, KafkaException
from confluent_kafka import Message as KafkaMessage

from zeroqueue._kafka import backends
from zeroqueue._kafka.settings import KAFKA_LOGGER, ClientErrors, Security, client_settings
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
from zeroqueue.message import Message
from zeroqueue.metrics._hub import HUB, producer_stats
from zeroqueue.producer.balancer import (
    BalancerFunc,
    LeastBytesBalancer,
    librdkafka_partitioner,
    python_balancer,
)
from zeroqueue.producer.options import (
    HeadersArg,
    KafkaProducer,
    ProducerFactory,
    PushOptions,
)
from zeroqueue.producer.partitions import PartitionCounts

__all__ = ["ProducerCore"]

_log = logging.getLogger("zeroqueue.kq.pusher")

# The errors librdkafka reports for messages a purge() dropped.
_PURGED = frozenset({KafkaError._PURGE_QUEUE, KafkaError._PURGE_INFLIGHT})

# How long reading the topic's size limit may take, once, when the broker first
# rejects a message as too large.
_LIMIT_LOOKUP_TIMEOUT = 5.0
# kafka_config entries an admin client refuses (confluent-kafka's producer callbacks);
# the rest it takes or ignores, so it reaches the cluster as the producer does.
_PRODUCER_ONLY = frozenset({"on_delivery", "dr_cb", "dr_msg_cb"})

# How long each wait step sleeps while the local buffer is full.
_ROOM_POLL = 0.005
# How often, without sync_push, the background thread serves failed deliveries
# and client errors: error_handler hears of a failure at most this much later.
_REPORT_INTERVAL = 0.1


def _encode(data: str | bytes | None) -> bytes | None:
    return data.encode() if isinstance(data, str) else data


def _size(key: str | bytes | None, value: str | bytes | None) -> int:
    return len(_encode(key) or b"") + len(_encode(value) or b"")


def _counting(
    on_delivery: Callable[[KafkaError | None, KafkaMessage], None],
    failed: Callable[[str], None],
) -> Callable[[KafkaError | None, KafkaMessage], None]:
    """``on_delivery``, telling ``failed`` the topic of a message Kafka did not take."""

    def report(error: KafkaError | None, message: KafkaMessage) -> None:
        if error is not None:
            failed(message.topic() or "")
        on_delivery(error, message)

    return report


class ProducerCore:
    """One librdkafka producer for any number of topics, plus delivery bookkeeping.

    The topic is given with every message, so one core serves a Pusher's topic,
    or the retry and dead-letter topics of a consumer, alike.
    """

    def __init__(
        self,
        brokers: Sequence[str] | str,
        options: PushOptions,
        *,
        name: str = "zeroqueue-pusher",
        producer_factory: ProducerFactory | None = None,
    ) -> None:
        self.options = options
        self._balancer: BalancerFunc | None = python_balancer(options.balancer)
        # Per topic: partition count and when it was read (Python balancers only).
        self._partitions = PartitionCounts(
            lambda topic, timeout: self.producer.list_topics(topic, timeout=timeout),
            options.allow_auto_topic_creation,
        )
        self._lock = threading.Lock()
        self._failed = 0
        self._reasons: Counter[str] = Counter()
        self._failed_topics: Counter[str] = Counter()
        self._purged = 0  # messages purge() dropped, ever: close() tells them apart
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
        self._limit_lookups: dict[str, threading.Thread] = {}
        self._topic_limits: dict[str, int | None] = {}
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
        # None while zeroqueue.metrics is off. On, librdkafka's statistics count what
        # was sent (served by the delivery-report thread): nothing added per push.
        self._stats = producer_stats(self)
        if self._stats is not None:
            settings["statistics.interval.ms"] = max(1, int(HUB.statistics_interval * 1000))
            settings["stats_cb"] = self._stats.on_statistics
        if options.kafka_config:
            settings |= dict(options.kafka_config)
        try:
            # The default is confluent-kafka's Producer, or a memory:// broker's stand-in.
            self.producer: KafkaProducer = (producer_factory or backends.producer)(settings)
        except KafkaException as exc:
            raise ConfigError(f"kafka_config: {exc.args[0].str()}") from exc
        self._stop_polling = threading.Event()
        self._poller = threading.Thread(target=self._serve_delivery_reports, name=name, daemon=True)
        self._poller.start()
        _open_cores.add(self)

    # -- what the faces call --------------------------------------------------------

    @property
    def brokers(self) -> Sequence[str] | str:
        """The brokers this client talks to."""
        return self._brokers

    @property
    def admin_config(self) -> dict[str, Any]:
        """Librdkafka settings an admin client of the same cluster needs (security)."""
        return dict(self._admin_config)

    def partition_for(self, topic: str, key: str | bytes | None) -> int | None:
        """The partition a Python balancer picks for ``key``; None when librdkafka picks."""
        if self._balancer is None:
            return None
        return self._choose_partition(topic, _encode(key))

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
        partition: int | None = None,
    ) -> None:
        """Hand one message to librdkafka, choosing its partition in Python if needed.

        ``partition`` sends it to that partition, whatever the balancer.

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
        if partition is not None:
            self.producer.produce(topic, value, key, partition=partition, **kwargs)
            return
        if self._balancer is None:
            self.producer.produce(topic, value, key, **kwargs)
            return
        raw_key = _encode(key)
        partition = self._choose_partition(topic, raw_key)
        self.producer.produce(topic, value, key, partition=partition, **kwargs)
        if isinstance(self._balancer, LeastBytesBalancer):
            # Counted once it is queued: a push retried on a full buffer counts once.
            self._balancer.record(partition, len(raw_key or b"") + len(_encode(value) or b""))

    def try_produce(
        self,
        topic: str,
        key: str | bytes | None,
        value: str | bytes | None,
        headers: HeadersArg,
        *,
        on_delivery: Callable[[KafkaError | None, KafkaMessage], None] | None = None,
        partition: int | None = None,
    ) -> bool:
        """Produce one message; False when the local buffer is full; PushError on bad input.

        Raises PusherClosedError once :meth:`close` began, so a push waiting for
        room gives up instead of queueing behind the final flush.
        """
        if self._closed:
            raise self.closed_error(topic)
        if on_delivery is not None and self._stats is not None:
            # A message with its own callback (sync_push, AsyncPusher's) never reaches
            # _on_failed_delivery: count its failure on the way.
            on_delivery = _counting(on_delivery, self._stats.failed)
        try:
            self.produce(
                topic, value, key, headers=headers, on_delivery=on_delivery, partition=partition
            )
        except BufferError:
            return False
        except (KafkaException, TypeError) as exc:
            raise self.push_error(exc, topic, key, value) from exc
        except RuntimeError as exc:
            if not self._closed:
                raise
            # confluent-kafka's "Producer has been closed": close() won the race.
            raise self.closed_error(topic) from exc
        return True

    def closed_error(self, topic: str) -> PusherClosedError:
        """The error for a push to a closed pusher."""
        return PusherClosedError(f"the pusher for topic {topic!r} is closed")

    def push_error(
        self,
        exc: KafkaException | TypeError,
        topic: str,
        key: str | bytes | None,
        value: str | bytes | None,
    ) -> PushError:
        """Translate a confluent-kafka produce() error into zeroqueue's tree."""
        if isinstance(exc, TypeError):
            return InvalidMessageError(
                f"cannot push to topic {topic!r}: {exc}; key and value must be str, "
                f"bytes or None (got key {type(key).__name__}, value {type(value).__name__}), "
                "headers a mapping or a list of (str, str | bytes | None) pairs"
            )
        error: KafkaError = exc.args[0]
        if error.code() == KafkaError.MSG_SIZE_TOO_LARGE:
            size = _size(key, value)
            return MessageTooLargeError(
                f"message of {size} bytes (key + value) to topic {topic!r} is larger than "
                f"max_message_bytes={self.options.max_message_bytes}; raise max_message_bytes "
                "(and the broker's message.max.bytes) or send smaller messages",
                size=size,
                limit=self.options.max_message_bytes,
            )
        if error.code() == KafkaError._UNKNOWN_TOPIC:
            return PushError(
                f"topic {topic!r} does not exist and allow_auto_topic_creation is "
                f"{self.options.allow_auto_topic_creation}: create it first"
            )
        return PushError(f"cannot push to topic {topic!r}: {error.str()}")

    def room_deadline(self) -> float:
        """When a push that found the buffer full gives up."""
        return time.monotonic() + self.options.buffer_full_timeout

    def buffer_full_error(self, topic: str) -> PushTimeoutError:
        """The error for a push that waited ``buffer_full_timeout`` in vain."""
        return PushTimeoutError(
            f"the local buffer of the pusher for topic {topic!r} stayed full for "
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
        topic, key = message.topic() or "", message.key()
        # Key and value, as the local max_message_bytes check counts (len() is the value's).
        size = len(key or b"") + len(message.value() or b"")
        where = f"to topic {topic!r}" + (f" with key {key!r}" if key is not None else "")
        if error.code() == KafkaError.MSG_SIZE_TOO_LARGE:
            limit = self.topic_size_limit(topic, wait=wait_for_limit)
            return self._too_large(size, where, limit)
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

    def topic_size_limit(self, topic: str, *, wait: bool = True) -> int | None:
        """``topic``'s ``max.message.bytes``, asked of the cluster once (None if unknown).

        The question runs on its own thread; ``wait=False`` returns at once, with
        None until the answer is in.
        """
        with self._limit_lock:
            lookup = self._limit_lookups.get(topic)
            if lookup is None:
                lookup = self._limit_lookups[topic] = threading.Thread(
                    target=self._read_topic_limit,
                    args=(topic,),
                    name=f"zeroqueue-pusher-limit[{topic}]",
                    daemon=True,
                )
                lookup.start()
        if wait:
            lookup.join()
        return self._topic_limits.get(topic)

    def _read_topic_limit(self, topic: str) -> None:
        try:
            self._topic_limits[topic] = max_message_bytes(
                self._brokers,
                topic,
                timeout=_LIMIT_LOOKUP_TIMEOUT,
                kafka_config=self._admin_config,
            )
        except Exception as exc:  # only a hint for an error message: never fatal
            _log.warning("could not read the size limit of topic %r: %s", topic, exc)

    def flush(self, timeout: float | None = None) -> None:
        """Wait for every pushed message to be acknowledged, then raise what failed.

        Raises:
            DeliveryError: messages failed since the last flush (how many and why);
                with ``in_flight`` set when others were still in flight after
                ``timeout`` (they are raised by a later flush if they fail).
            PushTimeoutError: messages were still in flight after ``timeout``
                seconds, and none failed.

        """
        remaining = self._wait_for_acks(timeout)
        still = ""
        if remaining:
            still = f"; {remaining} message(s) were still in flight after {timeout}s"
        self.raise_failures(in_flight=remaining, note=still)
        if remaining:
            raise PushTimeoutError(
                f"{remaining} message(s) were still in flight after {timeout}s"
                f"{self._client_error_hint()}"
            )

    def _wait_for_acks(self, timeout: float | None) -> int:
        """Serve delivery reports until none is pending or ``timeout``; return how many are."""
        deadline = None if timeout is None else time.monotonic() + timeout
        remaining = len(self.producer)
        while remaining:
            step = 0.2 if deadline is None else min(0.2, deadline - time.monotonic())
            # Out of time or not, serve what is ready: len() also counts client events
            # (a refused connection, say) that no pushed message stands behind.
            remaining = self.producer.flush(max(step, 0.0))
            if step <= 0:
                break
        return remaining

    def raise_failures(self, *, in_flight: int = 0, note: str = "") -> None:
        """Raise (and forget) the delivery failures recorded since the last call."""
        with self._lock:
            failed, reasons, topics = self._failed, self._reasons, self._failed_topics
            self._failed, self._reasons, self._failed_topics = 0, Counter(), Counter()
        if not failed:
            return
        summary = "; ".join(f"{reason} ({count})" for reason, count in reasons.most_common())
        if len(topics) == 1:
            where = f"topic {next(iter(topics))!r}"
        else:
            where = "topics " + ", ".join(f"{t!r} ({n})" for t, n in topics.most_common())
        raise DeliveryError(
            f"{failed} message(s) to {where} were not delivered: "
            f"{summary}{note}{self._client_error_hint()}",
            count=failed,
            reasons=reasons,
            in_flight=in_flight,
        )

    def close(self, timeout: float | None = None) -> None:
        """Flush, then stop the delivery-report thread and release the client.

        Messages still in flight after ``timeout`` are dropped: each reaches
        ``error_handler``, and the DeliveryError raised counts them with every
        other failure. Nothing that failed is left unraised.
        """
        if self._closed:
            return
        self._closed = True
        note = ""
        try:
            remaining = self._wait_for_acks(timeout)
            if remaining:
                # librdkafka's close() would wait for them; drop them and say so instead.
                note = (
                    f"; close() gave up after {timeout}s and dropped the {remaining} message(s)"
                    " still in flight (some may have reached the broker)"
                )
                self._purge()
            if self._stats is not None:
                # Statistics are periodic: without one more, the last pushes of a
                # closing client would never be counted. The poller serves it.
                self._stats.wait_for_statistics(HUB.statistics_interval + 1.0)
        finally:
            self._stop_polling.set()
            if self._poller is not threading.current_thread():
                self._poller.join()
            if len(self.producer):
                # A push that raced close() got in after the final flush: drop it rather
                # than let librdkafka's close() wait out delivery_timeout for it. It
                # counts among the failures raised below and reaches error_handler (a
                # sync push raises to its own caller instead).
                # len() counts client events too (a refused connection): only what the
                # purge dropped was a message.
                purged = self._purged
                self._purge()
                if self._purged > purged:
                    _log.warning(
                        "close() dropped %d message(s) pushed while it was closing",
                        self._purged - purged,
                    )
            # confluent-kafka before 2.13 has no close(): the client is released when
            # it is collected.
            release = getattr(self.producer, "close", None)
            if callable(release):
                release()
            _open_cores.discard(self)
        self.raise_failures(note=note)

    def _purge(self) -> None:
        """Drop queued and in-flight messages; their failures are served at once."""
        self.producer.purge()
        self.producer.poll(0)

    # -- background -----------------------------------------------------------------

    def _serve_delivery_reports(self) -> None:
        if self.options.sync_push:
            # Every push waits for its own report: hand each over the moment it lands.
            while not self._stop_polling.is_set():
                self._poll(0.1)
            return
        # Not a blocking poll(): librdkafka reports every delivery, success too
        # (confluent-kafka drops the successes itself, for delivery.report.only.error),
        # so while pushes flow a thread parked in poll() returns hundreds of times a
        # second, each return takes the GIL from the pushing thread, and on a loaded
        # machine that thread then waits to be scheduled again (see bench/README.md).
        # Served in bulk every _REPORT_INTERVAL instead, the reports hold their buffer
        # space that much longer, and failures are heard of that much later.
        while not self._stop_polling.wait(_REPORT_INTERVAL):
            self._poll(0)

    def _poll(self, timeout: float) -> None:
        """Serve reports; a callback that raises must not end the thread that serves them."""
        try:
            self.producer.poll(timeout)
        except Exception:
            _log.exception("a delivery callback raised; serving the next reports")

    def _on_failed_delivery(self, error: KafkaError | None, message: KafkaMessage) -> None:
        # Without sync_push librdkafka reports failures only; with it, every message has
        # its own callback and this one is never reached.
        if error is None:
            return
        topic = message.topic() or ""
        if self._stats is not None:
            self._stats.failed(topic)
        with self._lock:
            self._failed += 1
            self._reasons[error.str()] += 1
            self._failed_topics[topic] += 1
            if error.code() in _PURGED:
                self._purged += 1
        handler = self.options.error_handler
        if handler is None:
            _log.debug("delivery to %r failed: %s", topic, error.str())
            return
        try:
            error_now = self.delivery_error(error, message, wait_for_limit=False)
            handler(Message.from_kafka(message), error_now)
        except Exception:
            _log.exception("error_handler of the pusher raised (topic %r)", topic)

    def _on_client_error(self, error: KafkaError) -> None:
        self._client_errors.record(error)
        if error.fatal():
            KAFKA_LOGGER.critical("fatal producer error: %s", error.str())

    def _client_error_hint(self) -> str:
        return self._client_errors.hint()

    # -- Python balancers -----------------------------------------------------------

    def _choose_partition(self, topic: str, raw_key: bytes | None) -> int:
        assert self._balancer is not None
        count = self.partition_count(topic)
        partition = self._balancer(raw_key, count)
        if isinstance(partition, bool) or not isinstance(partition, int):
            raise PushError(
                f"balancer {self._balancer!r} returned {partition!r}; expected an int partition"
            )
        if not 0 <= partition < count:
            raise PushError(
                f"balancer {self._balancer!r} returned partition {partition}; topic "
                f"{topic!r} has partitions 0..{count - 1}"
            )
        return partition

    def needs_partition_count(self, topic: str) -> bool:
        """Whether a push to ``topic`` would first wait for the cluster's metadata.

        An asyncio face reads it on a worker thread first (:meth:`partition_count`),
        so the event loop never waits on the network.
        """
        return self._balancer is not None and not self._partitions.known(topic)

    def partition_count(self, topic: str) -> int:
        """``topic``'s partition count, for a Python balancer (see PartitionCounts)."""
        return self._partitions.count(topic)


# Pushers still open at interpreter exit are flushed, so a script that forgets
# close() does not silently drop what it pushed last.
_open_cores: set[ProducerCore] = set()


@atexit.register
def _close_open_cores() -> None:
    for core in list(_open_cores):
        try:
            core.close(timeout=core.options.delivery_timeout)
        except Exception:
            _log.exception("a pusher failed to flush at exit")
