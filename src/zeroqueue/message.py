"""Message: one Kafka record as handlers and error handlers see it."""

from __future__ import annotations

from dataclasses import dataclass, field

from confluent_kafka import TIMESTAMP_NOT_AVAILABLE
from confluent_kafka import Message as KafkaMessage

from zeroqueue._kafka.headers import decode_int, last
from zeroqueue.errors import DecodeError

__all__ = ["ATTEMPTS_HEADER", "Headers", "Message", "decode_text"]

#: Kafka headers in order; a name may repeat.
Headers = tuple[tuple[str, bytes | None], ...]

#: Attempts made on a message before this delivery, as a retry topic's message carries
#: them (Spring Kafka's header: a 4-byte big-endian int).
ATTEMPTS_HEADER = "retry_topic-attempts"


def decode_text(data: bytes | None, what: str, topic: str, partition: int, offset: int) -> str:
    """Decode ``data`` as UTF-8 (``None`` becomes ``""``), naming the record on failure."""
    if data is None:
        return ""
    try:
        return data.decode()
    except UnicodeDecodeError as exc:
        raise DecodeError(
            f"{what} of {topic}[{partition}]@{offset} is not valid UTF-8 "
            f"(byte {exc.start} of {len(data)}: {data[exc.start : exc.start + 1]!r}); "
            "expected text for a (key: str, value: str) handler. "
            "Take the whole Message to handle raw bytes."
        ) from exc


@dataclass(slots=True)
class Message:
    """A Kafka record: where it lives, its key, value, headers and timestamp.

    ``key`` and ``value`` are the raw bytes (``None`` when absent);
    ``key_str`` and ``value_str`` decode them as UTF-8. ``timestamp`` is in
    seconds since the epoch. On a message that failed to be produced,
    ``partition`` and ``offset`` are -1 when Kafka never assigned them.
    ``attempt`` counts the tries to handle it, this one included: 1 the first
    time, more on a retry in place or from a retry topic.
    """

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    headers: Headers = field(default=())
    timestamp: float | None = None
    attempt: int = 1

    @property
    def key_str(self) -> str:
        """The key decoded as UTF-8, ``""`` when there is none.

        Raises:
            DecodeError: the key is not valid UTF-8.

        """
        return decode_text(self.key, "key", self.topic, self.partition, self.offset)

    @property
    def value_str(self) -> str:
        """The value decoded as UTF-8, ``""`` for a null value (tombstone).

        Raises:
            DecodeError: the value is not valid UTF-8.

        """
        return decode_text(self.value, "value", self.topic, self.partition, self.offset)

    def header(self, name: str) -> bytes | None:
        """The value of the last header called ``name``, or None."""
        for header_name, value in reversed(self.headers):
            if header_name == name:
                return value
        return None

    @classmethod
    def from_kafka(cls, record: KafkaMessage, attempt: int = 1) -> Message:
        """Copy a confluent-kafka message into a Message; ``attempt`` counts this delivery's."""
        kind, millis = record.timestamp()
        headers = record.headers()
        partition = record.partition()
        offset = record.offset()
        return cls(
            topic=record.topic() or "",
            partition=-1 if partition is None else partition,
            offset=-1 if offset is None or offset < 0 else offset,
            key=record.key(),
            value=record.value(),
            headers=_headers(headers),
            timestamp=None if kind == TIMESTAMP_NOT_AVAILABLE else millis / 1000.0,
            attempt=attempt + _earlier_attempts(headers),
        )

    def __repr__(self) -> str:
        return (
            f"Message(topic={self.topic!r}, partition={self.partition}, offset={self.offset}, "
            f"key={self.key!r}, value={_preview(self.value)})"
        )


def _earlier_attempts(raw: object) -> int:
    """Attempts a retry topic's message records (its last ATTEMPTS_HEADER), else 0."""
    if not raw:
        return 0
    return decode_int(last(raw, ATTEMPTS_HEADER)) or 0  # type: ignore[arg-type]


def _headers(raw: object) -> Headers:
    # confluent-kafka returns a list of (name, bytes | None) pairs, or None.
    if not isinstance(raw, list):
        return ()
    return tuple((str(name), value if isinstance(value, bytes) else None) for name, value in raw)


def _preview(value: bytes | None, limit: int = 60) -> str:
    if value is None or len(value) <= limit:
        return repr(value)
    return f"{value[:limit]!r}... ({len(value)} bytes)"
