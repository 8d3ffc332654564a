"""Delayed delivery on real brokers: due times, flow, crashes, CPU, partitions, groups."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from tests.kafka_helpers import committed_offsets, eventually, fast_queue_options, running
from zeroqueue import AsyncPusher, KqConf, Message, Pusher, Queue, admin
from zeroqueue.delay import create_tiers, releaser_group, tier_topics
from zeroqueue.errors import InvalidDelayError, MessageTooLargeError


class Arrivals:
    """A handler noting when each value came, and on which partition."""

    def __init__(self) -> None:
        self._changed = threading.Condition()
        self.at: dict[str, list[float]] = {}
        self.partition: dict[str, int] = {}
        #: Values in the order they came.
        self.order: list[str] = []

    def __call__(self, message: Message) -> None:
        with self._changed:
            self.at.setdefault(message.value_str, []).append(time.time())
            self.order.append(message.value_str)
            self.partition[message.value_str] = message.partition
            self._changed.notify_all()

    def wait_for(self, values: set[str], timeout: float = 30.0) -> bool:
        with self._changed:
            return self._changed.wait_for(lambda: values <= self.at.keys(), timeout)


def _queue(brokers: list[str], topic: str, group: str, handler: Arrivals) -> Queue:
    conf = KqConf(Brokers=brokers, Group=group, Topic=topic, Offset="first")
    return Queue(conf, handler, **fast_queue_options())


def _releasing(queue: Queue, topic: str) -> Callable[[], bool]:
    return lambda: queue.releasing == [topic]


def test_delayed_messages_come_when_due_while_undelayed_ones_flow(
    brokers: list[str], new_topic: Callable[[int], str], group: str
) -> None:
    # given a topic's tiers and a queue releasing them
    topic = new_topic(2)
    create_tiers(brokers, topic)
    arrivals = Arrivals()
    queue = _queue(brokers, topic, group, arrivals)
    with running(queue), Pusher(brokers, topic) as pusher:
        assert eventually(_releasing(queue, topic), timeout=30)
        # when 30 messages are delayed 1-3 s, then 30 more are pushed without delay
        due: dict[str, tuple[float, float]] = {}
        for index in range(30):
            delay = 1.0 + 2.0 * index / 29
            before = time.time()
            pusher.push_with_key(f"k{index % 7}", f"late-{index}", delay=delay)
            due[f"late-{index}"] = (before + delay, time.time() + delay)
        now = [f"now-{index}" for index in range(30)]
        for value in now:
            pusher.push_with_key("k0", value)
        pusher.flush()
        # then the undelayed ones come at once, before any delayed one is due
        assert arrivals.wait_for(set(now), timeout=10)
        first_due = min(earliest for earliest, _ in due.values())
        assert max(arrivals.at[value][0] for value in now) < first_due
        # and each delayed one no earlier than due, within a second after, once
        assert arrivals.wait_for(set(due), timeout=15)
    for value, (earliest, latest) in due.items():
        [came] = arrivals.at[value]
        assert earliest <= came < latest + 1.0, f"{value}: {came - earliest:+.3f}s from due"


def test_a_keys_messages_delayed_alike_keep_their_order(
    brokers: list[str], new_topic: Callable[[int], str], group: str
) -> None:
    # given a queue releasing a topic's tiers
    topic = new_topic(2)
    create_tiers(brokers, topic)
    arrivals = Arrivals()
    queue = _queue(brokers, topic, group, arrivals)
    with running(queue), Pusher(brokers, topic) as pusher:
        assert eventually(_releasing(queue, topic), timeout=30)
        # when two keys' messages are pushed in turn, each delayed 1.3 s: a burst
        # that falls due together and is released a lane's run at a time
        values = [f"{key}-{index}" for index in range(150) for key in ("a", "b")]
        for value in values:
            pusher.push_with_key(value.split("-")[0], value, delay=1.3)
        pusher.flush()
        assert arrivals.wait_for(set(values), timeout=30)
    # then each key's messages came in the order they were pushed
    for key in ("a", "b"):
        came = [int(v.split("-")[1]) for v in arrivals.order if v[0] == key]
        assert came == sorted(came)


def test_at_takes_a_datetime_from_async_code_and_bad_delays_are_refused(
    brokers: list[str], new_topic: Callable[[int], str], group: str
) -> None:
    topic = new_topic(1)
    create_tiers(brokers, topic)
    nameless = new_topic(1)  # no delayed push reached it yet: it has no tiers
    arrivals = Arrivals()
    queue = _queue(brokers, topic, group, arrivals)
    when = datetime.now() + timedelta(seconds=3)

    async def push() -> None:
        async with AsyncPusher(brokers, topic) as pusher:
            await pusher.push("at", at=when)
            nan = float("nan")
            for bad in ({"delay": -1}, {"delay": 1, "at": when}, {"delay": nan}, {"at": nan}):
                try:
                    await pusher.push("bad", **bad)
                except InvalidDelayError:
                    continue
                raise AssertionError(f"{bad} was accepted")
        with Pusher(brokers, nameless) as pusher:
            # NaN is refused before the first delayed push creates the tiers.
            for bad in ({"delay": nan}, {"at": nan}, {"delay": float("inf")}):
                try:
                    pusher.push("bad", **bad)
                except InvalidDelayError:
                    continue
                raise AssertionError(f"{bad} was accepted")

    with running(queue):
        assert eventually(_releasing(queue, topic), timeout=30)
        asyncio.run(push())
        assert arrivals.wait_for({"at"}, timeout=15)
    [came] = arrivals.at["at"]
    assert when.timestamp() <= came < when.timestamp() + 1.0
    assert "bad" not in arrivals.at
    assert admin.existing_topics(brokers, tier_topics(nameless)) == set()


def test_a_delayed_message_keeps_its_keys_partition(
    brokers: list[str], new_topic: Callable[[int], str], group: str
) -> None:
    topic = new_topic(4)
    create_tiers(brokers, topic)
    arrivals = Arrivals()
    queue = _queue(brokers, topic, group, arrivals)
    keys = [f"user-{index}" for index in range(12)]
    with running(queue):
        assert eventually(_releasing(queue, topic), timeout=30)
        for balancer in ("hash", "murmur2", "round_robin"):
            with Pusher(brokers, topic, balancer=balancer) as pusher:
                for key in keys:
                    pusher.push_with_key(key, f"{balancer}-now-{key}")
                    pusher.push_with_key(key, f"{balancer}-later-{key}", delay=0.3)
        expected = {
            f"{b}-{w}-{k}" for b in ("hash", "murmur2") for w in ("now", "later") for k in keys
        }
        assert arrivals.wait_for(expected, timeout=20)
    for balancer in ("hash", "murmur2"):
        for key in keys:
            now = arrivals.partition[f"{balancer}-now-{key}"]
            assert arrivals.partition[f"{balancer}-later-{key}"] == now, (balancer, key)


def test_a_delayed_message_too_big_for_its_topic_is_refused_at_push(
    brokers: list[str], group: str, broker_kind: str
) -> None:
    # Tiers used to get the broker's default max.message.bytes: a push the topic would
    # refuse was taken, and its release was retried for ever, holding up its key.
    if broker_kind != "kafka":
        pytest.skip("the embedded broker does not enforce max.message.bytes")
    topic = f"{group}-small"
    admin.create_topic(brokers, topic, config={"max.message.bytes": "20000"})
    arrivals = Arrivals()
    queue = _queue(brokers, topic, group, arrivals)
    with Pusher(brokers, topic, sync_push=True) as pusher:
        with pytest.raises(MessageTooLargeError):
            pusher.push_with_key("k", "u" * 20_000)  # the topic itself refuses it
        with pytest.raises(MessageTooLargeError, match=r"\.delay-"):
            pusher.push_with_key("k", "d" * 20_000, delay=0.2)  # so its first tier does
        pusher.push_with_key("k", "fits" + "f" * 19_800, delay=0.2)
    with running(queue):
        assert arrivals.wait_for({"fits" + "f" * 19_800}, timeout=30)


def test_two_groups_each_get_a_delayed_message_once(
    brokers: list[str], new_topic: Callable[[int], str], group: str
) -> None:
    topic = new_topic(2)
    create_tiers(brokers, topic)
    first, second = Arrivals(), Arrivals()
    queues = [
        _queue(brokers, topic, f"{group}-a", first),
        _queue(brokers, topic, f"{group}-b", second),
    ]
    values = {f"v{index}" for index in range(20)}
    with running(queues[0]), running(queues[1]):
        assert eventually(lambda: topic in queues[0].releasing + queues[1].releasing)
        with Pusher(brokers, topic) as pusher:
            for value in sorted(values):
                pusher.push(value, delay=0.5)
        assert first.wait_for(values)
        assert second.wait_for(values)
        # the releaser group is shared: nothing is released twice
        assert not eventually(lambda: len(first.at) > 20 or len(second.at) > 20, timeout=2)
    assert all(len(times) == 1 for times in first.at.values())
    assert all(len(times) == 1 for times in second.at.values())


def test_only_delayed_messages_waiting_cost_no_cpu(
    brokers: list[str], new_topic: Callable[[int], str], group: str
) -> None:
    topic = new_topic(1)
    create_tiers(brokers, topic)
    arrivals = Arrivals()
    queue = _queue(brokers, topic, group, arrivals)
    with running(queue):
        assert eventually(_releasing(queue, topic), timeout=30)
        with Pusher(brokers, topic) as pusher:
            for index in range(200):
                pusher.push(f"v{index}", delay=12.0)
        # once the first of their three 4 s hops is done, they all wait for 4 s more
        four_seconds = tier_topics(topic)[3]
        assert four_seconds.endswith(".delay-4s")
        assert eventually(
            lambda: (
                committed_offsets(brokers, releaser_group(topic), four_seconds).get(0, -1) >= 200
            ),
            timeout=20,
        )
        # then, while only they wait, the process barely uses the CPU
        cpu, wall = time.process_time(), time.monotonic()
        time.sleep(2.5)  # the measurement window: nothing is due in it
        share = (time.process_time() - cpu) / (time.monotonic() - wall)
        assert arrivals.wait_for({f"v{index}" for index in range(200)}, timeout=20)
    assert share < 0.05, f"{share:.1%} of a core"


def test_a_consumer_killed_while_holding_delayed_messages_loses_none(
    brokers: list[str], new_topic: Callable[[int], str], group: str, tmp_path: Path
) -> None:
    topic = new_topic(2)
    create_tiers(brokers, topic)

    def start() -> subprocess.Popen[str]:
        return subprocess.Popen(
            [sys.executable, "-m", "tests.kq.consumer_process", brokers[0], topic, group, "0"],
            stdout=subprocess.PIPE,
            text=True,
            cwd=Path(__file__).parents[2],
            start_new_session=True,
        )

    seen: list[str] = []
    lock = threading.Lock()

    def read(process: subprocess.Popen[str]) -> threading.Thread:
        def collect() -> None:
            assert process.stdout is not None
            for line in process.stdout:
                with lock:
                    seen.append(line.split()[-1])

        thread = threading.Thread(target=collect, daemon=True)
        thread.start()
        return thread

    first = start()
    reader = read(first)
    values = [f"v{index}" for index in range(40)]
    try:
        with Pusher(brokers, topic) as pusher:
            pusher.push("probe", delay=0.1)
            pusher.flush()
            assert eventually(lambda: "probe" in seen, timeout=60)
            for index, value in enumerate(values):
                pusher.push_with_key(f"k{index}", value, delay=3.0 + index % 3)
        # when the releaser moved some of them a tier on (and committed), it is killed
        one_second_tier = tier_topics(topic)[2]
        assert eventually(
            lambda: (
                sum(
                    max(o, 0)
                    for o in committed_offsets(
                        brokers, releaser_group(topic), one_second_tier
                    ).values()
                )
                > 1
            ),
            timeout=20,
        )
    finally:
        os.killpg(first.pid, signal.SIGKILL)
        first.wait()
        reader.join(5)
        assert first.stdout is not None
        first.stdout.close()
    second = start()
    reader = read(second)
    try:
        # then a new consumer delivers every one of them
        assert eventually(lambda: set(values) <= set(seen), timeout=60)
    finally:
        second.terminate()
        second.wait(30)
        reader.join(5)
        assert second.stdout is not None
        second.stdout.close()
