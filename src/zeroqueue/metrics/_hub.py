"""What metrics record while they are on, in plain Python (no prometheus_client).

Queues and producer cores ask this module, once when they are built, whether
metrics are on. When they are off the answer is None and nothing else happens:
no hook, no statistics, nothing per message. When they are on, each gets a
stats object to count into, and the hub keeps a weak reference to it (a Queue's
engines are read at scrape time for lag, in-flight and buffer fill).

Counts of objects that were garbage-collected are folded into retired totals at
the next scrape, so a counter never goes down because a Queue or Pusher went away.
"""

from __future__ import annotations

import bisect
import itertools
import json
import logging
import threading
import weakref
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from zeroqueue.engine.handlers import FailurePolicyLike
    from zeroqueue.message import Message

__all__ = [
    "BUCKETS",
    "HUB",
    "ProducerStats",
    "QueueStats",
    "producer_stats",
    "queue_stats",
]

_log = logging.getLogger("zeroqueue.metrics")

#: Upper bounds (seconds) of the handling-duration histogram's buckets.
BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)

# A message's fate (the metrics hook's outcome) -> the count it goes to.
_FATES = {
    "handled": "handled",
    "skipped": "skipped",
    "dead-lettered": "dead_lettered",
    "retry-topic": "retry_topic",
}


@dataclass
class Histogram:
    """Handling times of one topic: per-bucket counts (not cumulative), sum and count."""

    buckets: list[int] = field(default_factory=lambda: [0] * (len(BUCKETS) + 1))
    total: float = 0.0

    def merge(self, other: Histogram) -> None:
        """Add ``other``'s observations to these."""
        for index, count in enumerate(other.buckets):
            self.buckets[index] += count
        self.total += other.total


class QueueStats:
    """One Queue's counts by kind, topic and partition, and its handling times by topic.

    Kinds: ``handled``, ``skipped``, ``dead_lettered``, ``retry_topic`` (a message's
    fate), ``failed`` (a failed attempt) and ``retry_in_place`` (an attempt to be
    tried again after a pause).
    """

    def __init__(self, group: str) -> None:
        self.group = group
        #: Where the Queue's cluster is, set once it knows (brokers, librdkafka security).
        self.brokers: tuple[str, ...] = ()
        self.kafka_config: dict[str, Any] = {}
        # Processors finish messages in parallel: a dict's get-then-set is not atomic.
        self._lock = threading.Lock()
        self._counts: dict[tuple[str, str, int], int] = {}
        self._times: dict[str, Histogram] = {}

    def connect(self, brokers: tuple[str, ...], kafka_config: Mapping[str, Any]) -> None:
        """Say where the Queue's cluster is (for the watermark and timestamp queries)."""
        self.brokers = brokers
        self.kafka_config = dict(kafka_config)

    def observe(
        self, topic: str, partition: int, seconds: float, error: object, outcome: str
    ) -> None:
        """A message is done with: count its fate and its handling time."""
        del error  # the outcome says what became of it
        kind = _FATES.get(outcome, "skipped")
        index = bisect.bisect_left(BUCKETS, seconds)
        key = (kind, topic, partition)
        with self._lock:
            self._counts[key] = self._counts.get(key, 0) + 1
            times = self._times.get(topic)
            if times is None:
                times = self._times[topic] = Histogram()
            times.buckets[index] += 1
            times.total += seconds

    def count(self, kind: str, topic: str, partition: int) -> None:
        """Add one to ``kind`` for a partition."""
        key = (kind, topic, partition)
        with self._lock:
            self._counts[key] = self._counts.get(key, 0) + 1

    def counting(self, policy: FailurePolicyLike) -> FailurePolicyLike:
        """``policy``, counting each failed attempt and each retry in place it decides."""
        return _CountingPolicy(policy, self)

    def snapshot(self) -> tuple[dict[tuple[str, str, int], int], dict[str, Histogram]]:
        """Copies of the counts and histograms, taken under the lock."""
        with self._lock:
            times = {topic: Histogram(list(h.buckets), h.total) for topic, h in self._times.items()}
            return dict(self._counts), times

    def merge(self, other: QueueStats) -> None:
        """Add ``other``'s counts and times to these (a collected Queue's, retired)."""
        counts, times = other.snapshot()
        with self._lock:
            for key, count in counts.items():
                self._counts[key] = self._counts.get(key, 0) + count
            for topic, histogram in times.items():
                self._times.setdefault(topic, Histogram()).merge(histogram)


class _CountingPolicy:
    """A failure policy that counts what the policy it wraps decides."""

    def __init__(self, inner: FailurePolicyLike, stats: QueueStats) -> None:
        self._inner = inner
        self._stats = stats

    def failed(self, message: Message, error: BaseException, attempt: int) -> float | None:
        """Count the failed attempt, ask the wrapped policy, count a retry in place."""
        self._stats.count("failed", message.topic, message.partition)
        delay = self._inner.failed(message, error, attempt)
        if delay is not None:
            self._stats.count("retry_in_place", message.topic, message.partition)
        return delay


class ProducerStats:
    """One producer client's figures: librdkafka's statistics, and failed deliveries."""

    def __init__(self) -> None:
        #: Per (topic, partition): messages librdkafka sent (its ``txmsgs``), as of
        #: its last statistics. Replaced whole, never mutated: safe to read.
        self.sent: dict[tuple[str, int], int] = {}
        self._lock = threading.Lock()
        self._failed: dict[str, int] = {}
        # Statistics received so far, to wait for the next one (see wait_for_statistics).
        self._received = 0
        self._arrived = threading.Condition(self._lock)

    def on_statistics(self, text: str) -> None:
        """The ``stats_cb`` of librdkafka: keep the per-partition counts of its JSON."""
        try:
            topics = json.loads(text).get("topics", {})
            sent = {}
            for topic, figures in topics.items():
                for number, partition in figures.get("partitions", {}).items():
                    # -1 is librdkafka's "not partitioned yet" queue, counted again later.
                    if int(number) >= 0:
                        sent[(topic, int(number))] = int(partition.get("txmsgs", 0))
        except (ValueError, TypeError, AttributeError) as exc:
            # Figures are a nicety: a surprise in them must not disturb delivery reports.
            _log.debug("unreadable librdkafka statistics: %r", exc)
            return
        self.sent = sent
        with self._arrived:
            self._received += 1
            self._arrived.notify_all()

    def wait_for_statistics(self, timeout: float) -> bool:
        """Wait until librdkafka's next statistics arrived (a closing client's last word).

        Someone must keep serving the client's events meanwhile (the delivery-report
        thread does). False if none came within ``timeout``.
        """
        with self._arrived:
            seen = self._received
            return self._arrived.wait_for(lambda: self._received > seen, timeout)

    def failed(self, topic: str) -> None:
        """Count a message Kafka did not take."""
        with self._lock:
            self._failed[topic] = self._failed.get(topic, 0) + 1

    def failures(self) -> dict[str, int]:
        """A copy of the failed deliveries by topic."""
        with self._lock:
            return dict(self._failed)

    def merge(self, other: ProducerStats) -> None:
        """Add ``other``'s figures to these (a collected client's, retired)."""
        sent, failed = other.sent, other.failures()
        merged = dict(self.sent)
        for key, count in sent.items():
            merged[key] = merged.get(key, 0) + count
        self.sent = merged
        with self._lock:
            for topic, count in failed.items():
                self._failed[topic] = self._failed.get(topic, 0) + count


class Hub:
    """Whether metrics are on, and the weakly held Queues and producers they watch."""

    def __init__(self) -> None:
        self.on = False
        #: Seconds between librdkafka statistics of producers built while on.
        self.statistics_interval = 1.0
        self.lock = threading.Lock()
        self._keys = itertools.count()
        self._queues: dict[int, tuple[weakref.ref[Any], QueueStats]] = {}
        self._producers: dict[int, tuple[weakref.ref[Any], ProducerStats]] = {}
        #: Counts of Queues (by group) and producers that were garbage-collected.
        self.retired_queues: dict[str, QueueStats] = {}
        self.retired_producers = ProducerStats()

    def watch_queue(self, queue: object, stats: QueueStats) -> None:
        """Watch ``queue`` (weakly) with its stats."""
        with self.lock:
            self._queues[next(self._keys)] = (weakref.ref(queue), stats)

    def watch_producer(self, core: object, stats: ProducerStats) -> None:
        """Watch a producer core (weakly) with its stats."""
        with self.lock:
            self._producers[next(self._keys)] = (weakref.ref(core), stats)

    def live(self) -> tuple[list[tuple[Any, QueueStats]], list[ProducerStats]]:
        """The Queues still alive with their stats, and the producers' stats.

        Entries whose object was collected are folded into the retired totals here,
        on the scraping thread: a weakref callback could run in the middle of
        anything, this lock held included.
        """
        queues: list[tuple[Any, QueueStats]] = []
        producers: list[ProducerStats] = []
        with self.lock:
            for key, (ref, stats) in list(self._queues.items()):
                queue = ref()
                if queue is None:
                    del self._queues[key]
                    self.retired_queues.setdefault(stats.group, QueueStats(stats.group)).merge(
                        stats
                    )
                else:
                    queues.append((queue, stats))
            for key, (ref, producer) in list(self._producers.items()):
                if ref() is None:
                    del self._producers[key]
                    self.retired_producers.merge(producer)
                else:
                    producers.append(producer)
        return queues, producers

    def reset(self) -> None:
        """Forget everything watched and counted (metrics turned off)."""
        with self.lock:
            self.on = False
            self._queues.clear()
            self._producers.clear()
            self.retired_queues.clear()
            self.retired_producers = ProducerStats()


#: The one hub of the process.
HUB = Hub()


def queue_stats(queue: object, group: str) -> QueueStats | None:
    """Stats for a Queue being built, watched by the hub; None while metrics are off."""
    if not HUB.on:
        return None
    stats = QueueStats(group)
    HUB.watch_queue(queue, stats)
    return stats


def producer_stats(core: object) -> ProducerStats | None:
    """Stats for a producer core being built, watched by the hub; None while metrics are off."""
    if not HUB.on:
        return None
    stats = ProducerStats()
    HUB.watch_producer(core, stats)
    return stats
