"""RetryGate: holds back a retry topic's messages until they are due (the engine's HoldBack)."""

from __future__ import annotations

from collections.abc import Iterable

from confluent_kafka import Message as KafkaMessage

from zeroqueue.retry import _headers as h

__all__ = ["RetryGate"]


class RetryGate:
    """A message of a retry topic is due at its ``retry_topic-backoff-timestamp``.

    Every message of one retry topic waits the same delay, so they fall due in
    the order they were pushed: the engine holds a partition back at its first
    message not due, without a busy loop, while other partitions flow.
    """

    def __init__(self, topics: Iterable[str]) -> None:
        self.topics = frozenset(topics)

    def due(self, record: KafkaMessage) -> float:
        """When ``record`` is due, in ``time.time()`` seconds (0 when it says nothing)."""
        raw = record.headers()
        value = None
        for name, data in raw if isinstance(raw, list) else ():
            if name == h.BACKOFF_TIMESTAMP and isinstance(data, bytes):
                value = data
        due = h.decode_int(value)
        return due / 1000.0 if due is not None else 0.0
