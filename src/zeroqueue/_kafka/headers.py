"""Header values as numbers, and reading a header from a record's list."""

from __future__ import annotations

import re
import struct
from collections.abc import Iterable

__all__ = ["decode_int", "encode_int", "encode_long", "last"]

_INT = struct.Struct(">i")
_LONG = struct.Struct(">q")
# A number written as text: ASCII digits, maybe signed.
_DECIMAL = re.compile(rb"[+-]?[0-9]+")


def encode_int(value: int) -> bytes:
    """4 bytes, big-endian."""
    return _INT.pack(value)


def encode_long(value: int) -> bytes:
    """8 bytes, big-endian."""
    return _LONG.pack(value)


def decode_int(data: bytes | None) -> int | None:
    """A number written as 1 to 8 big-endian two's-complement bytes, or as decimal text.

    Binary covers :func:`encode_int` and :func:`encode_long`, and what Spring
    Kafka writes: Java's ``BigInteger.toByteArray()`` (as short as the number
    allows: 6 bytes for a timestamp in milliseconds today) and the single byte
    older versions wrote for an attempt count. Bytes that are all ASCII digits
    (maybe after a sign) are read as text: as binary they would be numbers no
    header holds (``b"12"`` would be 12,594; four digits, 808 million or more;
    six, a timestamp past the year 3600). Returns None for anything else.
    """
    if not data:
        return None
    if _DECIMAL.fullmatch(data):
        return int(data)
    if len(data) <= _LONG.size:
        return int.from_bytes(data, "big", signed=True)
    return None


def last(headers: Iterable[tuple[str, bytes | None]], name: str) -> bytes | None:
    """The value of the last header called ``name``, or None."""
    found = None
    for header, value in headers:
        if header == name:
            found = value
    return found
