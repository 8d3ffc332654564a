"""``zeroqueue topics`` and ``zeroqueue groups`` against the broker under test."""

from __future__ import annotations

import json
from collections.abc import Callable

import pytest
from confluent_kafka import Consumer, TopicPartition

from tests.cli.helpers import ok, zeroqueue
from tests.kafka_helpers import Recorder, running
from zeroqueue import KqConf, Queue


def test_topics_create_list_and_describe(brokers: list[str], group: str) -> None:
    # given a name no topic has (the group fixture's is unique too)
    name = group.replace("g-", "t-", 1)
    # when it is created with three partitions
    out = ok("topics", "create", name, "--partitions", "3", "--brokers", brokers[0])
    assert out.strip() == f"created topic {name} with 3 partitions"
    # then the list has it, in text and in JSON
    assert any(
        line.split() == [name, "3"] for line in ok("topics", "--brokers", brokers[0]).splitlines()
    )
    listed = json.loads(ok("topics", "--json", "--brokers", brokers[0]))
    assert {"topic": name, "partitions": 3} in listed
    # and describe shows its partitions with a leader and replicas
    described = json.loads(ok("topics", "describe", name, "--json", "--brokers", brokers[0]))
    assert [p["partition"] for p in described["partitions"]] == [0, 1, 2]
    assert all(p["leader"] >= 0 and p["replicas"] == [p["leader"]] for p in described["partitions"])
    text = ok("topics", "describe", name, "--brokers", brokers[0])
    assert text.startswith(f"{name}: 3 partitions")
    assert "PARTITION  LEADER  REPLICAS  IN-SYNC  LOW  HIGH  MESSAGES" in text
    # and creating it again is an error that says so, unless --exist-ok
    again = zeroqueue("topics", "create", name, "--brokers", brokers[0])
    assert again.returncode == 1
    assert f"topic {name!r} already exists, with 3 partitions" in again.stderr
    # (the group's options serve its subcommands too)
    out = ok("topics", "--brokers", brokers[0], "create", name, "--exist-ok", "--json")
    assert json.loads(out) == {"topic": name, "created": False, "partitions": 3}


def test_a_topic_typo_names_the_close_names(
    brokers: list[str], new_topic: Callable[[int], str]
) -> None:
    topic = new_topic(1)
    # two neighbouring letters swapped: the last two that differ (a random suffix may
    # end in a double letter, and swapping those would spell the topic itself)
    at = max(i for i in range(len(topic) - 1) if topic[i] != topic[i + 1])
    typo = topic[:at] + topic[at + 1] + topic[at] + topic[at + 2 :]
    assert typo != topic
    for args in (("topics", "describe", typo), ("tail", typo), ("push", typo, "x")):
        done = zeroqueue(*args, "--brokers", brokers[0])
        assert done.returncode == 1, args
        assert f"topic {typo!r} does not exist on {brokers[0]}; did you mean {topic!r}" in (
            done.stderr
        ), args


@pytest.mark.kafka_only
def test_topics_describe_shows_watermarks_and_settings(brokers: list[str], group: str) -> None:
    name = group.replace("g-", "t-", 1)
    ok("topics", "create", name, "-p", "2", "-c", "retention.ms=3600000", "-b", brokers[0])
    ok("push", name, "a", "b", "c", "-k", "one-key", "--brokers", brokers[0])
    described = json.loads(ok("topics", "describe", name, "--json", "--brokers", brokers[0]))
    assert sum(p["high"] - p["low"] for p in described["partitions"]) == 3
    assert {"name": "retention.ms", "value": "3600000", "is_default": False} in (
        described["config"]
    )
    text = ok("topics", "describe", name, "--brokers", brokers[0])
    assert f"{name}: 2 partitions, 3 messages" in text
    assert any(line.split() == ["retention.ms", "3600000"] for line in text.splitlines())


def commit(brokers: list[str], group: str, topic: str, offsets: dict[int, int]) -> None:
    """Commit ``offsets`` for ``group`` without joining it (as a tool would)."""
    consumer = Consumer({"bootstrap.servers": brokers[0], "group.id": group})
    try:
        consumer.commit(
            offsets=[TopicPartition(topic, p, o) for p, o in offsets.items()], asynchronous=False
        )
    finally:
        consumer.close()


def test_groups_lists_and_describes_committed_offsets(
    brokers: list[str], new_topic: Callable[[int], str], group: str
) -> None:
    # given a group that committed offsets on two partitions
    topic = new_topic(2)
    commit(brokers, group, topic, {0: 1, 1: 2})
    # then the list has it
    assert group in {g["group"] for g in json.loads(ok("groups", "--json", "-b", brokers[0]))}
    assert any(line.split()[:1] == [group] for line in ok("groups", "-b", brokers[0]).splitlines())
    # and describe shows its offsets per partition
    described = json.loads(ok("groups", "describe", group, "--json", "--brokers", brokers[0]))
    assert described["group"] == group
    assert described["members"] == []
    assert [(o["topic"], o["partition"], o["committed"]) for o in described["offsets"]] == [
        (topic, 0, 1),
        (topic, 1, 2),
    ]
    text = ok("groups", "describe", group, "--brokers", brokers[0])
    assert text.startswith(f"group {group}  state ")
    assert any(line.split()[:3] == [topic, "1", "2"] for line in text.splitlines())


def test_a_group_that_does_not_exist_is_named_with_close_names(
    brokers: list[str], new_topic: Callable[[int], str], group: str
) -> None:
    topic = new_topic(1)
    commit(brokers, group, topic, {0: 0})
    done = zeroqueue("groups", "describe", group + "x", "--brokers", brokers[0])
    assert done.returncode == 1
    assert f"group {group + 'x'!r} does not exist on {brokers[0]}; did you mean {group!r}" in (
        done.stderr
    )


@pytest.mark.kafka_only
def test_groups_describe_shows_members_and_lag(
    brokers: list[str], new_topic: Callable[[int], str], group: str
) -> None:
    # given a Queue that handled five messages, then five more pushed while it is stopped
    topic = new_topic(2)
    ok("push", topic, *[f"m{i}" for i in range(5)], "-b", brokers[0])
    recorder = Recorder()
    conf = KqConf(Brokers=brokers, Group=group, Topic=topic, Offset="first")
    queue = Queue(conf, recorder, session_timeout=6.0, commit_interval=0.2, handle_signals=False)
    with running(queue):
        assert recorder.wait_for(5)
        # while it runs, describe names its member and the partitions it holds
        described = json.loads(ok("groups", "describe", group, "--json", "-b", brokers[0]))
        assert described["state"] == "stable"
        assert len(described["members"]) == 1
        assert sorted(p for _, p in described["members"][0]["assignment"]) == [0, 1]
    ok("push", topic, *[f"n{i}" for i in range(5)], "-b", brokers[0])
    # then the lag is the five it has not read, partition by partition
    described = json.loads(ok("groups", "describe", group, "--json", "-b", brokers[0]))
    assert described["lag"] == 5
    assert sum(o["high"] - o["committed"] for o in described["offsets"]) == 5
    assert all(o["lag"] == o["high"] - o["committed"] for o in described["offsets"])
    text = ok("groups", "describe", group, "-b", brokers[0])
    assert ", lag 5" in text.splitlines()[0]
