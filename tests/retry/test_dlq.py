"""Re-driving dead letters: where it stops, where they land, whose they are."""

from __future__ import annotations

import subprocess
import sys
import threading
from collections.abc import Callable

import pytest

from tests.kafka_helpers import eventually, fast_queue_options, read_topic, running, unique_name
from zeroqueue import KqConf, Message, Pusher, Queue
from zeroqueue.retry import DeadLetter, RedriveReport, RetryConf, redrive, summarize


def _queue(
    brokers: list[str], topic: str, group: str, dead_letters: str, outcomes: list[str]
) -> Queue:
    def handle(message: Message) -> None:
        raise DeadLetter(f"{group} cannot take {message.value_str}")

    return Queue(
        KqConf(
            Brokers=brokers,
            Group=group,
            Topic=topic,
            Offset="first",
            Retry=RetryConf(Attempts=1, DeadLetterTopic=dead_letters),
        ),
        handle,
        error_handler=lambda message, error, outcome: outcomes.append(outcome),
        **fast_queue_options(),
    )


def test_a_redrive_ends_while_the_handler_still_fails(
    brokers: list[str], new_topic: Callable[[int], str], group: str, request: pytest.FixtureRequest
) -> None:
    # given two dead letters of a handler that still fails, at once, while it runs
    topic = new_topic(1)
    dead_letters = unique_name(request, "dlt")
    with Pusher(brokers, topic) as pusher:
        pusher.push_with_key("a", "x1")
        pusher.push_with_key("b", "x2")
    outcomes: list[str] = []
    with running(_queue(brokers, topic, group, dead_letters, outcomes)):
        assert eventually(lambda: outcomes.count("dead-lettered") == 2)
        # when they are re-driven (and fail again, and are dead-lettered again, meanwhile)
        reports: list[RedriveReport] = []
        thread = threading.Thread(target=lambda: reports.append(redrive(brokers, dead_letters)))
        thread.start()
        thread.join(30)
        # then the re-drive ends, having moved what the topic held when it began
        assert not thread.is_alive(), "the re-drive re-drives what it re-drove"
        assert (reports[0].moved, reports[0].skipped) == (2, 0)
        assert eventually(lambda: outcomes.count("dead-lettered") == 4)
        # and the next one moves what was dead-lettered since, once
        again = redrive(brokers, dead_letters)
        assert (again.moved, again.skipped) == (2, 0)
    assert summarize(brokers, dead_letters).count >= 4


def test_a_redriven_message_returns_to_its_keys_partition_for_the_group_picked(
    brokers: list[str], new_topic: Callable[[int], str], request: pytest.FixtureRequest
) -> None:
    # given 20 keys pushed by a default Pusher over 8 partitions, and two groups of the
    # topic that both dead-letter every message to one topic
    topic = new_topic(8)
    dead_letters = unique_name(request, "dlt")
    billing, shipping = unique_name(request, "billing"), unique_name(request, "shipping")
    with Pusher(brokers, topic) as pusher:
        for i in range(20):
            pusher.push_with_key(f"user-{i}", f"v{i}")
    pushed = {r.key(): r.partition() for r in read_topic(brokers, topic, 20)}
    outcomes: list[str] = []
    with (
        running(_queue(brokers, topic, billing, dead_letters, outcomes)),
        running(_queue(brokers, topic, shipping, dead_letters, outcomes)),
    ):
        assert eventually(lambda: outcomes.count("dead-lettered") == 40, timeout=60)
    # when billing's dead letters are re-driven
    command = ["dlq", "redrive", dead_letters, "--brokers", brokers[0], "--group", billing]
    moved = subprocess.run(
        [sys.executable, "-m", "zeroqueue", *command],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert moved.returncode == 0, moved.stdout + moved.stderr
    # then only those were moved, shipping's skipped
    assert f"moved 20 (20 to {topic}), skipped 20" in moved.stdout
    # and each went back to the partition its key was pushed to, after the original
    records = read_topic(brokers, topic, 40)
    assert len(records) == 40
    by_key: dict[bytes | None, list[int | None]] = {}
    for record in records:
        by_key.setdefault(record.key(), []).append(record.partition())
    assert by_key == {key: [partition, partition] for key, partition in pushed.items()}
