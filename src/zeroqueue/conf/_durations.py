"""Durations as go-zero writes them (``500ms``, ``1m30s``), as seconds in Python."""

from __future__ import annotations

import math
import re
from typing import Annotated, Any

from pydantic import BeforeValidator

__all__ = ["Duration", "parse_duration"]

# Go's time.ParseDuration units.
_UNITS = {
    "ns": 1e-9,
    "us": 1e-6,
    "µs": 1e-6,
    "μs": 1e-6,
    "ms": 1e-3,
    "s": 1.0,
    "m": 60.0,
    "h": 3600.0,
}
_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|μs|ms|s|m|h)")
_WHOLE = re.compile(r"[+-]?(?:(?:\d+(?:\.\d*)?|\.\d+)(?:ns|us|µs|μs|ms|s|m|h))+|[+-]?0")


def parse_duration(value: Any) -> float:
    """Seconds from a Go duration string (``"1h2m3.5s"``, ``"250ms"``) or a number of seconds.

    A bare number is seconds, the Python API's unit (Go reads a bare number as
    nanoseconds: files that a Go service shares should write ``"2s"``).

    Raises:
        ValueError: neither; the message says what is expected.
    """
    if isinstance(value, bool):
        raise ValueError("a duration such as '500ms', '2s' or '1m30s'")
    if isinstance(value, (int, float)):
        seconds = float(value)
    elif isinstance(value, str) and _WHOLE.fullmatch(value.strip()):
        text = value.strip()
        sign = -1.0 if text.startswith("-") else 1.0
        seconds = sign * sum(float(n) * _UNITS[unit] for n, unit in _PART.findall(text))
    else:
        raise ValueError("a duration such as '500ms', '2s' or '1m30s' (Go's units: ns us ms s m h)")
    if not math.isfinite(seconds) or seconds < 0:
        raise ValueError("a duration of 0 or more, such as '500ms' or '2s'")
    return seconds


#: A duration field: seconds as a float, read from ``"500ms"`` or ``"1m"`` in files.
Duration = Annotated[float, BeforeValidator(parse_duration)]
