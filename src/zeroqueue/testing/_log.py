"""Topics of the in-memory broker: partitions as ordered logs of records.

A record is a real ``confluent_kafka.Message`` (topic, partition, offset, key,
value, headers, a CreateTime timestamp), the type the engine reads; building
one needs confluent-kafka 2.13 or later.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, cast

from confluent_kafka import TIMESTAMP_CREATE_TIME
from confluent_kafka import Message as KafkaMessage

from zeroqueue.errors import ConfigError

__all__ = ["HeaderPairs", "PartitionLog", "TopicLog", "make_record", "normal_headers"]

#: Headers as a record carries them.
HeaderPairs = list[tuple[str, bytes | None]]


def normal_headers(headers: Any) -> HeaderPairs | None:
    """Headers given to produce() (a mapping or pairs, str or bytes values) as stored pairs.

    Raises TypeError, as confluent-kafka does, for anything else.
    """
    if headers is None:
        return None
    pairs = headers.items() if isinstance(headers, Mapping) else headers
    if not isinstance(pairs, Sequence | type({}.items())) or isinstance(pairs, str | bytes):
        raise TypeError(f"headers must be a dict or a list of (str, value) tuples, not {pairs!r}")
    stored: HeaderPairs = []
    pair: Any
    for pair in pairs:
        if not isinstance(pair, tuple) or len(pair) != 2 or not isinstance(pair[0], str):
            raise TypeError(f"expected a (str, str | bytes | None) header, got {pair!r}")
        name, value = pair
        if isinstance(value, str):
            value = value.encode()
        elif value is not None and not isinstance(value, bytes):
            raise TypeError(f"header {name!r}: expected str, bytes or None, got {value!r}")
        stored.append((name, value))
    return stored


def make_record(
    topic: str,
    *,
    partition: int,
    offset: int,
    key: bytes | None,
    value: bytes | None,
    headers: HeaderPairs | None,
    timestamp_ms: int,
) -> KafkaMessage:
    """A record as a consumer fetches it."""
    try:
        return KafkaMessage(
            topic=topic,
            partition=partition,
            offset=offset,
            key=key,
            value=value,
            headers=cast(list[tuple[str, str | bytes | None]], headers) or None,
            timestamp=(TIMESTAMP_CREATE_TIME, timestamp_ms),
        )
    except TypeError as exc:  # confluent-kafka < 2.13
        raise ConfigError(
            "zeroqueue.testing: confluent-kafka 2.13 or later is needed to build records"
            " in memory; upgrade confluent-kafka"
        ) from exc


@dataclass
class PartitionLog:
    """One partition: its records, the offset of each being its index."""

    records: list[KafkaMessage] = field(default_factory=list)

    @property
    def end(self) -> int:
        """The offset the next record gets (the high watermark)."""
        return len(self.records)


@dataclass
class TopicLog:
    """A topic: its partitions and its configuration."""

    name: str
    partitions: list[PartitionLog]
    config: dict[str, str] = field(default_factory=dict)

    @classmethod
    def new(cls, name: str, partitions: int, config: Mapping[str, str] | None) -> TopicLog:
        """A topic of ``partitions`` empty partitions."""
        if not isinstance(partitions, int) or isinstance(partitions, bool) or partitions < 1:
            raise ConfigError(f"partitions: got {partitions!r}; expected an int of at least 1")
        return cls(name, [PartitionLog() for _ in range(partitions)], dict(config or {}))

    def append(
        self,
        partition: int,
        *,
        key: bytes | None,
        value: bytes | None,
        headers: HeaderPairs | None,
        timestamp_ms: int = 0,
    ) -> KafkaMessage:
        """Append one record to ``partition``; return it, with its offset."""
        log = self.partitions[partition]
        record = make_record(
            self.name,
            partition=partition,
            offset=log.end,
            key=key,
            value=value,
            headers=headers,
            timestamp_ms=timestamp_ms or int(time.time() * 1000),
        )
        log.records.append(record)
        return record
