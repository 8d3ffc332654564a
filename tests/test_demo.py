"""``zeroqueue demo``: the login-log example end to end, and the checks it reports."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from confluent_kafka.admin import AdminClient

from zeroqueue._demo import DemoReport, DemoSettings, LoginLogConsumer, run_demo
from zeroqueue.message import Message


def test_demo_command_runs_on_its_own_embedded_broker() -> None:
    # when a new user runs the demo
    result = subprocess.run(
        [sys.executable, "-m", "zeroqueue", "demo", "--messages", "3000", "--fail-every", "1000"],
        capture_output=True,
        text=True,
        timeout=110,
        check=False,
    )
    # then it ends with a summary that says nothing was lost
    assert result.returncode == 0, result.stdout + result.stderr
    assert "consumed  3,000 of 3,000" in result.stdout
    assert "3 handler calls failed on purpose; 3 reported to error_handler" in result.stdout
    assert "committed 8/8 partitions" in result.stdout
    assert result.stdout.rstrip().endswith("OK: nothing lost, per-user order kept")


def test_demo_on_an_existing_cluster_cleans_up_after_itself(brokers: list[str]) -> None:
    before = set(AdminClient({"bootstrap.servers": brokers[0]}).list_topics(timeout=10).topics)
    report = run_demo(DemoSettings(messages=1000, users=50, partitions=3, brokers=brokers))
    assert report.ok
    assert report.handled - report.duplicates == 1000
    assert report.failed_attempts == report.errors_reported == 0
    assert sorted(report.committed) == [0, 1, 2]
    # and its topic is gone again
    client = AdminClient({"bootstrap.servers": brokers[0]})
    assert set(client.list_topics(timeout=10).topics) == before


def _event(key: str, seq: int, n: int, offset: int) -> Message:
    value = json.dumps({"n": n, "seq": seq}).encode()
    return Message("login-log", 0, offset, key.encode(), value, (), None)


def test_the_consumer_notices_events_out_of_order_and_repeats() -> None:
    consumer = LoginLogConsumer(fail_every=1000)
    consumer.consume(_event("u1", 0, 0, 0))
    consumer.consume(_event("u1", 0, 0, 0))
    consumer.consume(_event("u2", 1, 1, 1))
    assert consumer.duplicates == 1
    assert consumer.out_of_order == ["u2: got #1, expected #0"]


def test_the_consumer_fails_each_planned_event_once() -> None:
    consumer = LoginLogConsumer(fail_every=2)
    consumer.consume(_event("u1", 0, 0, 0))
    with pytest.raises(ConnectionError, match="u1 #1"):
        consumer.consume(_event("u1", 1, 1, 1))
    consumer.consume(_event("u1", 1, 1, 1))
    assert consumer.failed_attempts == 1
    assert consumer.handled == 2


def test_a_report_with_an_uncommitted_partition_is_not_ok() -> None:
    report = DemoReport(pushed=2, handled=2, last_offsets={0: 0, 1: 0}, committed={0: 1, 1: 0})
    assert report.committed_to_end == [0]
    assert not report.ok
