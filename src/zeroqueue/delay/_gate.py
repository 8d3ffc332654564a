"""DueGate: holds back a topic's messages until the time a header names (the engine's HoldBack).

Shared by the delay tiers and the retry topics: in both, every message of one
topic waits the same time, so a partition falls due in offset order.
"""

from __future__ import annotations

from collections.abc import Mapping

from confluent_kafka import TIMESTAMP_NOT_AVAILABLE
from confluent_kafka import Message as KafkaMessage

from zeroqueue._kafka.headers import decode_int, last

__all__ = ["DueGate"]

# Leeway past a message's wait for the clocks of its writer and of the broker.
_CLOCK_LEEWAY = 1.0


class DueGate:
    """A message of ``waits``' topics is due at the milliseconds time in its ``header``.

    ``waits`` maps each topic to how long its messages wait. A header naming a
    later time than that (plus as much again, and a second) past the record's
    own timestamp is not believed: the record is due then instead, so a corrupt
    or hostile header cannot hold a partition back for ever.
    """

    def __init__(self, waits: Mapping[str, float], header: str) -> None:
        self.topics = frozenset(waits)
        self.header = header
        self._longest = {topic: 2 * wait + _CLOCK_LEEWAY for topic, wait in waits.items()}

    def due(self, record: KafkaMessage) -> float:
        """When ``record`` is due, in ``time.time()`` seconds (0, now, when it says nothing)."""
        headers: list[tuple[str, bytes | None]] | None = record.headers()  # type: ignore[assignment]
        due = decode_int(last(headers, self.header)) if headers else None
        if due is None:
            return 0.0
        kind, millis = record.timestamp()
        longest = self._longest.get(record.topic() or "")
        if kind == TIMESTAMP_NOT_AVAILABLE or longest is None:
            return due / 1000.0
        return min(due / 1000.0, millis / 1000.0 + longest)
