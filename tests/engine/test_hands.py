"""The stuck report's count of workers held by long calls, which lets the executor wake more."""

from __future__ import annotations

from confluent_kafka import Message as KafkaMessage

from zeroqueue.engine.hands import LONG_CALL, Hand, HandRegistry, StuckReport


def _record(offset: int) -> KafkaMessage:
    return KafkaMessage(topic="t", partition=0, offset=offset, key=b"k", value=b"v")


def test_a_worker_in_a_retry_pause_is_not_counted_again_as_held_by_a_long_call() -> None:
    hands = HandRegistry()
    report = StuckReport(hands, after=60.0, name="test")
    calling, pausing = hands.add(Hand()), hands.add(Hand())
    calling.record, pausing.record = _record(1), _record(2)
    pausing.pausing = True  # LaneRunner counts it among the pausing
    report.scan(0.0)
    # when both have held their record past LONG_CALL
    assert report.scan(LONG_CALL + 0.1)
    # then only the call counts: the pause is counted once, by the runner
    assert hands.long_held == 1
    # and once the pause is over and the retry call runs long, it counts
    pausing.pausing = False
    assert report.scan(LONG_CALL + 0.2)
    assert hands.long_held == 2
