"""Moves that go wrong, big ones, and Spring's, on the broker under test."""

from __future__ import annotations

import asyncio
import math
import threading
import time
from collections.abc import Callable

import pytest
from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient

from tests.kafka_helpers import eventually, fast_queue_options, read_topic, running, unique_name
from zeroqueue import KqConf, Message, Pusher, Queue, admin
from zeroqueue.producer.options import PushOptions
from zeroqueue.retry import RetryConf, retry_topic_name
from zeroqueue.retry import headers as h
from zeroqueue.retry._router import RetryRouter


class Outcomes:
    """An error_handler recording each outcome and when it came."""

    def __init__(self) -> None:
        self.heard: list[tuple[str, str, float]] = []  # value, outcome, when
        self._lock = threading.Lock()

    def __call__(self, message: Message, error: BaseException, outcome: str) -> None:
        with self._lock:
            self.heard.append((message.value_str, outcome, time.monotonic()))

    def of(self, outcome: str) -> list[float]:
        with self._lock:
            return [when for _, said, when in self.heard if said == outcome]


def conf(brokers: list[str], topic: str, group: str, retry: RetryConf) -> KqConf:
    return KqConf(Brokers=brokers, Group=group, Topic=topic, Offset="first", Retry=retry)


def _exists(brokers: list[str], topic: str) -> bool:
    client = AdminClient({"bootstrap.servers": ",".join(brokers)})
    return topic in client.list_topics(timeout=10).topics


def _delete(brokers: list[str], topic: str) -> None:
    admin.delete_topic(brokers, topic)
    assert eventually(lambda: not _exists(brokers, topic))


def test_a_move_to_a_missing_topic_fails_within_move_timeout_then_succeeds_once_it_is_back(
    brokers: list[str], new_topic: Callable[[int], str], group: str, request: pytest.FixtureRequest
) -> None:
    # given a queue whose dead-letter topic is deleted once it runs (an operator's clean-up)
    topic = new_topic(1)
    dead_letters = unique_name(request, "dlt")
    retry = RetryConf(Attempts=1, MaxBackoff="1s", MoveTimeout="2s", DeadLetterTopic=dead_letters)
    tried: list[float] = []

    def handle(message: Message) -> None:
        tried.append(time.monotonic())
        raise ValueError("cannot store it")

    outcomes = Outcomes()
    queue = Queue(
        conf(brokers, topic, group, retry), handle, error_handler=outcomes, **fast_queue_options()
    )
    with running(queue):
        assert eventually(lambda: len(queue.assignment()) == 1)
        _delete(brokers, dead_letters)
        # when a message fails
        with Pusher(brokers, topic) as pusher:
            pusher.push_with_key("k", "bad")
        # then its move fails once MoveTimeout passed, not the 2 minutes of a Pusher's
        # delivery timeout, and nothing is committed
        assert eventually(lambda: bool(outcomes.of("move-failed")), timeout=20)
        assert outcomes.of("move-failed")[0] - tried[0] < 2.0 + 5.0 + 3.0
        assert admin.committed_offsets(brokers, group, topic) == {0: None}
        # and once the topic is back, the next try moves it, and it is committed
        admin.create_topic(brokers, dead_letters)
        assert eventually(lambda: bool(outcomes.of("dead-lettered")), timeout=30)
        assert eventually(lambda: admin.committed_offsets(brokers, group, topic) == {0: 1})
    [record] = read_topic(brokers, dead_letters, 1)
    assert record.value() == b"bad"


def test_failed_async_awaits_a_move_without_holding_up_the_event_loop(
    brokers: list[str], new_topic: Callable[[int], str], group: str, request: pytest.FixtureRequest
) -> None:
    # given a router whose dead-letter topic does not exist (yet)
    topic = new_topic(1)
    dead_letters = unique_name(request, "dlt")
    outcomes: list[str] = []
    router = RetryRouter(
        RetryConf(Attempts=1, MaxBackoff="1s", MoveTimeout="2s", DeadLetterTopic=dead_letters),
        brokers=brokers,
        source_topics=[topic],
        group=group,
        force_commit=True,
        report=lambda message, error, outcome: outcomes.append(outcome),
        push_options=PushOptions(),
    )
    failed = Message(topic, 0, 7, b"k", b"bad", (), time.time())
    gaps: list[float] = []

    async def tick(stop: asyncio.Event) -> None:
        last = time.monotonic()
        while not stop.is_set():
            await asyncio.sleep(0.01)
            gaps.append(time.monotonic() - last)
            last = time.monotonic()

    async def move() -> tuple[float | None, float | None]:
        stop = asyncio.Event()
        ticker = asyncio.create_task(tick(stop))
        # when a move is awaited while the topic is missing, then once it is there
        first = await router.failed_async(failed, ValueError("x"), 1)
        await asyncio.to_thread(admin.create_topic, brokers, dead_letters)
        second = await router.failed_async(failed, ValueError("x"), 1)
        stop.set()
        await ticker
        return first, second

    try:
        first, second = asyncio.run(move())
    finally:
        router.close()
    # then the first failed within MoveTimeout (tried again after MaxBackoff), the second
    # returned once acknowledged: the message is in the topic
    assert (first, second) == (1.0, None)
    assert outcomes == ["move-failed", "dead-lettered"]
    [record] = read_topic(brokers, dead_letters, 1)
    assert record.value() == b"bad"
    # and the event loop ran on all along
    assert max(gaps) < 0.5, max(gaps)


def test_an_async_handlers_move_does_not_hold_up_its_other_keys(
    brokers: list[str], new_topic: Callable[[int], str], group: str, request: pytest.FixtureRequest
) -> None:
    # given an async handler whose dead-letter topic is gone, so a move waits MoveTimeout
    topic = new_topic(4)
    dead_letters = unique_name(request, "dlt")
    retry = RetryConf(Attempts=1, MaxBackoff="5s", MoveTimeout="3s", DeadLetterTopic=dead_letters)
    handled: dict[str, float] = {}

    async def handle(message: Message) -> None:
        handled.setdefault(message.value_str, time.monotonic())
        if message.value_str == "bad":
            raise ValueError("cannot store it")

    queue = Queue(conf(brokers, topic, group, retry), handle, **fast_queue_options())
    with running(queue):
        assert eventually(lambda: len(queue.assignment()) == 4)
        _delete(brokers, dead_letters)
        with Pusher(brokers, topic) as pusher:
            pusher.push_with_key("bad-key", "bad")
            assert eventually(lambda: "bad" in handled)
            # when messages of other keys come while its move waits
            pushed = time.monotonic()
            for i in range(20):
                pusher.push_with_key(f"key-{i}", f"good-{i}")
        # then they are handled meanwhile: all but the few keys that share its lane (one
        # of the 16 lanes of 8 processors) and wait behind it, as its own key does
        goods = [f"good-{i}" for i in range(20)]
        assert eventually(lambda: sum(good in handled for good in goods) >= 14)
        quickly = [good for good in goods if handled.get(good, math.inf) - pushed < 2.0]
        assert len(quickly) >= 14, handled


def test_a_sync_handlers_move_does_not_hold_up_its_other_keys(
    brokers: list[str], new_topic: Callable[[int], str], group: str, request: pytest.FixtureRequest
) -> None:
    # given a sync handler whose dead-letter topic is gone, so a move waits MoveTimeout
    topic = new_topic(4)
    dead_letters = unique_name(request, "dlt")
    retry = RetryConf(Attempts=1, MaxBackoff="5s", MoveTimeout="3s", DeadLetterTopic=dead_letters)
    handled: dict[str, float] = {}

    def handle(message: Message) -> None:
        handled.setdefault(message.value_str, time.monotonic())
        if message.value_str == "bad":
            raise ValueError("cannot store it")

    queue = Queue(conf(brokers, topic, group, retry), handle, **fast_queue_options())
    with running(queue):
        assert eventually(lambda: len(queue.assignment()) == 4)
        _delete(brokers, dead_letters)
        with Pusher(brokers, topic) as pusher:
            pusher.push_with_key("bad-key", "bad")
            assert eventually(lambda: "bad" in handled)
            # when messages of other keys come while its move waits
            pushed = time.monotonic()
            for i in range(20):
                pusher.push_with_key(f"key-{i}", f"good-{i}")
        # then they are handled meanwhile: all but the few keys that share its lane (one
        # of the 16 lanes of 8 processors) and wait behind it, as its own key does
        goods = [f"good-{i}" for i in range(20)]
        assert eventually(lambda: sum(good in handled for good in goods) >= 14)
        quickly = [good for good in goods if handled.get(good, math.inf) - pushed < 2.0]
        assert len(quickly) >= 14, handled


def test_a_message_as_large_as_its_topic_takes_is_dead_lettered_with_its_headers(
    brokers: list[str], new_topic: Callable[[int], str], group: str, request: pytest.FixtureRequest
) -> None:
    # given a message just under 1 MiB (what a default Pusher and topic take), then another,
    # and a dead-letter topic the Queue creates (with room for a move's headers)
    topic = new_topic(1)
    dead_letters = unique_name(request, "dlt")
    big = "x" * 1_048_000
    with Pusher(brokers, topic) as pusher:
        pusher.push_with_key("k", big)
        pusher.push_with_key("k", "small")
    outcomes = Outcomes()

    def handle(message: Message) -> None:
        if len(message.value or b"") > 1000:
            raise ValueError("too big to store")

    retry = RetryConf(Attempts=1, MaxBackoff="1s", DeadLetterTopic=dead_letters)
    queue = Queue(
        conf(brokers, topic, group, retry), handle, error_handler=outcomes, **fast_queue_options()
    )
    # when it fails
    with running(queue):
        # then it is dead-lettered, headers and all, and the partition goes on past it
        assert eventually(lambda: admin.committed_offsets(brokers, group, topic) == {0: 2})
    assert [outcome for _, outcome, _ in outcomes.heard] == ["dead-lettered"]
    [record] = read_topic(brokers, dead_letters, 1)
    assert record.value() == big.encode()
    headers = dict(record.headers() or [])
    assert headers[h.EXCEPTION_MESSAGE] == b"too big to store"


def _big_integer(value: int) -> bytes:
    """What Spring writes: Java's BigInteger.toByteArray(), as short as the number allows."""
    return value.to_bytes(value.bit_length() // 8 + 1, "big", signed=True)


def test_a_retry_message_spring_wrote_is_held_until_it_is_due(
    brokers: list[str], new_topic: Callable[[int], str], group: str
) -> None:
    # given a queue with a 1 s retry topic
    topic = new_topic(1)
    tier = retry_topic_name(topic, group, 1)
    seen: list[float] = []

    def handle(message: Message) -> None:
        seen.append(time.time())

    queue = Queue(
        conf(brokers, topic, group, RetryConf(Attempts=1, Delays=["1s"])),
        handle,
        **fast_queue_options(),
    )
    with running(queue):
        assert eventually(lambda: len(queue.assignment()) == 2)
        # when a retry message comes in with Spring's encodings: a 6-byte backoff
        # timestamp (BigInteger) 3 s ahead, and the one-byte attempts of older versions
        due = time.time() + 3.0
        producer = Producer({"bootstrap.servers": ",".join(brokers)})
        producer.produce(
            tier,
            b"from spring",
            b"k",
            headers=[
                (h.BACKOFF_TIMESTAMP, _big_integer(int(due * 1000))),
                (h.ATTEMPTS, b"\x01"),
                (h.ORIGINAL_TOPIC, topic.encode()),
            ],
        )
        assert producer.flush(10) == 0
        # then it is held until due
        assert eventually(lambda: bool(seen), timeout=20)
    assert seen[0] >= due - 0.01


def test_a_five_parameter_metrics_hook_hears_skipped_without_a_retry_section(
    brokers: list[str], new_topic: Callable[[int], str], group: str
) -> None:
    # given a queue without a Retry section (ForceCommit true) and a message that fails
    topic = new_topic(1)
    with Pusher(brokers, topic) as pusher:
        pusher.push_with_key("k", "bad")
    said: list[str] = []
    heard: list[str] = []

    def handle(message: Message) -> None:
        raise ValueError("bad")

    queue = Queue(
        KqConf(Brokers=brokers, Group=group, Topic=topic, Offset="first"),
        handle,
        error_handler=lambda message, error, outcome: said.append(outcome),
        metrics=lambda topic, partition, seconds, error, outcome: heard.append(outcome),
        **fast_queue_options(),
    )
    with running(queue):
        assert eventually(lambda: bool(heard))
    # then error_handler and metrics both call it skipped, as README lists
    assert said == heard == ["skipped"]
