"""Delay tiers: topics where a message waits a fixed time, so each falls due in order.

A delayed message waits outside its topic, in a chain of tier topics
(``orders.delay-64s``, ...). Every message of one tier waits exactly that tier's
time, so a tier's partitions fall due in the order they were written: a consumer
holds a partition back at its first message not due, without a busy loop, and
lets it flow when that one is due. A delay is rounded up to a sixteenth of a
second and spelled in base 4 (at most three hops per tier), largest tier first.
"""

from __future__ import annotations

import math

__all__ = [
    "MAX_DELAY",
    "QUANTUM",
    "TIERS",
    "next_tier",
    "ticks_of",
    "tier_topic",
    "tier_topics",
]

#: The unit every delay is rounded up to, in seconds.
QUANTUM = 1 / 16
#: Tier lengths in quanta: 1/16 s, 1/4 s, 1 s, 4 s, ... 65,536 s (about 18 h).
TIERS: tuple[int, ...] = tuple(4**power for power in range(11))
#: The longest delay accepted: past a month, a database is the better place to wait.
MAX_DELAY = 31 * 24 * 3600.0


def ticks_of(seconds: float) -> int:
    """A delay in quanta, rounded up (a message is never released early)."""
    return max(0, math.ceil(seconds / QUANTUM - 1e-9))


def next_tier(ticks: int) -> int:
    """The tier (in quanta) a message with ``ticks`` left waits in next: the largest that fits."""
    tier = TIERS[0]
    for length in TIERS:
        if length <= ticks:
            tier = length
    return tier


def tier_topic(topic: str, tier: int) -> str:
    """The topic of one tier of ``topic``: ``orders.delay-1s``, ``orders.delay-62.5ms``."""
    seconds = tier * QUANTUM
    spelled = f"{seconds:g}s" if seconds >= 1 else f"{seconds * 1000:g}ms"
    return f"{topic}.delay-{spelled}"


def tier_topics(topic: str) -> list[str]:
    """Every tier topic of ``topic``, shortest first."""
    return [tier_topic(topic, tier) for tier in TIERS]
