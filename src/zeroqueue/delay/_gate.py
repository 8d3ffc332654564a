"""DueGate: holds back a topic's messages until the time a header names (the engine's HoldBack).

Shared by the delay tiers and the retry topics: in both, every message of one
topic waits the same time, so a partition falls due in offset order.
"""

from __future__ import annotations

from collections.abc import Iterable

from confluent_kafka import Message as KafkaMessage

from zeroqueue._kafka.headers import decode_int, last

__all__ = ["DueGate"]


class DueGate:
    """A message of ``topics`` is due at the milliseconds time in its ``header``."""

    def __init__(self, topics: Iterable[str], header: str) -> None:
        self.topics = frozenset(topics)
        self.header = header

    def due(self, record: KafkaMessage) -> float:
        """When ``record`` is due, in ``time.time()`` seconds (0, now, when it says nothing)."""
        headers: list[tuple[str, bytes | None]] | None = record.headers()  # type: ignore[assignment]
        due = decode_int(last(headers, self.header)) if headers else None
        return due / 1000.0 if due is not None else 0.0
