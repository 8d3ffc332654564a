"""Retries in place, retry topics and a dead-letter topic, end to end on the broker under test."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from confluent_kafka import Message as KafkaMessage

from tests.kafka_helpers import eventually, fast_queue_options, read_topic, running, unique_name
from zeroqueue import KqConf, Message, Pusher, Queue, admin
from zeroqueue.retry import RetryConf, retry_topic_name
from zeroqueue.retry import headers as h


class Handled:
    """A Message handler that fails as told and records every call."""

    def __init__(self, fails: Callable[[Message], bool]) -> None:
        self._fails = fails
        self.calls: list[tuple[str, str, int, float]] = []  # value, topic, attempt, when
        self._lock = threading.Lock()

    def __call__(self, message: Message) -> None:
        with self._lock:
            self.calls.append((message.value_str, message.topic, message.attempt, time.monotonic()))
        if self._fails(message):
            raise ValueError(f"cannot store {message.value_str}")

    def of(self, value: str) -> list[tuple[str, str, int, float]]:
        with self._lock:
            return [call for call in self.calls if call[0] == value]

    def succeeded(self, value: str) -> bool:
        return any(not self._fails(self._as_message(c)) for c in self.of(value))

    @staticmethod
    def _as_message(call: tuple[str, str, int, float]) -> Message:
        return Message(call[1], 0, 0, None, call[0].encode(), (), None, call[2])


def conf(brokers: list[str], topic: str, group: str, retry: RetryConf) -> KqConf:
    return KqConf(Brokers=brokers, Group=group, Topic=topic, Offset="first", Retry=retry)


def push(brokers: list[str], topic: str, values: list[str | bytes], key: str = "k") -> None:
    with Pusher(brokers, topic) as pusher:
        for value in values:
            pusher.push_with_key(key, value)


def test_a_message_failing_twice_then_succeeding_sees_its_attempts(
    brokers: list[str], new_topic: Callable[[int], str], group: str
) -> None:
    # given a handler that fails a message's first two tries, and 3 tries in place
    topic = new_topic(1)
    push(brokers, topic, ["m"])
    handler = Handled(lambda message: message.attempt < 3)
    reports: list[tuple[int, str]] = []
    queue = Queue(
        conf(brokers, topic, group, RetryConf(Attempts=3, Backoff="50ms")),
        handler,
        error_handler=lambda message, error, outcome: reports.append((message.attempt, outcome)),
        **fast_queue_options(),
    )
    with running(queue):
        assert eventually(lambda: len(handler.of("m")) == 3)
        assert eventually(lambda: admin.committed_offsets(brokers, group, topic) == {0: 1})
    # then it was handled on its third attempt, which it could see
    assert [attempt for _, _, attempt, _ in handler.of("m")] == [1, 2, 3]
    # and error_handler heard of both failures as retries
    assert reports == [(1, "retrying"), (2, "retrying")]


def test_a_message_that_always_fails_ends_dead_lettered_while_later_ones_flow(
    brokers: list[str], new_topic: Callable[[int], str], group: str, request: pytest.FixtureRequest
) -> None:
    # given tries in place, two retry topics (1 s, 2 s) and a dead-letter topic
    topic = new_topic(2)
    dead_letters = unique_name(request, "dlt")
    retry = RetryConf(Attempts=2, Backoff="50ms", Delays=["1s", "2s"], DeadLetterTopic=dead_letters)
    # and a poison message followed by 20 more on the same partition (one key)
    push(brokers, topic, ["poison", *(f"m{i}" for i in range(20))])
    handler = Handled(lambda message: message.value_str == "poison")
    outcomes: list[str] = []
    queue = Queue(
        conf(brokers, topic, group, retry),
        handler,
        error_handler=lambda message, error, outcome: outcomes.append(outcome),
        **fast_queue_options(),
    )
    with running(queue):
        # then the poison message goes through both retry topics, then is dead-lettered
        assert eventually(lambda: "dead-lettered" in outcomes, timeout=30)
        assert eventually(lambda: all(handler.of(f"m{i}") for i in range(20)), timeout=30)
    calls = handler.of("poison")
    # and the later messages were handled without waiting for the first retry topic
    assert handler.of("m19")[0][3] < calls[2][3]
    tiers = [retry_topic_name(topic, group, 1), retry_topic_name(topic, group, 2)]
    assert [where for _, where, _, _ in calls] == [topic, topic, *tiers]
    assert [attempt for _, _, attempt, _ in calls] == [1, 2, 3, 4]
    # each retry topic held it for its delay (not earlier)
    assert calls[2][3] - calls[1][3] >= 1.0
    assert calls[3][3] - calls[2][3] >= 2.0
    assert outcomes == ["retrying", "retry-topic", "retry-topic", "dead-lettered"]
    # with every header saying where it came from and why it failed
    [record] = read_topic(brokers, dead_letters, 1)
    headers = _headers_of(record)
    assert record.value() == b"poison"
    assert record.key() == b"k"
    assert headers[h.ORIGINAL_TOPIC] == topic.encode()
    assert h.decode_int(headers[h.ORIGINAL_OFFSET]) == 0
    assert h.decode_int(headers[h.ORIGINAL_PARTITION]) is not None
    assert headers[h.ORIGINAL_CONSUMER_GROUP] == group.encode()
    assert h.decode_int(headers[h.ATTEMPTS]) == 4
    assert headers[h.EXCEPTION_FQCN] == b"builtins.ValueError"
    assert headers[h.EXCEPTION_MESSAGE] == b"cannot store poison"
    assert b"cannot store poison" in headers[h.EXCEPTION_STACKTRACE]
    assert h.decode_int(headers[h.RETRY_ORIGINAL_TIMESTAMP]) is not None
    # and everything is committed: the source and both retry topics
    assert sum(v or 0 for v in admin.committed_offsets(brokers, group, topic).values()) == 21


def test_a_retry_topic_holds_a_message_for_its_delay_without_busy_polling(
    brokers: list[str], new_topic: Callable[[int], str], group: str
) -> None:
    # given one message that fails once, then goes to a 10 s retry topic
    topic = new_topic(1)
    push(brokers, topic, ["later"])
    handler = Handled(lambda message: message.attempt == 1)
    retry = RetryConf(Attempts=1, Delays=["10s"])
    queue = Queue(conf(brokers, topic, group, retry), handler, **fast_queue_options())
    with running(queue):
        assert eventually(lambda: len(handler.of("later")) == 1)
        moved_at = handler.of("later")[0][3]
        # while only that retry waits, the consumer barely uses the CPU
        time.sleep(1.0)  # let the move and the retry topic's fetch settle
        cpu, wall = time.process_time(), time.monotonic()
        assert eventually(lambda: len(handler.of("later")) == 2, timeout=30)
        share = (time.process_time() - cpu) / (time.monotonic() - wall)
    # then it came back no earlier than due, and within a second after
    waited = handler.of("later")[1][3] - moved_at
    assert 10.0 <= waited <= 11.5, waited
    assert share < 0.05, f"{share:.1%} of a core"


def test_an_undecodable_message_is_dead_lettered_at_once(
    brokers: list[str], new_topic: Callable[[int], str], group: str, request: pytest.FixtureRequest
) -> None:
    # given a (key, value) handler, which needs UTF-8, and plenty of tries configured
    topic = new_topic(1)
    dead_letters = unique_name(request, "dlt")
    push(brokers, topic, [b"\xff\xfe not text", "fine"])
    seen: list[str] = []
    retry = RetryConf(Attempts=5, Backoff="1s", Delays=["5s"], DeadLetterTopic=dead_letters)
    queue = Queue(
        conf(brokers, topic, group, retry),
        lambda key, value: seen.append(value),
        **fast_queue_options(),
    )
    started = time.monotonic()
    with running(queue):
        # (the message after it is handled once it is dead-lettered: same key)
        assert eventually(lambda: seen == ["fine"])
        took = time.monotonic() - started
    # then it went to the dead-letter topic without a retry (5 tries of 1 s and more)
    assert took < 5.0, took
    [record] = read_topic(brokers, dead_letters, 1, timeout=20)
    headers = _headers_of(record)
    assert headers[h.EXCEPTION_FQCN] == b"zeroqueue.errors.DecodeError"
    assert h.decode_int(headers[h.ATTEMPTS]) == 1


_KILLED_CONSUMER = """
import os, signal, sys
from zeroqueue import KqConf, Queue
from zeroqueue.retry import RetryConf
from zeroqueue.retry._router import RetryRouter

brokers, topic, group, dead_letters, kill = sys.argv[1:6]
if kill == "kill":
    push = RetryRouter._push

    def push_then_die(self, to, message, headers):
        push(self, to, message, headers)  # acknowledged by the broker (acks=all)
        os.kill(os.getpid(), signal.SIGKILL)  # ... and dead before the commit

    RetryRouter._push = push_then_die

def handle(key, value):
    if value == "bad":
        raise ValueError("bad stays bad")
    print("handled", value, flush=True)

Queue(
    KqConf(Brokers=[brokers], Group=group, Topic=topic, Offset="first",
           Retry=RetryConf(Attempts=1, DeadLetterTopic=dead_letters)),
    handle, session_timeout=2.0, max_wait=0.1, commit_interval=0.2,
).start()
"""


def test_a_consumer_killed_between_the_dead_letter_push_and_the_commit_loses_nothing(
    brokers: list[str],
    new_topic: Callable[[int], str],
    group: str,
    request: pytest.FixtureRequest,
    tmp_path: Path,
) -> None:
    # given a poison message among good ones, one key
    topic = new_topic(1)
    dead_letters = unique_name(request, "dlt")
    push(brokers, topic, ["a", "bad", "c"])
    script = tmp_path / "consumer.py"
    script.write_text(_KILLED_CONSUMER)
    argv = [sys.executable, str(script), brokers[0], topic, group, dead_letters]
    env = os.environ | {"PYTHONUNBUFFERED": "1"}
    # when the consumer is SIGKILLed right after the dead-letter push was acknowledged
    killed = subprocess.run(
        [*argv, "kill"], capture_output=True, text=True, timeout=60, env=env, check=False
    )
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    # and a new consumer of the group takes over
    with subprocess.Popen([*argv, "live"], stdout=subprocess.PIPE, text=True, env=env) as second:
        try:
            assert eventually(
                lambda: admin.committed_offsets(brokers, group, topic) == {0: 3}, timeout=60
            )
        finally:
            second.send_signal(signal.SIGTERM)
            out, _ = second.communicate(timeout=30)
    # then nothing was lost: the poison message is dead-lettered (maybe twice), the rest
    # handled
    dead = read_topic(brokers, dead_letters, 1, timeout=10)
    assert {r.value() for r in dead} == {b"bad"}
    assert 1 <= len(dead) <= 2
    handled = set(killed.stdout.split()) | set(out.split())
    assert {"a", "c"} <= handled


def test_zeroqueue_dlq_lists_and_re_drives_the_dead_letters(
    brokers: list[str], new_topic: Callable[[int], str], group: str, request: pytest.FixtureRequest
) -> None:
    # given three dead letters of a handler that has since been fixed
    topic = new_topic(2)
    dead_letters = unique_name(request, "dlt")
    push(brokers, topic, ["x1", "x2", "x3"])
    fixed = threading.Event()
    handler = Handled(lambda message: not fixed.is_set())
    retry = RetryConf(Attempts=1, DeadLetterTopic=dead_letters)
    outcomes: list[str] = []
    queue = Queue(
        conf(brokers, topic, group, retry),
        handler,
        error_handler=lambda message, error, outcome: outcomes.append(outcome),
        **fast_queue_options(),
    )
    with running(queue):
        assert eventually(lambda: outcomes.count("dead-lettered") == 3)
        fixed.set()
        # when the dead-letter topic is listed
        listed = _zeroqueue("dlq", "list", dead_letters, "--brokers", brokers[0])
        assert f"3 dead letters in {dead_letters}" in listed
        for i in (1, 2, 3):
            assert f"1  builtins.ValueError: cannot store x{i}" in listed
        assert f"from             {topic}[" in listed
        as_json = _zeroqueue("dlq", "list", dead_letters, "--brokers", brokers[0], "--json")
        assert '"count": 3' in as_json
        # and re-driven
        moved = _zeroqueue("dlq", "redrive", dead_letters, "--brokers", brokers[0])
        assert f"moved 3 (3 to {topic}), skipped 0" in moved
        # then the queue handles them again, and this time they succeed
        assert eventually(lambda: all(handler.succeeded(f"x{i}") for i in (1, 2, 3)))
        # and a second re-drive moves nothing more: it goes on where the first stopped
        again = _zeroqueue("dlq", "redrive", dead_letters, "--brokers", brokers[0])
        assert "moved 0" in again


def _zeroqueue(*args: str) -> str:
    result = subprocess.run(
        [sys.executable, "-m", "zeroqueue", *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


def _headers_of(record: KafkaMessage) -> dict[str, bytes]:
    raw = record.headers()
    pairs = raw if isinstance(raw, list) else []
    return {name: value for name, value in pairs if isinstance(value, bytes)}
