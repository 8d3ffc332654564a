"""Where a delayed message goes next, and with which headers: the pure part of delay.

A push with a delay goes to its first tier (:func:`first_hop`); each release from
a tier (:func:`next_hop`) sends it to the next tier, or to its topic once no
time is left. Hop times are anchored to the previous hop's due time, not to the
clock at release, so a release that came late does not make the next one later.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from zeroqueue._kafka.headers import decode_int, encode_long, last
from zeroqueue.delay import _headers as h
from zeroqueue.delay._tiers import QUANTUM, next_tier, ticks_of, tier_topic
from zeroqueue.errors import ConsumeError

__all__ = ["Hop", "Route", "first_hop", "next_hop"]

_QUANTUM_MS = QUANTUM * 1000

HeaderList = list[tuple[str, bytes | None]]


@dataclass(frozen=True)
class Route:
    """How a released message finds its partition of the target topic."""

    #: The partition a Python balancer chose at push time, or None.
    partition: int | None = None
    #: Otherwise the balancer whose librdkafka partitioner chooses it on release.
    balancer: str = "hash"


@dataclass(frozen=True)
class Hop:
    """Where a delayed message goes next: a tier topic, or (``final``) its own topic."""

    topic: str
    headers: HeaderList
    final: bool
    route: Route


def first_hop(
    target: str, delay: float, now: float, headers: HeaderList, route: Route
) -> Hop | None:
    """The first tier for a message pushed ``delay`` seconds ahead; None for no delay."""
    ticks = ticks_of(delay)
    if ticks == 0:
        return None
    now_ms = now * 1000
    # Whole milliseconds, rounded up: never early.
    due_ms = math.ceil(now_ms + ticks * _QUANTUM_MS)
    tier = next_tier(ticks)
    hop_due_ms = math.ceil(now_ms + tier * _QUANTUM_MS)
    own = [(name, value) for name, value in headers if name not in h.ROUTING and name != h.DUE]
    routing: HeaderList = [(h.DUE, encode_long(due_ms)), (h.TARGET, target.encode())]
    if route.partition is not None:
        routing.append((h.PARTITION, str(route.partition).encode()))
    else:
        routing.append((h.PARTITIONER, route.balancer.encode()))
    routing.append((h.HOP_DUE, encode_long(hop_due_ms)))
    return Hop(tier_topic(target, tier), own + routing, final=False, route=route)


def next_hop(topic: str, headers: Sequence[tuple[str, bytes | None]]) -> Hop:
    """Where a message released from tier topic ``topic`` goes next.

    Raises:
        ConsumeError: its headers do not say where it is going (not pushed with a
            delay by zeroqueue), naming the header.
    """
    listed = list(headers)
    due_ms = _time(listed, h.DUE, topic)
    hop_due_ms = _time(listed, h.HOP_DUE, topic)
    target = last(listed, h.TARGET)
    if not target:
        raise ConsumeError(f"a message of delay tier {topic!r} has no {h.TARGET} header")
    partition = decode_int(last(listed, h.PARTITION))
    balancer = last(listed, h.PARTITIONER)
    route = Route(partition, balancer.decode() if balancer else "hash")
    left = round((due_ms - hop_due_ms) / _QUANTUM_MS)
    target_topic = target.decode()
    if left <= 0:
        own = [(name, value) for name, value in listed if name not in h.ROUTING]
        return Hop(target_topic, own, final=True, route=route)
    tier = next_tier(left)
    hop_due = encode_long(math.ceil(hop_due_ms + tier * _QUANTUM_MS))
    moved = [(name, value) for name, value in listed if name != h.HOP_DUE]
    moved.append((h.HOP_DUE, hop_due))
    return Hop(tier_topic(target_topic, tier), moved, final=False, route=route)


def _time(headers: HeaderList, name: str, topic: str) -> int:
    value = decode_int(last(headers, name))
    if value is None:
        raise ConsumeError(
            f"a message of delay tier {topic!r} has no {name} header (milliseconds since"
            " the epoch); it was not pushed with a delay by zeroqueue"
        )
    return value
