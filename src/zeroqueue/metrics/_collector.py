"""The Prometheus collector: every zeroqueue figure, computed when scraped.

Counters come from the stats the hub's Queues and producers count into; lag,
committed offsets, in-flight messages and buffer fill are read from the running
engines at scrape time (nothing per message), with watermarks and timestamps
asked of the cluster through :class:`~zeroqueue.metrics._offsets.OffsetReader`.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import Any

from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector

from zeroqueue.metrics._hub import BUCKETS, Histogram, Hub, ProducerStats, QueueStats
from zeroqueue.metrics._offsets import Key, OffsetReader

__all__ = ["ZeroQueueCollector"]

_PARTITION = ["topic", "partition", "group"]

# Counter kinds of QueueStats -> (metric name, help, extra labels).
_COUNTERS = {
    "handled": ("zeroqueue_consumer_handled", "Messages handled without an error."),
    "failed": ("zeroqueue_consumer_failed", "Failed handling attempts (the handler raised)."),
    "dead_lettered": (
        "zeroqueue_consumer_dead_lettered",
        "Messages moved to the dead-letter topic.",
    ),
    "skipped": (
        "zeroqueue_consumer_skipped",
        "Messages counted handled with their error (ForceCommit, or a move that gave up).",
    ),
}
# Retries: in place (after a pause) or moved to a retry topic, told apart by a label.
_RETRIES = {"retry_in_place": "in_place", "retry_topic": "retry_topic"}

# One partition's state as an engine reports it, with the group it belongs to.
_State = tuple[str, int, int | None, int | None, int]


class ZeroQueueCollector(Collector):
    """Collects zeroqueue's metrics from the hub at each scrape.

    Args:
        hub: What is watched.
        offsets_timeout: Seconds one scrape may spend asking the cluster.
        offsets_cache: Seconds watermarks and committed offsets are kept.
    """

    def __init__(self, hub: Hub, *, offsets_timeout: float, offsets_cache: float) -> None:
        self._hub = hub
        self._timeout = offsets_timeout
        self._cache = offsets_cache
        self._readers: dict[tuple[str, str, str], OffsetReader] = {}
        self._readers_lock = threading.Lock()

    def describe(self) -> list[Metric]:
        """Nothing up front: registering must not scrape (that would ask the cluster)."""
        return []

    def close(self) -> None:
        """Release the clients that ask the cluster."""
        with self._readers_lock:
            readers, self._readers = list(self._readers.values()), {}
        for reader in readers:
            reader.close()

    def collect(self) -> Iterator[Metric]:
        """Every metric, as of now."""
        queues, producers = self._hub.live()
        yield from self._counts([stats for _, stats in queues])
        yield from self._pushes(producers)
        yield from self._engines(queues)

    # -- counters ---------------------------------------------------------------------

    def _counts(self, live: list[QueueStats]) -> Iterator[Metric]:
        totals: dict[tuple[str, str, str, int], int] = {}
        times: dict[tuple[str, str], Histogram] = {}
        with self._hub.lock:
            retired = list(self._hub.retired_queues.values())
        for stats in [*live, *retired]:
            counts, histograms = stats.snapshot()
            for (kind, topic, partition), count in counts.items():
                key = (kind, stats.group, topic, partition)
                totals[key] = totals.get(key, 0) + count
            for topic, histogram in histograms.items():
                times.setdefault((topic, stats.group), Histogram()).merge(histogram)
        families = {
            kind: CounterMetricFamily(name, text, labels=_PARTITION)
            for kind, (name, text) in _COUNTERS.items()
        }
        retried = CounterMetricFamily(
            "zeroqueue_consumer_retried",
            "Failed messages retried: in place after a pause, or moved to a retry topic.",
            labels=[*_PARTITION, "via"],
        )
        for (kind, group, topic, partition), count in sorted(totals.items()):
            labels = [topic, str(partition), group]
            if kind in families:
                families[kind].add_metric(labels, count)
            elif kind in _RETRIES:
                retried.add_metric([*labels, _RETRIES[kind]], count)
        yield from families.values()
        yield retried
        duration = HistogramMetricFamily(
            "zeroqueue_consumer_handle_seconds",
            "Seconds from a message's first handling attempt until it was done with.",
            labels=["topic", "group"],
        )
        for (topic, group), histogram in sorted(times.items(), key=lambda item: item[0]):
            cumulative, buckets = 0, []
            for bound, count in zip([*map(str, BUCKETS), "+Inf"], histogram.buckets, strict=True):
                cumulative += count
                buckets.append((bound, float(cumulative)))
            duration.add_metric([topic, group], buckets, histogram.total)
        yield duration

    def _pushes(self, live: list[ProducerStats]) -> Iterator[Metric]:
        sent: dict[tuple[str, int], int] = {}
        failed: dict[str, int] = {}
        with self._hub.lock:
            retired = self._hub.retired_producers
        for stats in [*live, retired]:
            for key, count in stats.sent.items():
                sent[key] = sent.get(key, 0) + count
            for topic, count in stats.failures().items():
                failed[topic] = failed.get(topic, 0) + count
        pushed = CounterMetricFamily(
            "zeroqueue_pusher_messages",
            "Messages sent to Kafka by Pushers (and retry, dead-letter and delay pushes), "
            "from librdkafka's statistics (txmsgs).",
            labels=["topic", "partition"],
        )
        for (topic, partition), count in sorted(sent.items()):
            pushed.add_metric([topic, str(partition)], count)
        yield pushed
        failures = CounterMetricFamily(
            "zeroqueue_pusher_failed",
            "Pushed messages Kafka did not take (reported in the background).",
            labels=["topic"],
        )
        for topic, count in sorted(failed.items()):
            failures.add_metric([topic], count)
        yield failures

    # -- gauges read from the engines ----------------------------------------------

    def _engines(self, queues: list[tuple[Any, QueueStats]]) -> Iterator[Metric]:
        fill = GaugeMetricFamily(
            "zeroqueue_consumer_buffer_fill_ratio",
            "Messages fetched and not yet handled, over queue_capacity, per conn.",
            labels=["group", "conn"],
        )
        in_flight = GaugeMetricFamily(
            "zeroqueue_consumer_in_flight_messages",
            "Messages fetched whose runs are not handled yet, and those held back in memory"
            " until due (delay tiers, retry topics).",
            labels=_PARTITION,
        )
        committed = GaugeMetricFamily(
            "zeroqueue_consumer_committed_offset",
            "The last offset this process committed (the next one the group reads).",
            labels=_PARTITION,
        )
        stuck_seconds = GaugeMetricFamily(
            "zeroqueue_consumer_stuck_seconds",
            "How long a message has stayed with its handler, once past the Queue's"
            " stuck_after (a call that hangs, or retries that do not end).",
            labels=_PARTITION,
        )
        stuck_offset = GaugeMetricFamily(
            "zeroqueue_consumer_stuck_offset",
            "The offset of the message zeroqueue_consumer_stuck_seconds reports.",
            labels=_PARTITION,
        )
        now = time.monotonic()
        by_reader: dict[tuple[str, str, str], tuple[QueueStats, list[_State]]] = {}
        for queue, stats in queues:
            states: list[_State] = []
            for engine in queue.engines:
                capacity = engine.options.capacity
                fill.add_metric([stats.group, engine.name], engine.board.in_flight / capacity)
                states.extend(engine.partition_states())
                # The longest held per partition: a partition's gauge holds one value.
                longest: dict[tuple[str, int], tuple[float, int]] = {}
                for topic, partition, offset, seconds in engine.stuck_report.stuck(now):
                    if seconds > longest.get((topic, partition), (-1.0, 0))[0]:
                        longest[(topic, partition)] = (seconds, offset)
                for (topic, partition), (seconds, offset) in longest.items():
                    labels = [topic, str(partition), stats.group]
                    stuck_seconds.add_metric(labels, seconds)
                    stuck_offset.add_metric(labels, offset)
            for topic, partition, _, done, unfinished in states:
                labels = [topic, str(partition), stats.group]
                in_flight.add_metric(labels, unfinished)
                if done is not None:
                    committed.add_metric(labels, done)
            if stats.brokers and states:
                key = (
                    ",".join(stats.brokers),
                    repr(sorted(stats.kafka_config.items())),
                    stats.group,
                )
                by_reader.setdefault(key, (stats, []))[1].extend(states)
        yield fill
        yield in_flight
        yield committed
        yield stuck_seconds
        yield stuck_offset
        yield from self._lag(by_reader)

    def _lag(
        self, by_reader: dict[tuple[str, str, str], tuple[QueueStats, list[_State]]]
    ) -> Iterator[Metric]:
        messages = GaugeMetricFamily(
            "zeroqueue_consumer_lag_messages",
            "Messages on the partition not handled yet: high watermark minus the first "
            "message not handled.",
            labels=_PARTITION,
        )
        seconds = GaugeMetricFamily(
            "zeroqueue_consumer_lag_seconds",
            "Age of the oldest message not handled yet (its timestamp to now); 0 without lag.",
            labels=_PARTITION,
        )
        deadline = time.monotonic() + self._timeout
        for key, (stats, states) in by_reader.items():
            reader = self._reader(key, stats)
            partitions = [(topic, partition) for topic, partition, *_ in states]
            unknown = [(t, p) for t, p, until, done, _ in states if until is None and done is None]
            marks, group_offsets = reader.read(partitions, unknown, deadline)
            lags: dict[Key, tuple[int, int]] = {}
            for topic, partition, until, done, _ in states:
                part = (topic, partition)
                if part not in marks:
                    continue  # the cluster did not answer in time: no figure beats a wrong one
                low, high = marks[part]
                # The first message not handled: from the engine when it handled or
                # committed one, else where the group stands (or the log's start).
                position = until if until is not None else done
                if position is None:
                    position = group_offsets.get(part)
                position = low if position is None else max(position, low)
                lags[part] = (max(high - position, 0), position)
            behind = {part: position for part, (lag, position) in lags.items() if lag > 0}
            stamps = reader.timestamps(behind, deadline) if behind else {}
            now = time.time()
            for (topic, partition), (lag, _) in sorted(lags.items()):
                labels = [topic, str(partition), stats.group]
                messages.add_metric(labels, lag)
                if lag == 0:
                    seconds.add_metric(labels, 0.0)
                elif (topic, partition) in stamps:
                    seconds.add_metric(labels, max(now - stamps[(topic, partition)], 0.0))
        yield messages
        yield seconds

    def _reader(self, key: tuple[str, str, str], stats: QueueStats) -> OffsetReader:
        with self._readers_lock:
            reader = self._readers.get(key)
            if reader is None:
                reader = self._readers[key] = OffsetReader(
                    stats.brokers, stats.kafka_config, stats.group, cache=self._cache
                )
            return reader
