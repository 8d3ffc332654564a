"""The same handler test, on the test kit and on a real broker: it must pass on both."""

from __future__ import annotations

from collections import defaultdict

from tests.testing.conftest import Seen, Target
from zeroqueue import KqConf, Message, Pusher
from zeroqueue.testing import fnv1a_partition


def test_a_handler_sees_each_message_once_in_key_order_and_the_group_commits_the_end(
    target: Target, seen: Seen, group: str
) -> None:
    # given a topic of 3 partitions holding 60 messages of 6 keys, pushed with the default balancer
    topic = target.new_topic(3)
    keys = [f"user-{n}" for n in range(6)]
    with Pusher(target.brokers, topic) as pusher:
        for n in range(60):
            pusher.push_with_key(keys[n % 6], f"{keys[n % 6]}:{n}")
    conf = KqConf(Brokers=target.brokers, Group=group, Topic=topic, Offset="first", Processors=4)

    # when a Queue of the group handles them
    queue = target.queue(conf, seen.add, commit_interval=0.05)
    with queue.running():
        assert seen.wait_for(60)

    # then each was handled once, each key's in push order, on the partition "hash" picks
    by_key: dict[str, list[int]] = defaultdict(list)
    for message in seen.messages:
        key, number = message.value_str.split(":")
        by_key[key].append(int(number))
        assert message.partition == fnv1a_partition(key.encode(), 3)
    assert sorted(n for ns in by_key.values() for n in ns) == list(range(60))
    assert all(ns == sorted(ns) for ns in by_key.values())
    # and stop() committed the end of every partition
    per_partition: defaultdict[int, int] = defaultdict(int)
    for key in keys:
        per_partition[fnv1a_partition(key.encode(), 3)] += 10
    assert target.committed(group, topic) == {p: per_partition[p] or None for p in range(3)}


def test_a_failing_handler_with_force_commit_false_is_retried_until_it_succeeds(
    target: Target, seen: Seen, group: str
) -> None:
    # given a handler that fails the first two tries of one message
    topic = target.new_topic(1)
    failures: list[str] = []

    def handle(message: Message) -> None:
        if message.value_str == "flaky" and len(failures) < 2:
            failures.append(message.value_str)
            raise RuntimeError("not yet")
        seen.add(message)

    with Pusher(target.brokers, topic) as pusher:
        for value in ("a", "flaky", "b"):
            pusher.push_with_key("k", value)
    conf = KqConf(
        Brokers=target.brokers, Group=group, Topic=topic, Offset="first", ForceCommit=False
    )

    # when a Queue handles them
    with target.queue(conf, handle, retry_backoff=0.01, commit_interval=0.05).running():
        assert seen.wait_for(3)

    # then the key's order held through the retries, and everything was committed
    assert [m.value_str for m in seen.messages] == ["a", "flaky", "b"]
    assert failures == ["flaky", "flaky"]
    assert target.committed(group, topic) == {0: 3}
