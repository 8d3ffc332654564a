"""Helpers for tests that talk to Kafka with the raw confluent-kafka client."""

from __future__ import annotations

import time
from collections.abc import Sequence

from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition
from confluent_kafka import Message as KafkaMessage

# Tansu holds a JoinGroup for about half the session timeout: keep it short in tests.
SHORT_SESSION_TIMEOUT = 2.0


def read_topic(
    brokers: Sequence[str], topic: str, expected: int, *, timeout: float = 30.0
) -> list[KafkaMessage]:
    """Read every partition of ``topic`` from the start until ``expected`` records arrive.

    Uses manual assignment (no group), so nothing waits for a rebalance.
    """
    consumer = Consumer(
        {
            "bootstrap.servers": ",".join(brokers),
            "group.id": "zeroqueue-tests-reader",
            "enable.auto.commit": False,
            "fetch.wait.max.ms": 50,
        }
    )
    try:
        partitions = consumer.list_topics(topic, timeout=10).topics[topic].partitions
        consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in partitions])
        records: list[KafkaMessage] = []
        deadline = time.monotonic() + timeout
        while len(records) < expected and time.monotonic() < deadline:
            for record in consumer.consume(1000, 0.2):
                error = record.error()
                if error is not None:
                    raise AssertionError(f"consume error: {error}")
                records.append(record)
        return records
    finally:
        consumer.close()
