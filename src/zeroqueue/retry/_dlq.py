"""Read a dead-letter topic, and re-drive its messages to the topics they came from."""

from __future__ import annotations

import contextlib
import re
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from confluent_kafka import (
    TIMESTAMP_NOT_AVAILABLE,
    Consumer,
    KafkaError,
    KafkaException,
    TopicPartition,
)
from confluent_kafka import Message as KafkaMessage

from zeroqueue._kafka.settings import client_settings
from zeroqueue.errors import BrokerUnavailableError, PushError, ZeroQueueError
from zeroqueue.message import Message
from zeroqueue.producer.core import ProducerCore
from zeroqueue.producer.options import PushOptions
from zeroqueue.retry import _headers as h

__all__ = ["DeadLetterSummary", "RedriveReport", "read_dead_letters", "redrive", "summarize"]

# Stop reading when nothing came for this long (a partition that never reports its end).
_STALLED = 30.0
# Messages re-driven between two commits of the re-drive position.
_BATCH = 500
# How long a checkpoint waits for the moves before it to be acknowledged.
_ACK_TIMEOUT = 60.0


@dataclass
class DeadLetterSummary:
    """What a dead-letter topic holds."""

    topic: str
    count: int = 0
    by_partition: Counter[int] = field(default_factory=Counter)
    oldest: float | None = None
    newest: float | None = None
    errors: Counter[str] = field(default_factory=Counter)
    last: Message | None = None


@dataclass
class RedriveReport:
    """What a re-drive did."""

    moved: int = 0
    skipped: int = 0
    to_topics: Counter[str] = field(default_factory=Counter)


def error_of(message: Message) -> str:
    """``type: message`` of the last error a dead letter records."""
    kind = (h.last(message.headers, h.EXCEPTION_FQCN) or b"?").decode(errors="replace")
    text = (h.last(message.headers, h.EXCEPTION_MESSAGE) or b"").decode(errors="replace")
    first_line = text.splitlines()[0] if text else ""
    return f"{kind}: {first_line}" if first_line else kind


def read_dead_letters(
    brokers: Sequence[str],
    topic: str,
    *,
    group: str | None = None,
    from_start: bool = True,
    kafka_config: Mapping[str, Any] | None = None,
    at_end: Callable[[Consumer], None] | None = None,
) -> Iterator[tuple[Message, Consumer]]:
    """Every message ``topic`` held when reading began (and the consumer, to commit with).

    Without ``group`` it reads from the start and commits nothing; with one it
    reads from that group's position (or the start). It stops at each
    partition's end as it was at the start, so what arrives meanwhile (a
    re-driven message failing again, say) is left for the next read. ``at_end``
    runs with the consumer still open once every partition is read (a last commit).
    """
    settings = client_settings(brokers, overrides=kafka_config) | {
        "group.id": group or f"zeroqueue-dlq-reader-{uuid.uuid4().hex[:8]}",
        "enable.auto.commit": False,
        "auto.offset.reset": "earliest",
        "enable.partition.eof": True,
    }
    started = time.time()
    consumer = Consumer(settings)
    try:
        metadata = consumer.list_topics(topic, timeout=10).topics.get(topic)
        if metadata is None or metadata.error is not None or not metadata.partitions:
            raise ZeroQueueError(f"topic {topic!r} does not exist on Brokers={list(brokers)}")
        partitions = [TopicPartition(topic, p) for p in sorted(metadata.partitions)]
        ends = {
            tp.partition: consumer.get_watermark_offsets(tp, timeout=10)[1] for tp in partitions
        }
        if group is None or from_start:
            for tp in partitions:
                tp.offset = -2  # OFFSET_BEGINNING
        else:
            committed = consumer.committed(partitions, timeout=10)
            for tp, position in zip(partitions, committed, strict=True):
                tp.offset = position.offset if position.offset >= 0 else -2
        consumer.assign(partitions)
        reading = set(ends)
        quiet_since = time.monotonic()
        while reading:
            record = consumer.poll(0.2)
            if record is None:
                # (A partition that never reports its end: what was read is all.)
                if time.monotonic() - quiet_since > _STALLED:
                    break
                continue
            quiet_since = time.monotonic()
            partition = record.partition() or 0
            error = record.error()
            if error is not None:
                if error.code() != KafkaError._PARTITION_EOF:
                    raise ZeroQueueError(f"reading {topic!r} failed: {error.str()}")
                _done(consumer, reading, topic, partition)  # read up to what is there now
                continue
            if partition not in reading:
                continue
            if _arrived_later(record, ends[partition], started):
                _done(consumer, reading, topic, partition)
                continue
            yield Message.from_kafka(record), consumer
        if at_end is not None:
            at_end(consumer)
    except KafkaException as exc:
        raise BrokerUnavailableError(f"reading {topic!r} failed: {exc.args[0].str()}") from exc
    finally:
        consumer.close()


def _arrived_later(record: KafkaMessage, end: int, started: float) -> bool:
    """Whether ``record`` came after the read began: past its partition's end then.

    Past that end, a record older than the read still counts: the embedded
    broker (Tansu) reports a partition's end too low, short of its last batch.
    A mover whose clock is behind this one's can make a record written after
    the start look older: it is read too, for no longer than the clocks differ.
    """
    offset = record.offset()
    if offset is None or offset < end:
        return False
    kind, stamp = record.timestamp()
    return kind == TIMESTAMP_NOT_AVAILABLE or stamp / 1000.0 >= started


def _done(consumer: Consumer, reading: set[int], topic: str, partition: int) -> None:
    if partition in reading:
        reading.discard(partition)
        consumer.pause([TopicPartition(topic, partition)])


def summarize(
    brokers: Sequence[str],
    topic: str,
    *,
    kafka_config: Mapping[str, Any] | None = None,
    on_message: Callable[[Message], None] | None = None,
) -> DeadLetterSummary:
    """Count a dead-letter topic's messages, their age and their errors."""
    summary = DeadLetterSummary(topic)
    for message, _ in read_dead_letters(brokers, topic, kafka_config=kafka_config):
        summary.count += 1
        summary.by_partition[message.partition] += 1
        stamp = message.timestamp
        if stamp is not None:
            summary.oldest = stamp if summary.oldest is None else min(summary.oldest, stamp)
            summary.newest = stamp if summary.newest is None else max(summary.newest, stamp)
        summary.errors[error_of(message)] += 1
        summary.last = message
        if on_message is not None:
            on_message(message)
    return summary


def redrive(
    brokers: Sequence[str],
    topic: str,
    *,
    match: str | None = None,
    since: float | None = None,
    until: float | None = None,
    group: str | None = None,
    from_start: bool = False,
    kafka_config: Mapping[str, Any] | None = None,
    on_message: Callable[[Message, bool], None] | None = None,
) -> RedriveReport:
    """Push a dead-letter topic's messages back to the topics they came from.

    It reads from where the last re-drive of ``topic`` stopped (its consumer
    group ``<topic>.redrive``), or from the start with ``from_start``, up to the
    topic's end when it began; a message is moved when its error matches
    ``match`` (a regular expression, searched in ``type: message``), its time
    is within ``[since, until)`` (seconds since the epoch) and, with ``group``,
    that consumer group dead-lettered it; else it is skipped. A moved message
    goes to the partition a default Pusher picks for its key (the "hash"
    balancer), so it keeps its key's partition, and reaches every group that
    reads its topic, not only the one that failed it. Moves are acknowledged
    (acks=all) before the position is committed: at-least-once, so a re-drive
    cut short may move a message twice, never lose one.
    """
    pattern = re.compile(match) if match else None
    report = RedriveReport()
    # The producer a default Pusher has: the same balancer puts a key where it was.
    core = ProducerCore(
        brokers,
        PushOptions(kafka_config=kafka_config, client_id="zeroqueue-redrive"),
        name=f"zeroqueue-redrive[{topic}]",
    )
    pending: dict[int, int] = {}

    def checkpoint(consumer: Consumer) -> None:
        try:
            core.flush(_ACK_TIMEOUT)
        except PushError as exc:
            raise ZeroQueueError(
                f"re-driving from {topic!r} failed: {exc}; nothing committed since the last"
                " checkpoint"
            ) from exc
        if pending:
            consumer.commit(
                offsets=[TopicPartition(topic, p, o + 1) for p, o in pending.items()],
                asynchronous=False,
            )
            pending.clear()

    wanted_group = group.encode() if group is not None else None
    try:
        for message, consumer in read_dead_letters(
            brokers,
            topic,
            group=f"{topic}.redrive",
            from_start=from_start,
            kafka_config=kafka_config,
            at_end=checkpoint,
        ):
            original = h.last(message.headers, h.ORIGINAL_TOPIC)
            wanted = (
                original is not None
                and (pattern is None or pattern.search(error_of(message)) is not None)
                and (since is None or (message.timestamp or 0) >= since)
                and (until is None or (message.timestamp or 0) < until)
                and (
                    wanted_group is None
                    or h.last(message.headers, h.ORIGINAL_CONSUMER_GROUP) == wanted_group
                )
            )
            if wanted and original is not None:
                target = original.decode()
                headers = [(n, v) for n, v in message.headers if n not in h.OWN_HEADERS]
                _push(core, target, message, headers)
                report.moved += 1
                report.to_topics[target] += 1
            else:
                report.skipped += 1
            pending[message.partition] = message.offset
            if on_message is not None:
                on_message(message, wanted)
            if (report.moved + report.skipped) % _BATCH == 0:
                checkpoint(consumer)  # raises on a failed move: nothing after it is committed
    finally:
        with contextlib.suppress(PushError):  # raised by the checkpoint already, if any
            core.close(timeout=5.0)
    return report


def _push(
    core: ProducerCore,
    topic: str,
    message: Message,
    headers: list[tuple[str, bytes | None]],
) -> None:
    """Queue one move, waiting while the local buffer is full."""
    deadline = core.room_deadline()
    while not core.try_produce(topic, message.key, message.value, headers):
        if time.monotonic() >= deadline:
            raise core.buffer_full_error(topic)
        core.wait_for_room()
