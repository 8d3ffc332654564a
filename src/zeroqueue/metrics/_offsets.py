"""What a scrape asks the cluster: high watermarks, committed offsets, message timestamps.

One :class:`OffsetReader` per cluster and group, with its own librdkafka consumer
that never joins the group (it only assigns, and never commits). Every question
is bounded by what is left of one time budget, and answers are kept for a short
while, so a scrape never hangs on a cluster that does not answer: it shows what
was known last, or leaves the figure out.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from confluent_kafka import TIMESTAMP_NOT_AVAILABLE, Consumer, KafkaException, TopicPartition

from zeroqueue._kafka.settings import client_settings, clipped_client_id

__all__ = ["OffsetReader"]

_log = logging.getLogger("zeroqueue.metrics")

Key = tuple[str, int]


class OffsetReader:
    """Watermarks, the group's committed offsets and message timestamps, for one group.

    Args:
        brokers: The cluster.
        kafka_config: librdkafka settings to reach it (security).
        group: The consumer group whose committed offsets are read (never joined).
        cache: Seconds watermarks and committed offsets are kept before asked again.
    """

    def __init__(
        self,
        brokers: Sequence[str],
        kafka_config: Mapping[str, Any],
        group: str,
        *,
        cache: float,
    ) -> None:
        self.cache = cache
        self._settings = client_settings(brokers, overrides=kafka_config) | {
            "group.id": group,
            "enable.auto.commit": False,
            "enable.auto.offset.store": False,
            # Only the first message of each asked partition is wanted: fetch little.
            "max.partition.fetch.bytes": 1,
            "fetch.wait.max.ms": 10,
            "client.id": clipped_client_id(f"zeroqueue-metrics-{group}"),
        }
        self._consumer: Consumer | None = None
        self._lock = threading.Lock()
        self._marks: dict[Key, tuple[int, int]] = {}
        self._marks_at = 0.0
        self._committed: dict[Key, int | None] = {}
        self._committed_at = 0.0
        # Timestamps by (topic, partition, offset): a message's never changes.
        self._stamps: dict[tuple[str, int, int], float] = {}

    def read(
        self, partitions: Sequence[Key], unknown: Iterable[Key], deadline: float
    ) -> tuple[dict[Key, tuple[int, int]], dict[Key, int | None]]:
        """Watermarks (low, high) of ``partitions``; the group's committed offsets of ``unknown``.

        Asks only what is not cached, until ``deadline`` (``time.monotonic()``);
        either answer may lack partitions the cluster did not answer for in time.
        """
        unknown = list(unknown)
        with self._lock:
            now = time.monotonic()
            if now - self._marks_at >= self.cache or any(p not in self._marks for p in partitions):
                self._marks_at = now
                self._read_marks(partitions, deadline)
            if unknown and (
                now - self._committed_at >= self.cache
                or any(p not in self._committed for p in unknown)
            ):
                self._committed_at = now
                self._read_committed(unknown, deadline)
            marks = {p: self._marks[p] for p in partitions if p in self._marks}
            committed = {p: self._committed[p] for p in unknown if p in self._committed}
        return marks, committed

    def timestamps(self, positions: Mapping[Key, int], deadline: float) -> dict[Key, float]:
        """The timestamp (seconds since the epoch) of the message at each position.

        Messages that are gone or have no timestamp are left out; so are those not
        fetched by ``deadline`` (``time.monotonic()``).
        """
        wanted = {(t, p, o) for (t, p), o in positions.items()}
        with self._lock:
            # Only the current positions are worth keeping.
            self._stamps = {k: v for k, v in self._stamps.items() if k in wanted}
            missing = {(t, p): o for t, p, o in wanted if (t, p, o) not in self._stamps}
            if missing:
                self._fetch_stamps(missing, deadline)
            return {
                (t, p): self._stamps[(t, p, o)]
                for (t, p), o in positions.items()
                if (t, p, o) in self._stamps
            }

    def close(self) -> None:
        """Release the consumer."""
        with self._lock:
            if self._consumer is not None:
                self._consumer.close()
                self._consumer = None

    # -- the questions, under the lock ----------------------------------------------

    def _client(self) -> Consumer:
        if self._consumer is None:
            self._consumer = Consumer(self._settings)
        return self._consumer

    def _read_marks(self, partitions: Sequence[Key], deadline: float) -> None:
        consumer = self._client()
        for topic, partition in partitions:
            left = deadline - time.monotonic()
            if left <= 0:
                return
            try:
                marks = consumer.get_watermark_offsets(
                    TopicPartition(topic, partition), timeout=left
                )
            except KafkaException as exc:
                # The cluster is slow or away: keep what was known, ask no more now.
                _log.debug("metrics: watermarks of %s[%d]: %s", topic, partition, exc)
                return
            if marks is not None and marks[1] >= 0:
                self._marks[(topic, partition)] = (max(marks[0], 0), marks[1])

    def _read_committed(self, partitions: Sequence[Key], deadline: float) -> None:
        left = deadline - time.monotonic()
        if left <= 0:
            return
        try:
            answers = self._client().committed(
                [TopicPartition(t, p) for t, p in partitions], timeout=left
            )
        except KafkaException as exc:
            _log.debug("metrics: committed offsets: %s", exc)
            return
        for answer in answers:
            if answer.error is None:
                offset = answer.offset
                self._committed[(answer.topic, answer.partition)] = offset if offset >= 0 else None

    def _fetch_stamps(self, missing: dict[Key, int], deadline: float) -> None:
        consumer = self._client()
        try:
            consumer.assign([TopicPartition(t, p, o) for (t, p), o in missing.items()])
            while missing:
                left = deadline - time.monotonic()
                if left <= 0:
                    return
                for record in consumer.consume(len(missing), timeout=min(left, 0.1)):
                    if record.error() is not None:
                        continue
                    key = (record.topic() or "", record.partition() or 0)
                    offset = record.offset()
                    wanted = missing.get(key)
                    if wanted is None or offset is None or offset < wanted:
                        continue
                    kind, stamp = record.timestamp()
                    if kind != TIMESTAMP_NOT_AVAILABLE:
                        self._stamps[(key[0], key[1], wanted)] = stamp / 1000.0
                    del missing[key]
                    # Enough of this partition: fetch nothing more from it.
                    consumer.pause([TopicPartition(*key)])
        except KafkaException as exc:
            _log.debug("metrics: message timestamps: %s", exc)
        finally:
            try:
                consumer.unassign()
            except KafkaException as exc:
                _log.debug("metrics: unassign: %s", exc)
