"""What a moved message carries: its own headers, then Spring Kafka's, each bounded in size."""

from __future__ import annotations

import math
import time
import traceback
from typing import Any

from zeroqueue.errors import MessageTooLargeError
from zeroqueue.message import Message
from zeroqueue.retry import _headers as h

__all__ = ["MOVE_HEADROOM", "moved_headers", "too_large"]

# The longest each free-text header may be, in bytes: a few kilobytes are plenty
# to find a bug, and a move must fit where the message itself did.
_STACKTRACE_LIMIT = 8_000
_MESSAGE_LIMIT = 4_000
_TYPE_NAME_LIMIT = 500

#: Bytes the headers a move adds take at most, besides the consumer group's name:
#: the free-text headers above, a topic name (249 at most), six numbers (40 bytes), twelve
#: header names (330) and their length fields, rounded up.
MOVE_HEADROOM = 16 * 1024


def moved_headers(
    message: Message, error: BaseException, attempts: int, group: str, due: float | None
) -> list[tuple[str, bytes]]:
    """The message's own headers, then Spring Kafka's retry and dead-letter headers.

    Where it came from (topic, partition, offset and timestamp of the original
    record) is written on its first move and kept on the next ones.
    """
    kept = [(name, value or b"") for name, value in message.headers if name not in h.OWN_HEADERS]
    if h.last(message.headers, h.ORIGINAL_TOPIC) is None:  # its first move
        stamp = message.timestamp if message.timestamp is not None else time.time()
        original_stamp = h.encode_long(int(stamp * 1000))
        where = [
            (h.ORIGINAL_TOPIC, message.topic.encode()),
            (h.ORIGINAL_PARTITION, h.encode_int(message.partition)),
            (h.ORIGINAL_OFFSET, h.encode_long(message.offset)),
            (h.ORIGINAL_TIMESTAMP, original_stamp),
            # Spring's retry topics keep one the record had (a Spring retry of it).
            (
                h.RETRY_ORIGINAL_TIMESTAMP,
                h.last(message.headers, h.RETRY_ORIGINAL_TIMESTAMP) or original_stamp,
            ),
        ]
    else:  # it moved before: keep where it came from first
        names = (
            h.ORIGINAL_TOPIC,
            h.ORIGINAL_PARTITION,
            h.ORIGINAL_OFFSET,
            h.ORIGINAL_TIMESTAMP,
            h.RETRY_ORIGINAL_TIMESTAMP,
        )
        where = [(name, h.last(message.headers, name) or b"") for name in names]
    cause = error.__cause__ or error.__context__
    stack = "".join(traceback.format_exception(type(error), error, error.__traceback__))
    headers = [
        *kept,
        *where,
        (h.ORIGINAL_CONSUMER_GROUP, group.encode()),
        (h.EXCEPTION_FQCN, _head(_qualified(type(error)), _TYPE_NAME_LIMIT)),
        (h.EXCEPTION_MESSAGE, _head(str(error), _MESSAGE_LIMIT)),
        (h.EXCEPTION_STACKTRACE, _tail(stack, _STACKTRACE_LIMIT)),
        (h.ATTEMPTS, h.encode_int(attempts)),
    ]
    if cause is not None:
        headers.append((h.EXCEPTION_CAUSE_FQCN, _head(_qualified(type(cause)), _TYPE_NAME_LIMIT)))
    if due is not None:
        # Rounded up: a due time in whole milliseconds must not make a message early.
        headers.append((h.BACKOFF_TIMESTAMP, h.encode_long(math.ceil(due * 1000))))
    return headers


def too_large(
    message: Message,
    topic: str,
    headers: list[tuple[str, bytes]],
    *,
    limit: int | None,
    by_broker: bool,
) -> MessageTooLargeError:
    """The error for a move too large for the retry producer, or for the topic it goes to."""
    body = len(message.key or b"") + len(message.value or b"")
    header_bytes = sum(len(name.encode()) + len(value) for name, value in headers)
    added = sum(len(name.encode()) + len(value) for name, value in headers if name in h.OWN_HEADERS)
    size = body + header_bytes
    what = (
        f"moving {message.topic}[{message.partition}]@{message.offset} to {topic!r}: {size} bytes"
        f" (key and value {body}, headers {header_bytes}, of which the retry headers {added})"
    )
    if not by_broker:
        return MessageTooLargeError(
            f"{what} is more than the retry producer takes ({limit} bytes: the source topics'"
            f" max.message.bytes, and {MOVE_HEADROOM} more for the headers a move adds)",
            size=size,
            limit=limit,
        )
    said = f"its max.message.bytes is {limit}" if limit is not None else "its limit is smaller"
    return MessageTooLargeError(
        f"{what}: the broker refused it as too large for {topic!r} ({said}); give {topic!r}"
        f" the source topic's max.message.bytes plus {MOVE_HEADROOM}",
        size=size,
        limit=limit,
    )


def _head(text: str, limit: int) -> bytes:
    """``text`` as UTF-8, cut to its first ``limit`` bytes (never inside a character)."""
    data = text.encode(errors="replace")
    return data if len(data) <= limit else data[:limit].decode(errors="ignore").encode()


def _tail(text: str, limit: int) -> bytes:
    """``text`` as UTF-8, cut to its last ``limit`` bytes (never inside a character)."""
    data = text.encode(errors="replace")
    return data if len(data) <= limit else data[-limit:].decode(errors="ignore").encode()


def _qualified(kind: type[Any]) -> str:
    return f"{kind.__module__}.{kind.__qualname__}"
