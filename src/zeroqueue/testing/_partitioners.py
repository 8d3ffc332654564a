"""librdkafka's partitioners, in Python: the partitions a real producer would pick.

A Pusher's ``"hash"`` balancer is librdkafka's ``fnv1a_random`` partitioner and
``"murmur2"`` its ``murmur2_random``; librdkafka's default is
``consistent_random`` (CRC32). Keyless messages go to a random partition with
every ``*_random`` one, as on a real cluster.
"""

from __future__ import annotations

import random
import zlib
from collections.abc import Callable

__all__ = ["choose_partition", "fnv1a_partition", "murmur2_partition"]


def fnv1a_partition(key: bytes, partitions: int) -> int:
    """FNV-1a 32 as a signed int32, absolute value, modulo: Sarama's and kafka-go's Hash."""
    h = 0x811C9DC5
    for byte in key:
        h ^= byte
        h = (h * 0x01000193) & 0xFFFFFFFF
    signed = h - (1 << 32) if h >= 1 << 31 else h
    return abs(signed) % partitions


def murmur2_partition(key: bytes, partitions: int) -> int:
    """The Java client's default: ``toPositive(murmur2(key)) % partitions``."""
    m, r = 0x5BD1E995, 24
    length = len(key)
    h = (0x9747B28C ^ length) & 0xFFFFFFFF
    for i in range(0, length - length % 4, 4):
        k = int.from_bytes(key[i : i + 4], "little")
        k = (k * m) & 0xFFFFFFFF
        k ^= k >> r
        k = (k * m) & 0xFFFFFFFF
        h = (h * m) & 0xFFFFFFFF
        h ^= k
    tail = key[length - length % 4 :]
    if len(tail) >= 3:
        h ^= tail[2] << 16
    if len(tail) >= 2:
        h ^= tail[1] << 8
    if tail:
        h ^= tail[0]
        h = (h * m) & 0xFFFFFFFF
    h ^= h >> 13
    h = (h * m) & 0xFFFFFFFF
    h ^= h >> 15
    return (h & 0x7FFFFFFF) % partitions


def _crc32_partition(key: bytes, partitions: int) -> int:
    return zlib.crc32(key) % partitions


_KEYED: dict[str, Callable[[bytes, int], int]] = {
    "fnv1a": fnv1a_partition,
    "murmur2": murmur2_partition,
    "consistent": _crc32_partition,
}


def choose_partition(partitioner: str, key: bytes | None, partitions: int) -> int:
    """The partition librdkafka's ``partitioner`` setting picks for ``key``."""
    name = partitioner.removesuffix("_random")
    if partitioner == "random" or (key is None and partitioner.endswith("_random")):
        return random.randrange(partitions)
    keyed = _KEYED.get(name, _crc32_partition)
    return keyed(key or b"", partitions)
