"""Read a dead-letter topic, and re-drive its messages to the topics they came from."""

from __future__ import annotations

import re
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from confluent_kafka import Consumer, KafkaError, KafkaException, Producer, TopicPartition

from zeroqueue._kafka.settings import client_settings
from zeroqueue.errors import BrokerUnavailableError, ZeroQueueError
from zeroqueue.message import Message
from zeroqueue.retry import _headers as h

__all__ = ["DeadLetterSummary", "RedriveReport", "read_dead_letters", "redrive", "summarize"]

# Stop reading when nothing came for this long after every partition reported its end.
_QUIET = 2.0
# Messages re-driven between two commits of the re-drive position.
_BATCH = 500


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
    """Every message of ``topic`` up to its end (and the consumer, to commit with).

    Without ``group`` it reads from the start and commits nothing; with one it
    reads from that group's position (or the start). ``at_end`` runs with the
    consumer still open once the end is reached (a last commit).
    """
    settings = client_settings(brokers, overrides=kafka_config) | {
        "group.id": group or f"zeroqueue-dlq-reader-{uuid.uuid4().hex[:8]}",
        "enable.auto.commit": False,
        "auto.offset.reset": "earliest",
        "enable.partition.eof": True,
    }
    consumer = Consumer(settings)
    try:
        metadata = consumer.list_topics(topic, timeout=10).topics.get(topic)
        if metadata is None or metadata.error is not None or not metadata.partitions:
            raise ZeroQueueError(f"topic {topic!r} does not exist on Brokers={list(brokers)}")
        partitions = [TopicPartition(topic, p) for p in sorted(metadata.partitions)]
        if group is None or from_start:
            for tp in partitions:
                tp.offset = -2  # OFFSET_BEGINNING
        else:
            committed = consumer.committed(partitions, timeout=10)
            for tp, position in zip(partitions, committed, strict=True):
                tp.offset = position.offset if position.offset >= 0 else -2
        consumer.assign(partitions)
        ended: set[int] = set()
        quiet_since = time.monotonic()
        while True:
            record = consumer.poll(0.2)
            if record is None:
                quiet = time.monotonic() - quiet_since
                # (30 s: a partition that never reports its end; what was read is all.)
                if (len(ended) == len(partitions) and quiet > _QUIET) or quiet > 30:
                    if at_end is not None:
                        at_end(consumer)
                    return
                continue
            error = record.error()
            if error is not None:
                if error.code() == KafkaError._PARTITION_EOF:
                    ended.add(record.partition() or 0)
                    continue
                raise ZeroQueueError(f"reading {topic!r} failed: {error.str()}")
            quiet_since = time.monotonic()
            yield Message.from_kafka(record), consumer
    except KafkaException as exc:
        raise BrokerUnavailableError(f"reading {topic!r} failed: {exc.args[0].str()}") from exc
    finally:
        consumer.close()


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
    from_start: bool = False,
    kafka_config: Mapping[str, Any] | None = None,
    on_message: Callable[[Message, bool], None] | None = None,
) -> RedriveReport:
    """Push a dead-letter topic's messages back to the topics they came from.

    It reads from where the last re-drive of ``topic`` stopped (its consumer
    group ``<topic>.redrive``), or from the start with ``from_start``; a message
    is moved when its error matches ``match`` (a regular expression, searched in
    ``type: message``) and its time is within ``[since, until)`` (seconds since
    the epoch), else skipped. Moves are acknowledged (acks=all) before the
    position is committed: at-least-once, so a re-drive cut short may move a
    message twice, never lose one.
    """
    pattern = re.compile(match) if match else None
    report = RedriveReport()
    producer = Producer(
        client_settings(brokers, overrides=kafka_config)
        | {"acks": "all", "enable.idempotence": True, "linger.ms": 5}
    )
    failures: list[str] = []

    def on_delivery(error: KafkaError | None, _: object) -> None:
        if error is not None:
            failures.append(error.str())

    pending: dict[int, int] = {}

    def checkpoint(consumer: Consumer) -> None:
        if producer.flush(60) or failures:
            reason = failures[0] if failures else "not acknowledged within 60s"
            raise ZeroQueueError(f"re-driving from {topic!r} failed: {reason}; nothing committed")
        if pending:
            consumer.commit(
                offsets=[TopicPartition(topic, p, o + 1) for p, o in pending.items()],
                asynchronous=False,
            )
            pending.clear()

    group = f"{topic}.redrive"
    for message, consumer in read_dead_letters(
        brokers,
        topic,
        group=group,
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
        )
        if wanted and original is not None:
            target = original.decode()
            headers: list[tuple[str, str | bytes | None]] = [
                (n, v) for n, v in message.headers if n not in h.OWN_HEADERS
            ]
            producer.produce(
                target, message.value, message.key, headers=headers, on_delivery=on_delivery
            )
            producer.poll(0)
            report.moved += 1
            report.to_topics[target] += 1
        else:
            report.skipped += 1
        pending[message.partition] = message.offset
        if on_message is not None:
            on_message(message, wanted)
        if (report.moved + report.skipped) % _BATCH == 0 or failures:
            checkpoint(consumer)  # raises on a failed move: nothing after it is committed
    return report
