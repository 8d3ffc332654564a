"""The retry headers: numbers as Spring writes them, and what a move adds, bounded."""

from __future__ import annotations

import time

import pytest

from zeroqueue import Message
from zeroqueue.message import Headers
from zeroqueue.retry import headers as h
from zeroqueue.retry._moved import MOVE_HEADROOM, moved_headers


def _big_integer(value: int) -> bytes:
    """Java's BigInteger.toByteArray(): the shortest two's-complement big-endian bytes."""
    return value.to_bytes(value.bit_length() // 8 + 1, "big", signed=True)


@pytest.mark.parametrize(
    ("data", "number"),
    [
        # what zeroqueue writes
        (h.encode_int(3), 3),
        (h.encode_int(-2), -2),
        (h.encode_long(1_700_000_000_000), 1_700_000_000_000),
        # what Spring writes: BigInteger.toByteArray() of a timestamp (6 bytes), of an
        # attempt count, and the single attempts byte of older versions
        (_big_integer(1_796_142_773_822), 1_796_142_773_822),
        (_big_integer(2), 2),
        (b"\x03", 3),
        (b"\xff", -1),
        (b"\x01\x00", 256),
        (b"\x00\x01\x00", 256),
        (b"\x80\x00\x00\x00\x00\x00\x00\x00", -(2**63)),
        # decimal text, hand-written or from other clients
        (b"12", 12),
        (b"-3", -3),
        (b"1700000000000", 1_700_000_000_000),
    ],
)
def test_decode_int_reads_any_big_endian_length_and_decimal_text(data: bytes, number: int) -> None:
    assert h.decode_int(data) == number


@pytest.mark.parametrize("data", [None, b"", b"\x01" * 9, b"twelve and more"])
def test_decode_int_gives_none_for_what_is_no_number(data: bytes | None) -> None:
    assert h.decode_int(data) is None


def test_spring_timestamps_are_never_taken_for_text() -> None:
    # The bytes of a BigInteger timestamp from now until the year 3600 are never all
    # ASCII digits: their first byte is below 0x30.
    for stamp in (int(time.time() * 1000), 52_000_000_000_000):
        data = _big_integer(stamp)
        assert data[0] < 0x30
        assert h.decode_int(data) == stamp


def _message(headers: Headers = (), timestamp: float | None = 1_700_000_000.5) -> Message:
    return Message("orders", 3, 41, b"k", b"v", headers, timestamp)


def test_the_first_move_records_the_original_records_timestamp_as_spring_does() -> None:
    # given a record written at 1_700_000_000.5 that fails long after
    headers = dict(moved_headers(_message(), ValueError("x"), 1, "billing", None))
    # then both original-timestamp headers hold the record's own time, in milliseconds
    assert h.decode_int(headers[h.ORIGINAL_TIMESTAMP]) == 1_700_000_000_500
    assert h.decode_int(headers[h.RETRY_ORIGINAL_TIMESTAMP]) == 1_700_000_000_500
    # and a later move (from a retry topic, its own timestamp newer) keeps them
    moved = Message("orders.billing.retry-10s", 0, 0, b"k", b"v", tuple(headers.items()), 2e9)
    again = dict(moved_headers(moved, ValueError("x"), 2, "billing", None))
    assert again[h.ORIGINAL_TIMESTAMP] == headers[h.ORIGINAL_TIMESTAMP]
    assert again[h.RETRY_ORIGINAL_TIMESTAMP] == headers[h.RETRY_ORIGINAL_TIMESTAMP]
    assert again[h.ORIGINAL_TOPIC] == b"orders"
    assert h.decode_int(again[h.ORIGINAL_OFFSET]) == 41


def test_a_spring_retry_timestamp_on_the_record_is_kept() -> None:
    spring = ((h.RETRY_ORIGINAL_TIMESTAMP, _big_integer(1_600_000_000_000)),)
    headers = dict(moved_headers(_message(spring), ValueError("x"), 1, "g", None))
    assert h.decode_int(headers[h.RETRY_ORIGINAL_TIMESTAMP]) == 1_600_000_000_000


def _deep(depth: int, text: str) -> None:
    if depth:
        _deep(depth - 1, text)
    raise ValueError(text)


def test_the_headers_a_move_adds_fit_its_headroom_however_long_the_error() -> None:
    # given an error with a huge message of multi-byte characters, a deep stack, a
    # cause, and a message from the longest topic name Kafka allows
    try:
        try:
            _deep(200, "ü" * 100_000)
        except ValueError as inner:
            raise RuntimeError("é" * 50_000) from inner
    except RuntimeError as caught:
        error = caught
    own = (("trace-id", b"abc"),)
    message = Message("t" * 249, 0, 1, b"k", b"v", own, time.time())
    group = "billing-service"
    # when it moves to a retry topic
    headers = moved_headers(message, error, 7, group, time.time() + 10)
    # then its own headers come first, unchanged
    assert headers[0] == ("trace-id", b"abc")
    # and the text headers are cut, each still valid UTF-8
    by_name = dict(headers)
    assert len(by_name[h.EXCEPTION_MESSAGE]) <= 4_000
    assert len(by_name[h.EXCEPTION_STACKTRACE]) <= 8_000
    for name in (h.EXCEPTION_MESSAGE, h.EXCEPTION_STACKTRACE):
        by_name[name].decode()
    # the stack trace keeps its end, the last error's text
    assert by_name[h.EXCEPTION_STACKTRACE].decode().endswith("é\n")
    assert by_name[h.EXCEPTION_FQCN] == b"builtins.RuntimeError"
    assert by_name[h.EXCEPTION_CAUSE_FQCN] == b"builtins.ValueError"
    # and all it added fits the headroom a move is given
    added = sum(len(n.encode()) + len(v) for n, v in headers if n in h.OWN_HEADERS)
    assert added + 6 * len(h.OWN_HEADERS) <= MOVE_HEADROOM + len(group)
