"""The kit on its own: retries, dead letters, delays, groups, crashes, helpers, speed."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

import zeroqueue.testing
from tests.testing.conftest import Seen
from zeroqueue import KqConf, Message, Pusher, Queue, conf
from zeroqueue.delay import create_tiers
from zeroqueue.errors import DeliveryError
from zeroqueue.retry import RetryConf
from zeroqueue.server import Server
from zeroqueue.testing import MemoryBroker


def test_the_public_names_are_the_documented_ones() -> None:
    assert sorted(zeroqueue.testing.__all__) == [
        "MemoryBroker",
        "MemorySource",
        "fnv1a_partition",
        "murmur2_partition",
    ]


def test_a_failing_message_goes_through_the_retry_topics_to_the_dead_letter_topic(
    memory_broker: MemoryBroker,
) -> None:
    # given a Queue with tries in place, two retry topics and a dead-letter topic
    memory_broker.create_topic("orders", 2)
    tries: dict[str, list[str]] = {}

    def handle(message: Message) -> None:
        tries.setdefault(message.value_str, []).append(message.topic)
        if message.value_str == "bad":
            raise ValueError("cannot store order")

    retry = RetryConf(
        Attempts=2, Backoff="10ms", Delays=["50ms", "100ms"], DeadLetterTopic="orders.dlt"
    )
    kq = KqConf(
        Brokers=memory_broker.brokers, Group="billing", Topic="orders", Offset="first", Retry=retry
    )
    with Pusher(memory_broker.brokers, "orders") as pusher:
        pusher.push_with_key("a", "good")
        pusher.push_with_key("b", "bad")

    # when it handles them
    started = time.monotonic()
    with Queue(kq, handle, handle_signals=False, commit_interval=0.05).running() as queue:
        memory_broker.wait_idle(queue)
        waited = time.monotonic() - started

    # then the bad one was tried twice in place, once per retry topic, then dead-lettered
    assert tries["good"] == ["orders"]
    assert tries["bad"] == [
        "orders",
        "orders",
        "orders.billing.retry-50ms",
        "orders.billing.retry-100ms",
    ]
    [dead] = memory_broker.messages("orders.dlt")
    assert (dead.key_str, dead.value_str) == ("b", "bad")
    assert dead.header("kafka_dlt-original-topic") == b"orders"
    assert dead.header("kafka_dlt-exception-message") == b"cannot store order"
    # and no earlier than the retry delays allow
    assert waited >= 0.15


def test_a_delayed_message_is_handled_once_due_not_before(memory_broker: MemoryBroker) -> None:
    # given a topic with its delay tiers, and a message delayed 0.3 s beside one that is not
    memory_broker.create_topic("reminders", 1)
    create_tiers(memory_broker.brokers, "reminders")
    handled: list[tuple[str, float]] = []
    kq = KqConf(Brokers=memory_broker.brokers, Group="g", Topic="reminders", Offset="first")
    queue = Queue(kq, lambda m: handled.append((m.value_str, time.time())), handle_signals=False)
    with queue.running():
        pushed = time.time()
        with Pusher(memory_broker.brokers, "reminders") as pusher:
            pusher.push("later", delay=0.3)
            pusher.push("now")
        # when everything is handled (the delayed message counts as pending until released)
        memory_broker.wait_idle(queue)

    # then the delayed one came after the other, and not before it was due
    assert [value for value, _ in handled] == ["now", "later"]
    assert handled[1][1] - pushed >= 0.3
    assert memory_broker.messages("reminders")[1].header("zeroqueue-delay-due") is not None


def test_a_crashed_queues_partitions_go_to_the_other_member_from_the_last_commit(
    memory_broker: MemoryBroker,
) -> None:
    # given two Queues of one group sharing 2 partitions: the first commits often, the
    # second once a minute
    memory_broker.create_topic("t", 2)
    kq = KqConf(Brokers=memory_broker.brokers, Group="g", Topic="t", Offset="first")
    first, second = Seen(), Seen()
    one = Queue(kq, first.add, handle_signals=False, commit_interval=0.01)
    two = Queue(kq, second.add, handle_signals=False, commit_interval=60.0)
    with one.running():
        memory_broker.wait_idle(one)
        with two.running():
            memory_broker.wait_idle(one, two)
            assert memory_broker.assignment("g") == [[("t", 0)], [("t", 1)]]
            for n in range(4):
                memory_broker.push("t", f"m{n}", partition=n % 2)
            memory_broker.wait_idle(one, two)
            # when the second crashes after handling its share, before committing it
            memory_broker.crash(two)
            memory_broker.wait_idle(one)
            assert memory_broker.assignment("g") == [[("t", 0), ("t", 1)]]
        memory_broker.wait_committed("g", "t")

    # then the first took its partition over and handled its messages again
    assert sorted(m.value_str for m in second.messages) == ["m1", "m3"]
    assert sorted(m.value_str for m in first.messages) == ["m0", "m1", "m2", "m3"]
    assert memory_broker.committed("g", "t") == {0: 2, 1: 2}


def test_a_queue_crashed_from_its_handler_handles_nothing_more_of_what_it_fetched(
    memory_broker: MemoryBroker,
) -> None:
    # given a Queue that fetched a backlog of 50 and crashes while handling the 5th
    memory_broker.create_topic("t", 1)
    for n in range(50):
        memory_broker.push("t", f"m{n}")
    kq = KqConf(Brokers=memory_broker.brokers, Group="g", Topic="t", Offset="first")
    seen = Seen()
    crashed = threading.Event()
    queue: Queue | None = None

    def handle(message: Message) -> None:
        seen.add(message)
        if message.value_str == "m4":
            assert queue is not None
            memory_broker.crash(queue)
            crashed.set()

    queue = Queue(kq, handle, handle_signals=False, commit_interval=60.0, adaptive=False)
    with queue.running():
        assert crashed.wait(10)
    # then, as a killed process, it handled nothing after that message
    assert [m.value_str for m in seen.messages] == [f"m{n}" for n in range(5)]
    assert memory_broker.committed("g", "t") == {0: None}
    # and the next member of the group gets all 50 again
    again = Seen()
    with Queue(kq, again.add, handle_signals=False).running() as other:
        memory_broker.wait_idle(other)
    assert len(again.messages) == 50


def test_a_server_subscriber_and_publish_run_on_the_kit(memory_broker: MemoryBroker) -> None:
    # given a Server built with the kit's brokers value
    server = Server(memory_broker.brokers, group="billing", handle_signals=False)
    seen = Seen()

    @server.subscriber("orders", settings={"Offset": "first"})
    def on_order(order: dict[str, int], message: Message) -> None:
        seen.add(message)

    # when it publishes and runs
    server.publish("orders", {"id": 7}, key="user-42")
    with server.running():
        assert seen.wait_for(1, timeout=5)

    # then the subscriber got the decoded value, with its key and content type
    [message] = seen.messages
    assert (message.key_str, message.value_str) == ("user-42", '{"id":7}')
    assert message.header("content-type") == b"application/json"


def test_a_config_file_naming_memory_runs_unchanged(tmp_path: Path) -> None:
    # given a go-zero config file whose Brokers is memory://
    path = tmp_path / "config.yaml"
    path.write_text(
        "Kq:\n  Brokers: [memory://from-file]\n  Group: g\n  Topic: orders\n  Offset: first\n"
    )
    kq = KqConf.load(path, key="Kq")
    seen = Seen()
    # when a Pusher and a Queue are built from it
    with Pusher.from_conf(kq) as pusher:
        pusher.push("hello")
    with Queue(kq, seen.add, handle_signals=False).running():
        assert seen.wait_for(1, timeout=5)
    # then they met on the broker of that name
    assert [m.value_str for m in seen.messages] == ["hello"]
    assert conf is not None


def test_python_balancers_read_partition_counts_from_the_kit(memory_broker: MemoryBroker) -> None:
    memory_broker.create_topic("rr", 3)
    with Pusher(memory_broker.brokers, "rr", balancer="round_robin") as pusher:
        for n in range(6):
            pusher.push(str(n))
    assert [m.partition for m in memory_broker.messages("rr")] == [0, 0, 1, 1, 2, 2]


def test_a_push_to_a_missing_topic_fails_when_topics_are_not_auto_created() -> None:
    with (
        MemoryBroker(auto_create_topics=False) as broker,
        pytest.raises(DeliveryError, match=r"Unknown topic"),
        Pusher(broker.brokers, "missing", sync_push=True) as pusher,
    ):
        pusher.push("x")


def test_wait_idle_says_what_is_pending_when_it_times_out(memory_broker: MemoryBroker) -> None:
    memory_broker.create_topic("t", 1)
    memory_broker.push("t", "x")
    release = threading.Event()
    kq = KqConf(Brokers=memory_broker.brokers, Group="g", Topic="t", Offset="first")
    with Queue(kq, lambda m: release.wait(5), handle_signals=False).running() as queue:
        with pytest.raises(TimeoutError, match="has not handled all it owns"):
            memory_broker.wait_idle(queue, timeout=0.05)
        release.set()
        memory_broker.wait_idle(queue)


def test_a_queue_round_trip_takes_milliseconds(memory_broker: MemoryBroker) -> None:
    # given 20 Queues started, fed one message, drained and stopped one after another
    memory_broker.create_topic("t", 4)
    kq = KqConf(Brokers=memory_broker.brokers, Group="g", Topic="t", Offset="first")
    seen = Seen()
    started = time.monotonic()
    with Pusher(memory_broker.brokers, "t") as pusher:
        for n in range(20):
            with Queue(kq, seen.add, handle_signals=False).running() as queue:
                pusher.push_with_key(str(n), str(n))
                memory_broker.wait_idle(queue)
    per_round = (time.monotonic() - started) / 20

    # then each round took well under 100 ms (a group join on a real broker takes seconds)
    assert len(seen.messages) == 20
    assert per_round < 0.1, f"{per_round * 1000:.0f} ms per start, push, handle and stop"
