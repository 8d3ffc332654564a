"""What a Pusher does for ``push(..., delay=...)``: check it, make the tiers once, plan the hop."""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Mapping
from datetime import datetime

from zeroqueue.delay._plan import HeaderList, Route, first_hop
from zeroqueue.delay._tiers import MAX_DELAY
from zeroqueue.delay._topics import ensure_tier_topics
from zeroqueue.errors import InvalidDelayError
from zeroqueue.producer.core import ProducerCore
from zeroqueue.producer.options import HeadersArg

__all__ = ["DelayedPushes", "delay_seconds"]


def delay_seconds(delay: float | None, at: datetime | float | None) -> float:
    """Seconds from now a message is due, from ``delay`` or ``at`` (one of them).

    Raises:
        InvalidDelayError: both or neither given, a delay below 0 or past MAX_DELAY,
            or ``at`` in the past (naming which, and by how much).
    """
    if (delay is None) == (at is None):
        raise InvalidDelayError(
            f"delay={delay!r}, at={at!r}: expected one of them (seconds, or a datetime)"
        )
    if at is not None:
        due = at.timestamp() if isinstance(at, datetime) else at
        if isinstance(due, bool) or not isinstance(due, (int, float)):
            raise InvalidDelayError(f"at: got {at!r}; expected a datetime or a Unix time")
        seconds = due - time.time()
        if seconds < 0:
            raise InvalidDelayError(
                f"at: got {at!r}, {-seconds:.3f}s in the past; expected a time after now"
            )
        what = "at"
    else:
        seconds = delay  # type: ignore[assignment]
        if isinstance(seconds, bool) or not isinstance(seconds, (int, float)) or seconds < 0:
            raise InvalidDelayError(f"delay: got {delay!r}; expected seconds >= 0")
        what = "delay"
    if not math.isfinite(seconds):
        # NaN passes every comparison: unchecked, it failed later with a ValueError,
        # after the first push had created the tiers.
        raise InvalidDelayError(
            f"{what}: got {delay if what == 'delay' else at!r}; expected a finite time"
        )
    if seconds > MAX_DELAY:
        raise InvalidDelayError(
            f"{what}: got {seconds:.0f}s ahead; expected at most {MAX_DELAY:.0f}s (31 days)"
        )
    return float(seconds)


class DelayedPushes:
    """One pusher's delayed pushes to ``topic``: where each goes first, and with what headers."""

    def __init__(self, core: ProducerCore, topic: str) -> None:
        self._core = core
        self._topic = topic
        self._tiers_ready = False
        self._lock = threading.Lock()

    @property
    def tiers_ready(self) -> bool:
        """Whether the tier topics are known to exist (no network call needed)."""
        return self._tiers_ready

    def ensure_tiers(self) -> None:
        """Create the topic's delay tiers if missing (the first delayed push does it)."""
        with self._lock:
            if self._tiers_ready:
                return
            brokers = self._core.brokers
            ensure_tier_topics(
                [brokers] if isinstance(brokers, str) else brokers,
                self._topic,
                kafka_config=self._core.admin_config,
            )
            self._tiers_ready = True

    def plan(
        self, key: str | bytes | None, headers: HeadersArg, seconds: float
    ) -> tuple[str, HeaderList | HeadersArg]:
        """The topic and headers of the push: the first tier, or the topic itself."""
        partition = self._core.partition_for(self._topic, key)
        balancer = self._core.options.balancer
        route = Route(partition, balancer if isinstance(balancer, str) else "hash")
        hop = first_hop(self._topic, seconds, time.time(), _listed(headers), route)
        if hop is None:
            return self._topic, headers
        return hop.topic, hop.headers


def _listed(headers: HeadersArg) -> HeaderList:
    if headers is None:
        return []
    pairs = headers.items() if isinstance(headers, Mapping) else headers
    return [(name, value.encode() if isinstance(value, str) else value) for name, value in pairs]
