"""Checks on numeric options that raise a ConfigError naming the option."""

from __future__ import annotations

import math

from zeroqueue.errors import ConfigError

__all__ = ["check_number"]


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
