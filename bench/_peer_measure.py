"""How bench.peer measures a consumer: a drained backlog, and stamped messages at a fixed rate.

Latency: a producer in this process (confluent-kafka, ``linger.ms`` 0) first
sends a ``warm`` message every 100 ms until the consumer has seen one, so it has
joined and fetches; then it sends ``count`` values at ``rate`` per second, each
starting with the wall-clock time it was sent (``time.time_ns()``, 19 decimal
digits, which a Go program reads the same way). The handler notes the
difference when it gets one.
"""

from __future__ import annotations

import statistics
import threading
import time
from collections.abc import Callable, Sequence

from confluent_kafka import Consumer, KafkaException, Producer, TopicPartition

from bench._common import Clock
from bench._peers import Background, Starter

__all__ = [
    "READY_TIMEOUT",
    "RUN_TIMEOUT",
    "Stamps",
    "TopicProbe",
    "consume_rate",
    "latency",
    "percentiles",
    "send_stamped",
]

# Longest wait for a consumer to see its first warm-up message (joining included).
READY_TIMEOUT = 60.0
# Longest wait for a consumer to handle what it was sent, once it runs.
RUN_TIMEOUT = 120.0
WARM = b"warm"


class TopicProbe:
    """Asks the leaders of a topic's partitions for their offsets."""

    def __init__(self, brokers: str, topic: str) -> None:
        self.topic = topic
        self._consumer = Consumer({"bootstrap.servers": brokers, "group.id": "bench-peer-probe"})
        metadata = self._consumer.list_topics(topic, timeout=10).topics[topic]
        self.partitions = sorted(metadata.partitions)

    def close(self) -> None:
        self._consumer.close()

    def writable(self, timeout: float = 30.0) -> None:
        """Return once every partition's leader answers for it.

        A topic just created is listed before Kafka's leader has loaded it, and
        for a few hundred ms writes get NOT_LEADER_OR_FOLLOWER: librdkafka and
        aiokafka retry, but go-queue's writer (acks=0) loses them unawares.
        """
        pending = set(self.partitions)
        deadline = time.monotonic() + timeout
        while pending:
            for partition in sorted(pending):
                try:
                    self._consumer.get_watermark_offsets(
                        TopicPartition(self.topic, partition), timeout=5
                    )
                except KafkaException:
                    continue
                pending.discard(partition)
            if pending and time.monotonic() > deadline:
                raise TimeoutError(f"{self.topic}: partitions {sorted(pending)} not writable")
            if pending:
                time.sleep(0.1)

    def stored(self) -> int:
        """Messages in the topic: the sum of the high watermarks."""
        return sum(
            self._consumer.get_watermark_offsets(TopicPartition(self.topic, p), timeout=10)[1]
            for p in self.partitions
        )

    def read(self, count: int, idle: float = 2.0) -> int:
        """Messages read back from the start, up to ``count`` (or none for ``idle`` seconds)."""
        self._consumer.assign([TopicPartition(self.topic, p, 0) for p in self.partitions])
        seen, quiet_since = 0, time.monotonic()
        while seen < count and time.monotonic() - quiet_since < idle:
            records = self._consumer.consume(1000, 0.1)
            if records:
                seen += sum(1 for r in records if r.error() is None)
                quiet_since = time.monotonic()
        self._consumer.unassign()
        return seen

    def expect(self, count: int) -> None:
        """Check that ``count`` messages are stored; raise saying how many are.

        The high watermarks answer at once on Kafka; Tansu 0.6 reports them a
        little low after a burst of concurrent batches (every message is there),
        and acks=0 writes may land a moment late: short of ``count``, the topic
        is read back.
        """
        if self.stored() >= count:
            return
        stored = self.read(count)
        if stored < count:
            raise RuntimeError(f"only {stored:,} of {count:,} messages reached the topic")


def wait_for(
    done: threading.Event, consumer: Background, timeout: float, what: Callable[[], str]
) -> None:
    """Wait for ``done``; fail early if the consumer died, or after ``timeout``."""
    deadline = time.monotonic() + timeout
    while not done.wait(0.2):
        if consumer.error is not None:
            raise RuntimeError(f"{consumer.name} failed: {consumer.error!r}") from consumer.error
        if time.monotonic() > deadline:
            raise TimeoutError(f"{consumer.name}: {what()} after {timeout:.0f}s")


def consume_rate(
    starter: Starter, brokers: str, topic: str, count: int, session: float | None
) -> float:
    """Messages per second, first handled to ``count``-th, of a consumer draining ``topic``."""
    clock = Clock(count)
    consumer = starter(brokers, topic, clock.noop(), session, True)
    try:
        wait_for(clock.done, consumer, READY_TIMEOUT + RUN_TIMEOUT, lambda: "not all handled")
    finally:
        consumer.stop()
    return clock.rate


class Stamps:
    """Latencies of stamped values, from any thread; a ``warm`` value sets :attr:`ready`."""

    def __init__(self, count: int) -> None:
        self.count = count
        self.ready = threading.Event()
        self.done = threading.Event()
        self.ms: list[float] = []
        self._lock = threading.Lock()

    def handle(self, key: str, value: str) -> None:
        now = time.time_ns()
        if value.startswith("warm"):
            self.ready.set()
            return
        with self._lock:
            self.ms.append((now - int(value[:19])) / 1e6)
            if len(self.ms) >= self.count:
                self.done.set()


def percentiles(ms: Sequence[float]) -> tuple[float, float]:
    """p50 and p99."""
    ordered = sorted(ms)
    return float(statistics.median(ordered)), ordered[
        min(len(ordered) - 1, len(ordered) * 99 // 100)
    ]


def send_stamped(
    brokers: str,
    topic: str,
    *,
    rate: float,
    count: int,
    keys: Sequence[str],
    ready: Callable[[], bool],
) -> None:
    """Warm up until ``ready()``, then send ``count`` stamped 100-byte values at ``rate``/s."""
    producer = Producer({"bootstrap.servers": brokers, "linger.ms": 0})
    try:
        _send_stamped(producer, topic, rate=rate, count=count, keys=keys, ready=ready)
    finally:
        producer.close()


def _send_stamped(
    producer: Producer,
    topic: str,
    *,
    rate: float,
    count: int,
    keys: Sequence[str],
    ready: Callable[[], bool],
) -> None:
    deadline = time.monotonic() + READY_TIMEOUT
    while not ready():
        if time.monotonic() > deadline:
            raise TimeoutError(f"the consumer saw no warm-up message within {READY_TIMEOUT:.0f}s")
        producer.produce(topic, WARM, keys[0])
        producer.poll(0.1)
    padding = b"p" * (100 - 19)
    key_count = len(keys)
    started = time.perf_counter()
    for i in range(count):
        pause = started + i / rate - time.perf_counter()
        if pause > 0:
            time.sleep(pause)
        producer.produce(topic, b"%019d" % time.time_ns() + padding, keys[i % key_count])
        producer.poll(0)
    if producer.flush(30.0):
        raise RuntimeError("the latency producer could not deliver within 30s")


def latency(
    starter: Starter,
    brokers: str,
    topic: str,
    *,
    rate: float,
    count: int,
    keys: Sequence[str],
    session: float | None,
) -> tuple[float, float]:
    """p50 and p99 in ms of a consumer in this process."""
    stamps = Stamps(count)
    consumer = starter(brokers, topic, stamps.handle, session, False)

    def ready() -> bool:
        if consumer.error is not None:
            raise RuntimeError(f"{consumer.name} failed: {consumer.error!r}") from consumer.error
        return stamps.ready.is_set()

    try:
        send_stamped(brokers, topic, rate=rate, count=count, keys=keys, ready=ready)
        wait_for(stamps.done, consumer, RUN_TIMEOUT, lambda: f"{len(stamps.ms)} of {count} arrived")
    finally:
        consumer.stop()
    return percentiles(stamps.ms)
