"""``zeroqueue push`` and ``zeroqueue tail`` against the broker under test."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from datetime import datetime, timezone

import pytest
from confluent_kafka import Producer

from tests.cli.helpers import json_lines, ok, zeroqueue
from tests.kafka_helpers import read_topic
from zeroqueue.cli._inspect import group_ids


def test_pushed_arguments_come_back_from_tail_with_key_and_headers(
    brokers: list[str], new_topic: Callable[[int], str]
) -> None:
    # given a topic
    topic = new_topic(1)
    # when three values are pushed with a key and a header
    out = ok(
        "push", topic, "one", "two", "three", "--key", "user-1", "-H", "source=cli",
        "--brokers", brokers[0], "--json",
    )  # fmt: skip
    # then all three were acknowledged
    assert json_lines(out) == [
        {"topic": topic, "pushed": 3, "acknowledged": 3, "failed": 0, "errors": []}
    ]
    # and tail from the start reads them back in order, one JSON object each
    out = ok("tail", topic, "--from", "first", "--count", "3", "--json", "--brokers", brokers[0])
    records = json_lines(out)
    assert [(r["partition"], r["offset"], r["value"]) for r in records] == [
        (0, 0, "one"),
        (0, 1, "two"),
        (0, 2, "three"),
    ]
    assert {r["key"] for r in records} == {"user-1"}
    assert all(r["headers"] == {"source": "cli"} and r["topic"] == topic for r in records)
    assert all(isinstance(r["timestamp"], int) and r["time"].endswith("+00:00") for r in records)


def test_push_reads_stdin_lines_and_splits_keys(
    brokers: list[str], new_topic: Callable[[int], str]
) -> None:
    topic = new_topic(1)
    out = ok(
        "push", topic, "--key-separator", ":", "--brokers", brokers[0],
        stdin="user-1:hello\nuser-2:a:b\n",
    )  # fmt: skip
    assert out.strip() == f"pushed 2 messages to {topic}, 2 acknowledged"
    records = read_topic(brokers, topic, 2)
    assert [(r.key(), r.value()) for r in records] == [(b"user-1", b"hello"), (b"user-2", b"a:b")]


def test_push_pushes_stdin_lines_that_are_not_utf8_as_they_came(
    brokers: list[str], new_topic: Callable[[int], str]
) -> None:
    # given stdin lines that are not UTF-8, one of them with a CRLF end and an empty one
    topic = new_topic(1)
    stdin = b"k\xff:v\xfe\r\nplain:\x00\x80\n:\n"
    # when they are pushed with keys split off
    out = ok("push", topic, "--key-separator", ":", "--json", "-b", brokers[0], stdin=stdin)
    # then each was pushed byte for byte, without its line end
    assert json_lines(out)[0]["acknowledged"] == 3
    records = read_topic(brokers, topic, 3)
    assert [(r.key(), r.value()) for r in records] == [
        (b"k\xff", b"v\xfe"),
        (b"plain", b"\x00\x80"),
        (b"", b""),
    ]


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (("--key-separator", "", "a:b"), "Invalid value for --key-separator: got ''"),
        (("--codec", "json", "NaN"), "value 1 is not JSON (NaN is not a JSON number)"),
        (("--codec", "json", "[1e999]"), "value 1 is not JSON (1e999 is too large"),
        (("--codec", "msgpack", "[-Infinity]"), "value 1 is not JSON (-Infinity is not"),
    ],
    ids=["empty-separator", "nan", "overflow", "infinity"],
)
def test_push_refuses_what_it_cannot_push_in_one_line(
    brokers: list[str], new_topic: Callable[[int], str], args: tuple[str, ...], says: str
) -> None:
    topic = new_topic(1)
    done = zeroqueue("push", topic, *args, "-b", brokers[0])
    assert done.returncode in (1, 2)
    assert says in done.stderr
    assert "Traceback" not in done.stderr


def test_tail_json_is_json_for_nan_and_binary_values(
    brokers: list[str], new_topic: Callable[[int], str]
) -> None:
    # given msgpack values holding NaN and Infinity (msgpack has them, JSON has not),
    # a tombstone with a binary key, and a value that is not UTF-8
    topic = new_topic(1)
    msgpack: list[tuple[str, str | bytes | None]] = [("content-type", b"application/msgpack")]
    producer = Producer({"bootstrap.servers": brokers[0]})
    producer.produce(
        topic, b"\x92\xcb\x7f\xf8\x00\x00\x00\x00\x00\x00\xca\x7f\x80\x00\x00", headers=msgpack
    )
    producer.produce(topic, None, b"\xff\x00")
    producer.produce(topic, b"\x80")
    assert producer.flush(10) == 0
    # when tail prints them as JSON
    out = ok("tail", topic, "--from", "first", "-n", "3", "--json", "-b", brokers[0])

    def strict(name: str) -> None:
        raise AssertionError(f"{name} is not JSON")

    # then every line is JSON a strict parser reads
    records = [json.loads(line, parse_constant=strict) for line in out.splitlines()]
    assert [(r["key"], r["value"]) for r in records] == [
        (None, ["NaN", "Infinity"]),
        ({"base64": "/wA="}, None),
        (None, {"base64": "gA=="}),
    ]


def test_the_json_codec_encodes_each_value_and_tail_decodes_it(
    brokers: list[str], new_topic: Callable[[int], str]
) -> None:
    topic = new_topic(1)
    ok("push", topic, '{"id": 1, "tags": ["a"]}', '"text"', "--codec", "json", "-b", brokers[0])
    records = json_lines(
        ok("tail", topic, "--from", "first", "-n", "2", "--json", "--brokers", brokers[0])
    )
    # the content-type header says JSON, so tail shows values, not strings
    assert [r["value"] for r in records] == [{"id": 1, "tags": ["a"]}, "text"]
    assert records[0]["headers"] == {"content-type": "application/json"}


def test_push_names_a_value_that_is_not_json(
    brokers: list[str], new_topic: Callable[[int], str]
) -> None:
    topic = new_topic(1)
    done = zeroqueue("push", topic, "1", "{oops", "--codec", "json", "--brokers", brokers[0])
    assert done.returncode == 1
    assert "value 2 is not JSON" in done.stderr
    assert "(1 value before it pushed)" in done.stderr


def test_tail_prints_a_line_per_message_and_stops_at_the_end_without_follow(
    brokers: list[str], new_topic: Callable[[int], str]
) -> None:
    topic = new_topic(1)
    ok("push", topic, "hello", "world", "-k", "k1", "--brokers", brokers[0])
    done = zeroqueue("tail", topic, "--from", "first", "--no-follow", "--brokers", brokers[0])
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert len(lines) == 2
    assert lines[0].startswith(f"{topic}[0]@0  ")
    assert lines[0].endswith("  key=k1  hello")
    assert lines[1].startswith(f"{topic}[0]@1  ")
    assert "2 messages" in done.stderr
    assert "\x1b[" not in done.stdout  # no colour codes when stdout is not a terminal


def test_tail_reads_one_partition_from_an_offset_and_commits_nothing(
    brokers: list[str], new_topic: Callable[[int], str]
) -> None:
    # given two partitions holding three messages each
    topic = new_topic(2)
    producer = Producer({"bootstrap.servers": brokers[0]})
    for partition in (0, 1):
        for i in range(3):
            producer.produce(topic, f"p{partition}-{i}".encode(), partition=partition)
    assert producer.flush(10) == 0
    # when tail reads partition 1 from offset 1
    out = ok(
        "tail", topic, "--partition", "1", "--from", "1", "--count", "2", "--json",
        "--brokers", brokers[0],
    )  # fmt: skip
    # then it prints that partition's messages from there only
    assert [(r["partition"], r["offset"], r["value"]) for r in json_lines(out)] == [
        (1, 1, "p1-1"),
        (1, 2, "p1-2"),
    ]
    # and no consumer group appeared: it assigned partitions and committed nothing
    assert "zeroqueue-tail" not in group_ids(brokers, {}, 10.0)


@pytest.mark.kafka_only
def test_tail_starts_at_a_time_by_offsets_for_times(
    brokers: list[str], new_topic: Callable[[int], str]
) -> None:
    # given messages stamped an hour ago, ten minutes ago and now
    topic = new_topic(2)
    now_ms = int(time.time() * 1000)
    producer = Producer({"bootstrap.servers": brokers[0]})
    for partition in (0, 1):
        for label, age_ms in (("hour", 3_600_000), ("ten", 600_000), ("now", 0)):
            producer.produce(
                topic, f"{label}-{partition}".encode(), partition=partition,
                timestamp=now_ms - age_ms,
            )  # fmt: skip
    assert producer.flush(10) == 0
    half_an_hour_ago = datetime.fromtimestamp(now_ms / 1000 - 1800, tz=timezone.utc)
    # when tail starts half an hour ago (an ISO time), at a Unix time, or 15 minutes ago
    for start, expected in (
        (half_an_hour_ago.isoformat(), {"ten-0", "now-0", "ten-1", "now-1"}),
        (f"@{now_ms / 1000 - 1800}", {"ten-0", "now-0", "ten-1", "now-1"}),
        ("5m", {"now-0", "now-1"}),
    ):
        out = ok("tail", topic, "--from", start, "--no-follow", "--json", "-b", brokers[0])
        # then it prints the messages from then on in every partition
        assert {r["value"] for r in json_lines(out)} == expected, start


@pytest.mark.kafka_only
def test_tail_from_minus_n_prints_the_last_n_of_each_partition(
    brokers: list[str], new_topic: Callable[[int], str]
) -> None:
    topic = new_topic(1)
    ok("push", topic, *[str(i) for i in range(10)], "--brokers", brokers[0])
    out = ok("tail", topic, "--from", "-3", "--no-follow", "--json", "--brokers", brokers[0])
    assert [r["value"] for r in json_lines(out)] == ["7", "8", "9"]
