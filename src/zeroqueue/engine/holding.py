"""Holding back records not due yet (delay tiers, retry topics) without a busy loop.

A held partition is paused at its first record not due. When that record is due
soon, it and what follows it in the fetch wait here, in memory, and are handed
back the moment it falls due: no second fetch, whose round trip would make every
hop of a delayed message later. When it is due later than that, the partition is
sought back to it and fetched again shortly before it is due (memory is not held
for hours). Either way the partition is sought to where fetching must go on, so
records fetched for it meanwhile can be dropped, and it is resumed only once
that seek succeeded: resuming unsought would fetch past what is held, and
committing past it would lose it.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Container
from typing import Protocol

from confluent_kafka import KafkaException
from confluent_kafka import Message as KafkaMessage

from zeroqueue.engine.source import Source, TopicPartitionKey

__all__ = ["KEEP_WITHIN", "HeldPartitions", "HoldBack"]

_log = logging.getLogger("zeroqueue.engine")

#: Records whose partition's head is due within this many seconds wait in memory;
#: a partition due later is fetched again this long before it is due. Longer than
#: a fetch round trip on a busy machine, short enough that little waits in memory.
KEEP_WITHIN = 2.0
# How soon a held partition whose seek failed is tried again, in seconds.
SEEK_RETRY = 1.0


class HoldBack(Protocol):
    """Which fetched records are not due yet (a retry topic's): the engine holds them back.

    A held partition waits without a busy loop (see :mod:`zeroqueue.engine.holding`)
    while the partitions of other topics keep flowing. Records of one partition
    must fall due in offset order.
    """

    topics: frozenset[str]

    def due(self, record: KafkaMessage) -> float:
        """When ``record`` is due, in ``time.time()`` seconds (0: now)."""


class HeldPartitions:
    """The partitions held back, and the records kept for them; changed by the fetch thread only."""

    def __init__(self, hold_back: HoldBack, name: str) -> None:
        self._hold_back = hold_back
        self._name = name
        # When (time.time()) each held partition must be looked at again: its head
        # is due then (records kept), or must be fetched again then (none kept).
        self._wake: dict[TopicPartitionKey, float] = {}
        # The records kept in memory for a held partition, its head first.
        self._kept: dict[TopicPartitionKey, list[KafkaMessage]] = {}
        # Held partitions whose seek failed: the offset to seek to before resuming.
        self._unsought: dict[TopicPartitionKey, int] = {}
        # Records wake() handed out, per partition, until dispatched() (for kept_count).
        self._releasing: dict[TopicPartitionKey, int] = {}

    def __bool__(self) -> bool:
        return bool(self._wake)

    def __contains__(self, key: object) -> bool:
        return key in self._wake

    def kept_count(self, key: TopicPartitionKey) -> int:
        """How many records are kept in memory for ``key``, or on their way out of it.

        Safe from other threads (metrics scrapes): a kept list is never changed once
        stored, and a released record counts here until :meth:`dispatched`, so it is
        never counted nowhere in between.
        """
        return len(self._kept.get(key, ())) + self._releasing.get(key, 0)

    def next_wake(self) -> float:
        """When the first held partition needs looking at (``time.time()``); call when held."""
        return min(self._wake.values())

    def hold(
        self, records: list[KafkaMessage], owned: Container[TopicPartitionKey], source: Source
    ) -> list[KafkaMessage]:
        """The records due now; those not due, and what follows them, are held back."""
        hold_back, held = self._hold_back, self._wake
        topics, wall = hold_back.topics, time.time()
        ready: list[KafkaMessage] = []
        cut: dict[TopicPartitionKey, tuple[float, list[KafkaMessage]]] = {}
        for record in records:
            topic = record.topic()
            if topic in topics:
                key = (topic or "", record.partition() or 0)
                if key in cut:
                    cut[key][1].append(record)
                    continue
                if key in held:
                    # Fetched before the pause took. Above the held head, the seek brings
                    # it back in turn; below it, it was dispatched already (a partition's
                    # records come in offset order, and nothing seeks a held one back).
                    continue
                due = hold_back.due(record)
                if due > wall:
                    cut[key] = (due, [record])
                    continue
            ready.append(record)
        for key, (due, kept) in cut.items():
            if key not in owned:
                continue  # revoked meanwhile
            source.pause([key])
            if due - wall <= KEEP_WITHIN:
                self._kept[key] = kept
                held[key] = due
                go_on_at = (kept[-1].offset() or 0) + 1
            else:
                held[key] = due - KEEP_WITHIN
                go_on_at = kept[0].offset() or 0
            self._seek(source, key, go_on_at)
            _log.debug(
                "%s: %s[%d] held back %.1fs (%d kept)",
                self._name,
                *key,
                due - wall,
                len(self._kept.get(key, ())),
            )
        return ready

    def wake(self, source: Source) -> tuple[list[KafkaMessage], list[TopicPartitionKey]]:
        """The kept records due now, and the partitions to resume once they are dispatched."""
        due_of, wall = self._hold_back.due, time.time()
        records: list[KafkaMessage] = []
        resume: list[TopicPartitionKey] = []
        for key, at in list(self._wake.items()):
            if at > wall:
                continue
            kept = self._kept.get(key)
            if kept:
                split = next((n for n, record in enumerate(kept) if due_of(record) > wall), None)
                if split is not None:
                    # A later record is not due yet: hold on, from it.
                    self._hand_out(key, kept[:split], records)
                    rest, due = kept[split:], due_of(kept[split])
                    if due - wall <= KEEP_WITHIN:
                        self._kept[key], self._wake[key] = rest, due
                    else:
                        # Not soon: let them go and fetch them again later (a failed
                        # seek is tried again before the partition resumes).
                        del self._kept[key]
                        self._seek(source, key, rest[0].offset() or 0)
                        self._wake[key] = due - KEEP_WITHIN
                    continue
                self._hand_out(key, kept, records)
                del self._kept[key]
            unsought = self._unsought.get(key)
            if unsought is not None and not self._seek(source, key, unsought):
                self._wake[key] = wall + SEEK_RETRY  # resuming now would skip records
                continue
            del self._wake[key]
            resume.append(key)
        return records, resume

    def dispatched(self) -> None:
        """The records :meth:`wake` handed out were dispatched (or dropped): stop counting them."""
        self._releasing.clear()

    def _hand_out(
        self, key: TopicPartitionKey, kept: list[KafkaMessage], records: list[KafkaMessage]
    ) -> None:
        # Counted as releasing before they leave the kept list: never counted nowhere.
        self._releasing[key] = self._releasing.get(key, 0) + len(kept)
        records += kept

    def forget(self, key: TopicPartitionKey) -> None:
        """The partition left (revoked, lost): drop what is held for it."""
        self._wake.pop(key, None)
        self._kept.pop(key, None)
        self._unsought.pop(key, None)

    def _seek(self, source: Source, key: TopicPartitionKey, offset: int) -> bool:
        """Seek a held partition to where fetching must go on; False if that failed.

        Until a seek succeeds the partition stays paused (it is tried again on each
        wake).
        """
        try:
            source.seek(key, offset)
        except KafkaException as error:
            self._unsought[key] = offset
            _log.warning(
                "%s: %s[%d] could not seek to held offset %d (%s); it stays paused",
                self._name,
                *key,
                offset,
                error,
            )
            return False
        self._unsought.pop(key, None)
        return True
