"""DueGate: when a held-back message is due, and a header that claims too much."""

from __future__ import annotations

from confluent_kafka import TIMESTAMP_CREATE_TIME, TIMESTAMP_NOT_AVAILABLE
from confluent_kafka import Message as KafkaMessage

from zeroqueue._kafka.headers import encode_long
from zeroqueue.delay._gate import DueGate

WRITTEN = 1_800_000_000.0


def record(due: float | None, *, stamped: bool = True) -> KafkaMessage:
    headers: list[tuple[str, str | bytes | None]] = []
    if due is not None:
        headers.append(("due", encode_long(int(due * 1000))))
    kind = TIMESTAMP_CREATE_TIME if stamped else TIMESTAMP_NOT_AVAILABLE
    return KafkaMessage(
        topic="orders.delay-4s", value=b"v", headers=headers, timestamp=(kind, int(WRITTEN * 1000))
    )


gate = DueGate({"orders.delay-4s": 4.0}, "due")


def test_a_message_is_due_when_its_header_says() -> None:
    assert gate.due(record(WRITTEN + 4)) == WRITTEN + 4


def test_a_message_without_the_header_is_due_now() -> None:
    assert gate.due(record(None)) == 0.0


def test_a_header_far_past_the_topics_wait_is_not_believed() -> None:
    # a corrupt header naming the year 2200 holds the partition no longer than
    # twice the topic's wait and a second past the record's own time
    assert gate.due(record(7_258_118_400.0)) == WRITTEN + 2 * 4 + 1


def test_without_a_record_time_the_header_is_all_there_is() -> None:
    assert gate.due(record(WRITTEN + 60, stamped=False)) == WRITTEN + 60
