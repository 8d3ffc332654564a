"""Balancers: which partition a pushed message goes to.

``"hash"`` and ``"murmur2"`` run inside librdkafka (no Python work per message):

* ``"hash"``: FNV-1a 32-bit of the key, as a signed int32, modulo the partition
  count, absolute value. It is Sarama's ``HashPartitioner`` and kafka-go's
  ``Hash`` balancer (go-queue's ``kq.WithBalancer(&kafka.Hash{})``), so Go and
  Python producers of one topic put a key on the same partition.
* ``"murmur2"``: the Java client's default partitioner.

Keyless messages go to a random partition with both (librdkafka keeps a
partition for a short while to fill batches). ``"round_robin"``,
``"least_bytes"`` and a callable ``(key, partition_count) -> partition`` run in
Python: they ignore or inspect the key and cost a little per message.
"""

from __future__ import annotations

import itertools
import threading
from collections.abc import Callable
from typing import Literal, TypeAlias

from zeroqueue.errors import ConfigError

__all__ = [
    "BALANCER_NAMES",
    "Balancer",
    "BalancerFunc",
    "LeastBytesBalancer",
    "RoundRobinBalancer",
    "librdkafka_partitioner",
    "python_balancer",
]

#: A custom balancer: ``(key or None, partition_count) -> partition``.
BalancerFunc: TypeAlias = Callable[[bytes | None, int], int]

BalancerName: TypeAlias = Literal["hash", "murmur2", "round_robin", "least_bytes"]

#: The ``balancer=`` argument of a Pusher.
Balancer: TypeAlias = BalancerName | BalancerFunc

BALANCER_NAMES: tuple[BalancerName, ...] = ("hash", "murmur2", "round_robin", "least_bytes")

# librdkafka partitioners; the *_random variants spread keyless messages.
_NATIVE = {"hash": "fnv1a_random", "murmur2": "murmur2_random"}


class RoundRobinBalancer:
    """Each message to the next partition in turn, keys ignored."""

    def __init__(self) -> None:
        # next() on itertools.count is atomic under the GIL: no lock needed.
        self._counter = itertools.count()

    def __call__(self, key: bytes | None, partition_count: int) -> int:
        """Return the next partition."""
        return next(self._counter) % partition_count


class LeastBytesBalancer:
    """The partition that has received the fewest bytes from this pusher (kafka-go's LeastBytes)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._bytes: list[int] = []

    def __call__(self, key: bytes | None, partition_count: int) -> int:
        """Return the least loaded partition; callers add the size with :meth:`record`."""
        with self._lock:
            if len(self._bytes) != partition_count:
                self._bytes = (self._bytes + [0] * partition_count)[:partition_count]
            counts = self._bytes
            return min(range(partition_count), key=counts.__getitem__)

    def record(self, partition: int, size: int) -> None:
        """Count ``size`` bytes as sent to ``partition``."""
        with self._lock:
            if partition < len(self._bytes):
                self._bytes[partition] += size


def librdkafka_partitioner(balancer: Balancer) -> str | None:
    """The librdkafka ``partitioner`` setting for a native balancer, else None."""
    if isinstance(balancer, str):
        _check_name(balancer)
        return _NATIVE.get(balancer)
    return None


def python_balancer(balancer: Balancer) -> BalancerFunc | None:
    """A fresh Python balancer for ``balancer``, or None when librdkafka does the work."""
    if callable(balancer):
        return balancer
    _check_name(balancer)
    if balancer == "round_robin":
        return RoundRobinBalancer()
    if balancer == "least_bytes":
        return LeastBytesBalancer()
    return None


def _check_name(name: str) -> None:
    if name not in BALANCER_NAMES:
        raise ConfigError(
            f"balancer: got {name!r}; expected one of "
            + ", ".join(repr(n) for n in BALANCER_NAMES)
            + " or a callable (key, partition_count) -> partition"
        )
