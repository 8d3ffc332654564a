"""How many partitions each topic has, for balancers that choose in Python.

Read from the cluster on a topic's first push (blocking: the asyncio face reads
it on a worker thread first), then served from memory and refreshed on a
background thread every _METADATA_MAX_AGE, so no push waits on the network
again.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from confluent_kafka import KafkaException

from zeroqueue.errors import PushError

__all__ = ["PartitionCounts"]

_log = logging.getLogger("zeroqueue.kq.pusher")

# How often a topic's partition count is read again.
_METADATA_MAX_AGE = 30.0
# How long reading a topic's partition count may take.
_METADATA_TIMEOUT = 10.0


class PartitionCounts:
    """Partition counts by topic, from ``list_topics(topic, timeout)`` (a client's metadata)."""

    def __init__(
        self, list_topics: Callable[[str, float], Any], allow_auto_topic_creation: bool
    ) -> None:
        self._list_topics = list_topics
        self._allow_auto_topic_creation = allow_auto_topic_creation
        self._counts: dict[str, tuple[int, float]] = {}
        self._refreshing: set[str] = set()
        self._lock = threading.Lock()

    def known(self, topic: str) -> bool:
        """Whether ``topic``'s count is in memory (a push would not wait for it)."""
        return topic in self._counts

    def count(self, topic: str) -> int:
        """``topic``'s partition count: read the first time, then from memory.

        Raises:
            PushError: the first read failed, or the topic has no partitions.
        """
        known = self._counts.get(topic)
        if known is None:
            return self._read(topic)
        count, read_at = known
        if time.monotonic() - read_at >= _METADATA_MAX_AGE:
            with self._lock:
                start = topic not in self._refreshing
                self._refreshing.add(topic)
            if start:
                threading.Thread(
                    target=self._refresh,
                    args=(topic,),
                    name=f"zeroqueue-pusher-metadata[{topic}]",
                    daemon=True,
                ).start()
        return count

    def set(self, topic: str, count: int, read_at: float) -> None:
        """Record a count (for tests: ``read_at=inf`` is never refreshed)."""
        self._counts[topic] = (count, read_at)

    def _refresh(self, topic: str) -> None:
        try:
            self._read(topic)
        except Exception as exc:  # PushError, or RuntimeError once the client closed
            # The count read earlier still serves; the next refresh tries again.
            _log.warning("could not refresh the partitions of topic %r: %s", topic, exc)
            known = self._counts.get(topic)
            if known is not None:
                self._counts[topic] = (known[0], time.monotonic())
        finally:
            with self._lock:
                self._refreshing.discard(topic)

    def _read(self, topic: str) -> int:
        try:
            metadata = self._list_topics(topic, _METADATA_TIMEOUT)
        except KafkaException as exc:
            raise PushError(
                f"cannot read the partitions of topic {topic!r}: {exc.args[0].str()}"
            ) from exc
        found = metadata.topics.get(topic)
        if found is None or found.error is not None or not found.partitions:
            reason = found.error.str() if found is not None and found.error else "no partitions"
            raise PushError(
                f"topic {topic!r} is not available ({reason}); allow_auto_topic_creation "
                f"is {self._allow_auto_topic_creation}"
            )
        count = len(found.partitions)
        self._counts[topic] = (count, time.monotonic())
        return count
