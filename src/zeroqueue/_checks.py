"""Checks on options that raise a ConfigError naming the option."""

from __future__ import annotations

import math
import threading
from collections.abc import Mapping
from typing import Any

from zeroqueue.errors import ConfigError

__all__ = [
    "MAX_CLIENT_ID_BYTES",
    "check_client_id",
    "check_flag",
    "check_number",
    "check_seconds",
    "check_settings",
    "client_id_name",
    "client_id_problem",
]

#: The longest client id with non-ASCII characters, in bytes of UTF-8. librdkafka keeps
#: 127 bytes of a client's name and cuts the rest, mid-character too; confluent-kafka
#: then fails to decode that client's log lines and raises from every poll. (A cut
#: ASCII id stays valid text, so it may be longer.)
MAX_CLIENT_ID_BYTES = 127


def check_number(
    name: str,
    value: float,
    *,
    minimum: float,
    inclusive: bool = True,
    maximum: float | None = None,
    limit_of: str = "",
) -> None:
    """Raise ConfigError unless ``value`` is a finite number within the bounds.

    ``limit_of`` names what sets ``maximum`` (a librdkafka property, say), so the
    message says why a large value is refused.
    """
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    ok = ok and (value >= minimum if inclusive else value > minimum)
    ok = ok and (maximum is None or value <= maximum)
    if not ok:
        expected = f"a finite number {'>=' if inclusive else '>'} {minimum}"
        if maximum is not None:
            expected += f" and <= {maximum}" + (f" ({limit_of})" if limit_of else "")
        raise ConfigError(f"{name}: got {value!r}; expected {expected}")


def check_seconds(name: str, value: float, *, inclusive: bool = True) -> None:
    """Raise ConfigError unless ``value`` is a wait Python's threading can take (>= 0)."""
    check_number(
        name,
        value,
        minimum=0,
        inclusive=inclusive,
        maximum=threading.TIMEOUT_MAX,
        limit_of="threading.TIMEOUT_MAX",
    )


def check_flag(name: str, value: object, *, optional: bool = False) -> None:
    """Raise ConfigError unless ``value`` is True or False (or None, when ``optional``)."""
    if isinstance(value, bool) or (optional and value is None):
        return
    expected = "True, False or None" if optional else "True or False"
    raise ConfigError(f"{name}: got {value!r}; expected {expected}")


def check_settings(name: str, value: object) -> Mapping[str, Any] | None:
    """``value`` if it is None or a mapping of librdkafka property names; else ConfigError."""
    if value is None:
        return None
    expected = (
        "expected a mapping of librdkafka property names to values, such as"
        " {'socket.keepalive.enable': True}"
    )
    if not isinstance(value, Mapping):
        raise ConfigError(f"{name}: got a {type(value).__name__}; {expected}")
    others = [key for key in value if not isinstance(key, str)]
    if others:
        # The keys only: the values may hold sasl.password.
        raise ConfigError(f"{name}: got keys {', '.join(map(repr, others))}; {expected}")
    client_id = value.get("client.id")
    if isinstance(client_id, str):
        # The same crash as a bad Name: every poll() of the client would raise.
        check_client_id(f"{name}['client.id']", client_id)
    return value


def check_client_id(name: str, value: object) -> None:
    """Raise ConfigError unless ``value`` is a string librdkafka can name a client by."""
    if not isinstance(value, str):
        raise ConfigError(f"{name}: got {value!r}; expected a string (the Kafka client id)")
    problem = client_id_problem(value)
    if problem:
        raise ConfigError(f"{name}: got {value!r}; expected {problem}")


def client_id_name(value: str) -> str:
    """A config model's validator of a Name that is also the Kafka client id."""
    problem = client_id_problem(value)
    if problem:
        raise ValueError(f"{problem}; it is the Kafka client id")
    return value


def client_id_problem(value: str) -> str:
    """What a client id must be instead, or "" when librdkafka can take ``value``."""
    try:
        size = len(value.encode("utf-8"))
    except UnicodeEncodeError:
        return "text that UTF-8 can encode (no lone surrogates)"
    if size > MAX_CLIENT_ID_BYTES and not value.isascii():
        return (
            f"at most {MAX_CLIENT_ID_BYTES} bytes of UTF-8 when not ASCII, not {size}"
            " (librdkafka cuts a longer client id, mid-character too)"
        )
    return ""
