"""Helpers for tests that talk to Kafka with the raw confluent-kafka client."""

from __future__ import annotations

import contextlib
import itertools
import os
import re
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition
from confluent_kafka import Message as KafkaMessage

from zeroqueue import EmbeddedBrokerError, Queue, admin
from zeroqueue.embedded import KafkaBroker, fetch_kafka_libs, find_kafka_libs

# Tansu holds a JoinGroup for about half the session timeout: keep it short in tests.
SHORT_SESSION_TIMEOUT = 2.0


def read_topic(
    brokers: Sequence[str],
    topic: str,
    expected: int,
    *,
    timeout: float = 30.0,
    kafka_config: dict[str, Any] | None = None,
) -> list[KafkaMessage]:
    """Read every partition of ``topic`` from the start until ``expected`` records arrive.

    Uses manual assignment (no group), so nothing waits for a rebalance.
    """
    consumer = Consumer(
        (kafka_config or {})
        | {
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


def committed_offsets(brokers: Sequence[str], group: str, topic: str) -> dict[int, int]:
    """The group's committed offset per partition of ``topic`` (-1001 when none)."""
    consumer = Consumer({"bootstrap.servers": ",".join(brokers), "group.id": group})
    try:
        partitions = consumer.list_topics(topic, timeout=10).topics[topic].partitions
        committed = consumer.committed([TopicPartition(topic, p) for p in partitions], timeout=10)
        return {tp.partition: tp.offset for tp in committed}
    finally:
        consumer.close()


class Recorder:
    """A handler that records what it sees and lets a test wait for a count."""

    def __init__(self) -> None:
        self._changed = threading.Condition()
        self.seen: list[tuple[str, str]] = []

    def __call__(self, key: str, value: str) -> None:
        with self._changed:
            self.seen.append((key, value))
            self._changed.notify_all()

    def wait_for(self, count: int, timeout: float = 60.0) -> bool:
        """Wait until ``count`` messages were handled."""
        with self._changed:
            return self._changed.wait_for(lambda: len(self.seen) >= count, timeout)

    def wait_for_distinct(self, count: int, timeout: float = 60.0) -> bool:
        """Wait until ``count`` different values were handled (redeliveries count once)."""
        with self._changed:
            return self._changed.wait_for(
                lambda: len({value for _, value in self.seen}) >= count, timeout
            )

    def by_key(self) -> dict[str, list[str]]:
        grouped: dict[str, list[str]] = {}
        for key, value in list(self.seen):
            grouped.setdefault(key, []).append(value)
        return grouped


def running(queue: Queue) -> contextlib.AbstractContextManager[Queue]:
    """Run ``queue`` on a background thread for the block (see :meth:`Queue.running`)."""
    return queue.running()


def process_exists(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie still answers kill(0); it has exited but not been reaped.
    status = Path(f"/proc/{pid}/status")
    return not (status.exists() and "zombie" in status.read_text())


def kafka_libs() -> Path:
    """Kafka's jars: found, or fetched with Maven once (cached); fail when neither works."""
    try:
        return find_kafka_libs()
    except EmbeddedBrokerError:
        pass
    try:
        return fetch_kafka_libs()
    except EmbeddedBrokerError as exc:
        pytest.fail(f"Apache Kafka was asked for (--broker) but cannot run: {exc}")


def eventually(predicate: Callable[[], bool], timeout: float = 30.0) -> bool:
    """Poll ``predicate`` for state that offers nothing to wait on (e.g. an assignment)."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def fast_queue_options() -> dict[str, Any]:
    """Queue options that keep tests quick on the embedded broker."""
    return {"session_timeout": SHORT_SESSION_TIMEOUT, "max_wait": 0.1, "commit_interval": 0.2}


@dataclass(frozen=True)
class TlsKafka:
    """A Kafka cluster that speaks only TLS (see the ``tls_kafka`` fixture)."""

    bootstrap: str
    ca_file: str
    wrong_ca_file: str

    @property
    def ssl(self) -> dict[str, str]:
        """librdkafka settings that reach this cluster with its CA."""
        return {"security.protocol": "SSL", "ssl.ca.location": self.ca_file}

    def create_topic(self, name: str, partitions: int = 1) -> None:
        admin.create_topic([self.bootstrap], name, partitions=partitions, kafka_config=self.ssl)


@dataclass(frozen=True)
class SecureKafka:
    """Apache Kafka with SASL users and TLS (see the ``secure_kafka`` fixture)."""

    broker: KafkaBroker
    users: dict[str, str]
    ca_file: str
    wrong_ca_file: str


_names = itertools.count()


def unique_name(request: pytest.FixtureRequest, kind: str) -> str:
    """A topic or group name no other test uses, in the characters Kafka allows."""
    slug = re.sub(r"[^a-zA-Z0-9]+", "-", request.node.name).strip("-")[:40]
    return f"{kind}-{slug}-{next(_names)}-{uuid.uuid4().hex[:6]}"
