"""kq.Queue against the embedded broker: order, no loss, failures, shutdown, rebalance."""

from __future__ import annotations

import asyncio
import functools
import itertools
import threading
import time
from collections import defaultdict
from collections.abc import Callable
from typing import Any

import pytest
from confluent_kafka import OFFSET_INVALID

from tests.kafka_helpers import (
    Recorder,
    committed_offsets,
    eventually,
    fast_queue_options,
    running,
)
from zeroqueue import (
    BrokerUnavailableError,
    ConfigError,
    ConsumeError,
    DecodeError,
    KqConf,
    Message,
    Pusher,
    Queue,
)
from zeroqueue._process import free_port
from zeroqueue.embedded import BrokerProcess
from zeroqueue.engine import conn
from zeroqueue.engine import governor as governor_module
from zeroqueue.engine.governor import Governor
from zeroqueue.engine.handlers import FailurePolicy
from zeroqueue.engine.lanes import Router


def conf(brokers: list[str], topic: str | list[str], group: str, **fields: object) -> KqConf:
    return KqConf(Brokers=brokers, Group=group, Topic=topic, Offset="first", **fields)


def push(brokers: list[str], topic: str, count: int, keys: int = 50, start: int = 0) -> None:
    with Pusher(brokers, topic) as pusher:
        for i in range(start, start + count):
            pusher.push_with_key(f"user-{i % keys}", f"{i}")


class FailsFirst:
    """A handler that raises "flaky #n" on the first ``times`` tries of ``value``.

    Other tries are passed to ``recorder``; ``attempts`` counts tries per value.
    """

    def __init__(self, recorder: Recorder, value: str, times: int) -> None:
        self.recorder, self.value, self.times = recorder, value, times
        self.attempts: defaultdict[str, int] = defaultdict(int)

    def __call__(self, key: str, value: str) -> None:
        self.attempts[value] += 1
        if value == self.value and self.attempts[value] <= self.times:
            raise RuntimeError(f"flaky #{self.attempts[value]}")
        self.recorder(key, value)


def assert_key_order(by_key: dict[str, list[str]]) -> None:
    for key, values in by_key.items():
        numbers = [int(v) for v in values]
        assert numbers == sorted(numbers), f"key {key} out of order"


def test_every_keyed_message_is_handled_in_key_order_with_8_processors(
    brokers: list[str], new_topic: Callable[[int], str], group: str
) -> None:
    # given 20,000 keyed messages on 4 partitions
    topic = new_topic(4)
    push(brokers, topic, 20_000, keys=200)
    recorder = Recorder()
    # when a Queue with 8 processors consumes them
    with running(
        Queue(conf(brokers, topic, group, Processors=8), recorder, **fast_queue_options())
    ):
        assert recorder.wait_for(20_000)
    # then each was handled once, and every key saw its messages in order
    values = sorted(int(v) for _, v in recorder.seen)
    assert values == list(range(20_000))
    assert_key_order(recorder.by_key())
    assert sum(committed_offsets(brokers, group, topic).values()) == 20_000


def test_key_order_holds_when_retries_move_work_between_fetch_thread_and_workers(
    brokers: list[str], new_topic: Callable[[int], str], group: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # given probes every 0.5 s instead of 10 s, so the fetch thread takes the handling
    # over (once a probe on a worker measured the handler quick) while the retry still
    # waits out its backoff
    monkeypatch.setattr(conn, "Governor", functools.partial(Governor, run_seconds=0.5))
    # and probes that decide on 10 ms of handling in one step, well within the first
    # messages (a second step would need messages that arrive only after it)
    monkeypatch.setattr(governor_module, "PROBE_SECONDS", 0.01)
    monkeypatch.setattr(governor_module, "PROBE_MIN_WALL", 0.005)
    monkeypatch.setattr(governor_module, "PAIR_MIN_SECONDS_PER_MESSAGE", 1.0)
    # and keyed messages, with a quick handler that fails the first try of message 7
    topic = new_topic(4)
    pusher = Pusher(brokers, topic)
    for i in range(1_000):
        pusher.push_with_key(f"user-{i % 40}", f"{i}")
    pusher.flush()
    recorder = Recorder()
    handled_by: list[tuple[int, bool]] = []  # (value, on a worker thread)
    failed = threading.Event()
    tried_at: list[float] = []

    def handle(key: str, value: str) -> None:
        if value == "7":
            tried_at.append(time.monotonic())
            if not failed.is_set():
                failed.set()
                raise RuntimeError("first try")
        handled_by.append((int(value), "-processor-" in threading.current_thread().name))
        recorder(key, value)
        # 0.1 ms of computing: enough handler time for a probe to decide on quickly
        until = time.perf_counter() + 0.0001
        while time.perf_counter() < until:
            pass

    queue = Queue(
        conf(brokers, topic, group, Processors=8, ForceCommit=False),
        handle,
        error_handler=lambda message, error: None,
        retry_backoff=2.0,
        **fast_queue_options(),
    )
    with running(queue):
        # when more messages of the same keys keep arriving while message 7 waits for its
        # retry (a burst every 20 ms: probes need messages to measure, and the fetch
        # thread takes over between them)
        assert failed.wait(30)
        with pusher:
            for burst in range(1_000, 2_000, 20):
                for i in range(burst, burst + 20):
                    pusher.push_with_key(f"user-{i % 40}", f"{i}")
                pusher.flush()
                time.sleep(0.02)  # pacing the pushes: nothing to wait for
        assert recorder.wait_for(2_000)
    # then every message was handled once, message 7 before the later ones of its key,
    # its retry after the full backoff
    assert sorted(int(v) for _, v in recorder.seen) == list(range(2_000))
    assert len(tried_at) == 2
    assert tried_at[1] - tried_at[0] >= 2.0
    assert_key_order(recorder.by_key())
    assert sum(committed_offsets(brokers, group, topic).values()) == 2_000
    # and the later messages were handled by a worker (behind the retry) and by the
    # fetch thread (the other lanes, while the retry waited)
    later_on_workers = {on_worker for value, on_worker in handled_by if value >= 1_000}
    assert later_on_workers == {True, False}


def test_parallel_processors_overlap_slow_handlers(
    brokers: list[str], new_topic: Callable[[int], str], group: str
) -> None:
    # given a handler that waits 20 ms (I/O) and records how many run at once
    topic = new_topic(4)
    push(brokers, topic, 400, keys=400)
    running_now, peak = 0, 0
    lock = threading.Lock()
    recorder = Recorder()

    def handle(key: str, value: str) -> None:
        nonlocal running_now, peak
        with lock:
            running_now += 1
            peak = max(peak, running_now)
        time.sleep(0.02)
        with lock:
            running_now -= 1
        recorder(key, value)

    with running(Queue(conf(brokers, topic, group, Processors=8), handle, **fast_queue_options())):
        assert recorder.wait_for(400)
    # then several ran at once (different keys run in parallel)
    assert peak >= 4


def test_same_key_never_runs_concurrently(
    brokers: list[str], new_topic: Callable[[int], str], group: str
) -> None:
    topic = new_topic(2)
    push(brokers, topic, 600, keys=3)
    active: set[str] = set()
    overlaps: list[str] = []
    lock = threading.Lock()
    recorder = Recorder()

    def handle(key: str, value: str) -> None:
        with lock:
            if key in active:
                overlaps.append(key)
            active.add(key)
        time.sleep(0.001)
        with lock:
            active.discard(key)
        recorder(key, value)

    with running(Queue(conf(brokers, topic, group, Processors=8), handle, **fast_queue_options())):
        assert recorder.wait_for(600)
    assert overlaps == []
    assert_key_order(recorder.by_key())


def test_force_commit_false_retries_a_failing_message_without_skipping_it(
    brokers: list[str], new_topic: Callable[[int], str], group: str
) -> None:
    # given a handler that fails three times on message "2", then succeeds
    topic = new_topic(1)
    push(brokers, topic, 5, keys=1)
    failures: list[tuple[Message, BaseException]] = []
    recorder = Recorder()
    handle = FailsFirst(recorder, "2", 3)
    queue = Queue(
        conf(brokers, topic, group, ForceCommit=False),
        handle,
        error_handler=lambda message, error: failures.append((message, error)),
        retry_backoff=0.05,
        **fast_queue_options(),
    )
    with running(queue):
        assert recorder.wait_for(5)
    # then it was handled, in its place, after three reported failures
    assert [v for _, v in recorder.seen] == ["0", "1", "2", "3", "4"]
    assert handle.attempts["2"] == 4
    assert [str(e) for _, e in failures] == ["flaky #1", "flaky #2", "flaky #3"]
    assert {m.offset for m, _ in failures} == {2}
    assert committed_offsets(brokers, group, topic) == {0: 5}


def test_a_message_failing_thousands_of_times_is_retried_until_it_succeeds(
    brokers: list[str], new_topic: Callable[[int], str], group: str
) -> None:
    # given a handler that fails message "1" 1,500 times, with no pause between tries
    # (past try 1,025 the backoff's 2 ** n once overflowed a float, which killed the
    # processor and stranded the message's lane for good)
    topic = new_topic(1)
    push(brokers, topic, 3, keys=1)
    reported: list[int] = []
    recorder = Recorder()
    handle = FailsFirst(recorder, "1", 1_500)
    queue = Queue(
        conf(brokers, topic, group, ForceCommit=False),
        handle,
        error_handler=lambda message, error: reported.append(message.offset),
        retry_backoff=0.0,
        max_retry_backoff=0.0,
        **fast_queue_options(),
    )
    with running(queue):
        # when it runs
        assert recorder.wait_for(3)
        assert eventually(lambda: committed_offsets(brokers, group, topic) == {0: 3})
    # then the message was tried until it succeeded, in order, and every failure reported
    assert [v for _, v in recorder.seen] == ["0", "1", "2"]
    assert handle.attempts["1"] == 1_501
    assert reported == [1] * 1_500


def keys_off_the_lane_of(key: str, count: int, processors: int) -> list[str]:
    """``count`` keys "user-N" that this process routes to lanes other than ``key``'s."""
    router = Router(processors * conn.LANES_PER_PROCESSOR, "key", False)
    blocked = router.lane_of_key(key.encode())
    candidates = (f"user-{n}" for n in itertools.count(100))
    return list(
        itertools.islice(
            (other for other in candidates if router.lane_of_key(other.encode()) != blocked),
            count,
        )
    )


def test_force_commit_false_never_commits_past_a_message_that_keeps_failing(
    brokers: list[str], new_topic: Callable[[int], str], group: str
) -> None:
    # given three handled and committed messages
    topic = new_topic(1)
    push(brokers, topic, 3, keys=6)
    recorder = Recorder()
    failures = Recorder()

    def handle(key: str, value: str) -> None:
        if value == "3":
            raise RuntimeError("always")
        recorder(key, value)

    queue = Queue(
        conf(brokers, topic, group, ForceCommit=False),
        handle,
        error_handler=lambda message, error: failures(message.key_str, str(error)),
        retry_backoff=0.05,
        max_retry_backoff=0.05,
        shutdown_timeout=0.5,
        **fast_queue_options(),
    )
    with running(queue):
        assert recorder.wait_for(3)
        assert eventually(lambda: committed_offsets(brokers, group, topic) == {0: 3})
        # when the next message keeps failing, and two behind it have keys in other lanes
        # (a key that shared its lane would wait behind it, by design)
        with Pusher(brokers, topic) as pusher:
            pusher.push_with_key("user-3", "3")
            others = keys_off_the_lane_of("user-3", 2, queue.conf.processors)
            for value, key in enumerate(others, start=4):
                pusher.push_with_key(key, str(value))
        assert recorder.wait_for(5)
        assert failures.wait_for(3)
    # then the commit never moved past it: it will be delivered again
    assert sorted(v for _, v in recorder.seen) == ["0", "1", "2", "4", "5"]
    assert committed_offsets(brokers, group, topic) == {0: 3}


@pytest.mark.parametrize(
    "where",
    [
        pytest.param((1, 1, False), id="on-the-fetch-thread"),
        pytest.param((8, 2, False), id="on-a-worker-thread"),
        pytest.param((8, 1, True), id="on-the-event-loop"),
    ],
)
def test_a_processor_crash_stops_the_queue_and_leaves_its_messages_for_redelivery(
    brokers: list[str],
    new_topic: Callable[[int], str],
    group: str,
    monkeypatch: pytest.MonkeyPatch,
    where: tuple[int, int, bool],
) -> None:
    processors, failing_attempt, is_async = where
    # given a bug outside the handler: the failure policy raises on a given attempt,
    # and a handler that fails message "2" twice. With one processor the first
    # failure happens on the fetch thread; a retry always runs on a worker thread;
    # async handlers run on an event loop.
    real_failed = FailurePolicy.failed

    def failed_with_a_bug(
        policy: FailurePolicy, message: Message, error: BaseException, attempt: int
    ) -> float | None:
        if attempt >= failing_attempt:
            raise RuntimeError("bug in the failure policy")
        return real_failed(policy, message, error, attempt)

    monkeypatch.setattr(FailurePolicy, "failed", failed_with_a_bug)
    topic = new_topic(1)
    push(brokers, topic, 5, keys=1)
    recorder = Recorder()
    fail_twice_on_2 = FailsFirst(recorder, "2", 2)

    async def fail_twice_on_2_async(key: str, value: str) -> None:
        fail_twice_on_2(key, value)

    shutdown_timeout = 30.0
    queue = Queue(
        conf(brokers, topic, group, ForceCommit=False, Processors=processors),
        fail_twice_on_2_async if is_async else fail_twice_on_2,
        retry_backoff=0.01,
        shutdown_timeout=shutdown_timeout,
        **fast_queue_options(),
    )
    errors: list[BaseException] = []

    def start() -> None:
        try:
            queue.start()
        except BaseException as exc:
            errors.append(exc)

    # when it runs
    thread = threading.Thread(target=start)
    started = time.monotonic()
    thread.start()
    try:
        thread.join(60)
        # then it stopped by itself, without waiting shutdown_timeout for the messages
        # the crash abandoned, saying a processor crashed and why
        assert not thread.is_alive()
        assert time.monotonic() - started < shutdown_timeout
    finally:
        queue.stop()
    assert len(errors) == 1
    assert isinstance(errors[0], ConsumeError)
    assert "a processor crashed outside the handler" in str(errors[0])
    assert "bug in the failure policy" in str(errors[0])
    assert isinstance(errors[0].__cause__, RuntimeError)
    # and the commit never passed message "2" (how far below it depends on how the
    # fetched run was cut into work), so the next consumer of the group handles it again
    assert [v for _, v in recorder.seen] == ["0", "1"]
    committed = committed_offsets(brokers, group, topic)[0]
    assert committed in {OFFSET_INVALID, 2}
    resumes_at = max(committed, 0)
    monkeypatch.undo()
    again = Recorder()
    with running(Queue(conf(brokers, topic, group), again, **fast_queue_options())):
        assert again.wait_for(5 - resumes_at)
        assert eventually(lambda: committed_offsets(brokers, group, topic) == {0: 5})
    assert [v for _, v in again.seen] == [str(i) for i in range(resumes_at, 5)]


def test_a_raising_metrics_hook_is_logged_and_every_message_still_handled(
    brokers: list[str],
    new_topic: Callable[[int], str],
    group: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    # given a metrics hook that always raises
    topic = new_topic(2)
    push(brokers, topic, 200, keys=20)
    recorder = Recorder()

    def metrics(topic: str, partition: int, seconds: float, error: BaseException | None) -> None:
        raise ValueError("metrics backend down")

    # when a queue with it consumes
    queue = Queue(conf(brokers, topic, group), recorder, metrics=metrics, **fast_queue_options())
    with running(queue):
        assert recorder.wait_for(200)
        assert eventually(lambda: sum(committed_offsets(brokers, group, topic).values()) == 200)
    # then every message was handled once and committed, and each failure logged
    assert sorted(int(v) for _, v in recorder.seen) == list(range(200))
    logged = [r for r in caplog.records if r.getMessage().startswith("metrics raised on")]
    assert len(logged) == 200
    assert all(r.exc_info and isinstance(r.exc_info[1], ValueError) for r in logged)


def test_force_commit_true_reports_and_moves_on(
    brokers: list[str], new_topic: Callable[[int], str], group: str
) -> None:
    topic = new_topic(1)
    push(brokers, topic, 4, keys=1)
    failures: list[tuple[Message, BaseException]] = []
    recorder = Recorder()

    def handle(key: str, value: str) -> None:
        if value == "1":
            raise ValueError("bad order")
        recorder(key, value)

    queue = Queue(
        conf(brokers, topic, group),
        handle,
        error_handler=lambda m, e: failures.append((m, e)),
        **fast_queue_options(),
    )
    with running(queue):
        assert recorder.wait_for(3)
    assert [v for _, v in recorder.seen] == ["0", "2", "3"]
    assert [(m.offset, str(e)) for m, e in failures] == [(1, "bad order")]


def test_stop_drains_in_flight_messages_and_commits_them(
    brokers: list[str], new_topic: Callable[[int], str], group: str
) -> None:
    # given a slow handler and more messages than it gets through before stop()
    topic = new_topic(2)
    push(brokers, topic, 300, keys=300)
    recorder = Recorder()

    def handle(key: str, value: str) -> None:
        time.sleep(0.01)
        recorder(key, value)

    queue = Queue(
        conf(brokers, topic, group, Processors=4),
        handle,
        queue_capacity=40,
        **fast_queue_options(),
    )
    with running(queue):
        assert recorder.wait_for(20)
        fetched_before_stop = queue.engines[0].dispatched
    # then everything fetched was handled before stop() returned, and committed
    handled = {int(v) for _, v in recorder.seen}
    assert len(handled) == len(recorder.seen) >= fetched_before_stop
    committed = committed_offsets(brokers, group, topic)
    assert sum(max(offset, 0) for offset in committed.values()) == len(handled)
    # a new member of the group starts right after what was handled
    rest = Recorder()
    with running(Queue(conf(brokers, topic, group), rest, **fast_queue_options())):
        assert rest.wait_for(300 - len(handled))
    assert handled.isdisjoint(int(v) for _, v in rest.seen)
    assert handled | {int(v) for _, v in rest.seen} == set(range(300))


def test_two_queues_split_partitions_and_one_takes_over(
    brokers: list[str], new_topic: Callable[[int], str], group: str
) -> None:
    topic = new_topic(6)
    both = Recorder()
    seen_by: dict[str, list[str]] = {"one": [], "two": []}

    def handler(name: str) -> Callable[[str, str], None]:
        def handle(key: str, value: str) -> None:
            seen_by[name].append(value)
            both(key, value)

        return handle

    one = Queue(conf(brokers, topic, group), handler("one"), **fast_queue_options())
    two = Queue(conf(brokers, topic, group), handler("two"), **fast_queue_options())
    with running(one):
        with running(two):
            # given both members own part of the topic, without overlap
            assert eventually(
                lambda: (
                    len(one.assignment()) + len(two.assignment()) == 6
                    and bool(one.assignment())
                    and bool(two.assignment())
                )
            )
            assert set(one.assignment()).isdisjoint(two.assignment())
            push(brokers, topic, 3000, keys=300)
            assert both.wait_for_distinct(3000)
            assert seen_by["one"]
            assert seen_by["two"]
        # when the second stops, the first takes over its partitions
        assert eventually(lambda: len(one.assignment()) == 6)
        push(brokers, topic, 3000, keys=300, start=3000)
        assert both.wait_for_distinct(6000)
    # then nothing was lost
    assert {int(v) for _, v in both.seen} == set(range(6000))
    assert_key_order({k: v for k, v in both.by_key().items() if k})


def test_conns_gives_several_members_in_one_process(
    brokers: list[str], new_topic: Callable[[int], str], group: str
) -> None:
    topic = new_topic(4)
    push(brokers, topic, 1000)
    recorder = Recorder()
    queue = Queue(conf(brokers, topic, group, Conns=2), recorder, **fast_queue_options())
    with running(queue):
        assert recorder.wait_for(1000)
        # Kafka answers the first member's JoinGroup at once (Tansu holds it until the
        # second joins), so the second may get its share only after a rebalance.
        assert eventually(lambda: all(engine.assignment for engine in queue.engines))
        owned = [engine.assignment for engine in queue.engines]
    assert len(owned) == 2
    assert set(owned[0]).isdisjoint(owned[1])
    assert sorted(int(v) for _, v in recorder.seen) == list(range(1000))


def test_undecodable_messages_reach_the_error_handler(
    brokers: list[str], new_topic: Callable[[int], str], group: str
) -> None:
    topic = new_topic(1)
    with Pusher(brokers, topic) as pusher:
        pusher.push_with_key("k", "before")
        pusher.push_with_key("k", b"\xff\xfe not utf-8")
        pusher.push_with_key("k", "after")
    failures: list[tuple[Message, BaseException]] = []
    recorder = Recorder()
    queue = Queue(
        conf(brokers, topic, group),
        recorder,
        error_handler=lambda m, e: failures.append((m, e)),
        **fast_queue_options(),
    )
    with running(queue):
        assert recorder.wait_for(2)
    assert [v for _, v in recorder.seen] == ["before", "after"]
    [(message, error)] = failures
    assert isinstance(error, DecodeError)
    assert f"value of {topic}[0]@1 is not valid UTF-8" in str(error)
    assert message.value == b"\xff\xfe not utf-8"


def test_message_handlers_get_the_whole_record(
    brokers: list[str], new_topic: Callable[[int], str], group: str
) -> None:
    topic = new_topic(1)
    with Pusher(brokers, topic) as pusher:
        pusher.push_with_key(b"\x01key", b"\x00raw", headers={"trace-id": "t-1"})
    received: list[Message] = []
    got = threading.Event()

    def handle(message: Message) -> None:
        received.append(message)
        got.set()

    before = time.time()
    with running(Queue(conf(brokers, topic, group), handle, **fast_queue_options())):
        assert got.wait(30)
    [message] = received
    assert (message.topic, message.partition, message.offset) == (topic, 0, 0)
    assert (message.key, message.value) == (b"\x01key", b"\x00raw")
    assert message.header("trace-id") == b"t-1"
    assert message.timestamp is not None
    assert before - 60 < message.timestamp < time.time() + 1


def test_async_handlers_keep_key_order(
    brokers: list[str], new_topic: Callable[[int], str], group: str
) -> None:
    topic = new_topic(3)
    push(brokers, topic, 2000, keys=40)
    recorder = Recorder()
    concurrent, peak = 0, 0

    async def handle(key: str, value: str) -> None:
        nonlocal concurrent, peak
        concurrent += 1
        peak = max(peak, concurrent)
        await asyncio.sleep(0.001)
        concurrent -= 1
        recorder(key, value)

    with running(Queue(conf(brokers, topic, group, Processors=8), handle, **fast_queue_options())):
        assert recorder.wait_for(2000)
    assert sorted(int(v) for _, v in recorder.seen) == list(range(2000))
    assert_key_order(recorder.by_key())
    assert peak > 1


def test_go_queue_style_consume_objects_work(
    brokers: list[str], new_topic: Callable[[int], str], group: str
) -> None:
    topic = new_topic(1)
    push(brokers, topic, 10, keys=1)
    recorder = Recorder()

    class PaymentSuccess:
        def consume(self, key: str, value: str) -> None:
            recorder(key, value)

    with running(Queue(conf(brokers, topic, group), PaymentSuccess(), **fast_queue_options())):
        assert recorder.wait_for(10)
    assert [v for _, v in recorder.seen] == [str(i) for i in range(10)]


def test_regex_and_list_subscriptions(
    brokers: list[str], new_topic: Callable[[int], str], group: str, kafka: BrokerProcess
) -> None:
    suffix = new_topic(1)
    first, second = f"orders-a-{suffix}", f"orders-b-{suffix}"
    kafka.create_topic(first, 2)
    kafka.create_topic(second, 1)
    push(brokers, first, 30)
    push(brokers, second, 20, start=30)
    for topics in (f"^orders-.*-{suffix}$", [first, second]):
        recorder = Recorder()
        queue = Queue(
            conf(brokers, topics, f"{group}-{len(str(topics))}"), recorder, **fast_queue_options()
        )
        with running(queue):
            assert recorder.wait_for(50)
        assert sorted(int(v) for _, v in recorder.seen) == list(range(50))


def test_partition_ordering_and_metrics_hook(
    brokers: list[str], new_topic: Callable[[int], str], group: str
) -> None:
    topic = new_topic(2)
    push(brokers, topic, 200, keys=200)
    observed: list[tuple[str, int, float, BaseException | None]] = []
    recorder = Recorder()
    queue = Queue(
        conf(brokers, topic, group),
        recorder,
        ordering="partition",
        metrics=lambda t, p, seconds, error: observed.append((t, p, seconds, error)),
        **fast_queue_options(),
    )
    with running(queue):
        assert recorder.wait_for(200)
    assert len(observed) == 200
    assert {t for t, _, _, _ in observed} == {topic}
    assert all(seconds >= 0 and error is None for _, _, seconds, error in observed)


def test_a_small_buffer_bounds_messages_in_flight(
    brokers: list[str], new_topic: Callable[[int], str], group: str
) -> None:
    topic = new_topic(4)
    push(brokers, topic, 600, keys=600)
    peak = 0
    recorder = Recorder()
    queue: Queue

    def handle(key: str, value: str) -> None:
        nonlocal peak
        peak = max(peak, queue.engines[0].board.in_flight)
        time.sleep(0.002)
        recorder(key, value)

    queue = Queue(
        conf(brokers, topic, group, Processors=4), handle, queue_capacity=25, **fast_queue_options()
    )
    with running(queue):
        assert recorder.wait_for(600)
    assert 0 < peak <= 25


def test_a_broker_that_is_down_is_a_clear_error_at_start(group: str) -> None:
    address = f"127.0.0.1:{free_port()}"
    queue = Queue(
        KqConf(Brokers=[address], Group=group, Topic="t"), lambda k, v: None, connect_timeout=0.5
    )
    with pytest.raises(BrokerUnavailableError, match=rf"Brokers=\['{address}'\] .* within 0.5s"):
        queue.start()


@pytest.mark.parametrize(
    ("option", "value", "message"),
    [
        ("commit_interval", 0, "commit_interval: got 0; expected a finite number > 0"),
        ("queue_capacity", 0, "queue_capacity: got 0; expected a finite number >= 1"),
        ("session_timeout", 0.1, "session_timeout: got 0.1; expected a finite number >= 1"),
        ("retry_backoff", float("inf"), "retry_backoff: got inf; expected a finite number >= 0"),
        (
            "max_retry_backoff",
            1e10,
            "max_retry_backoff: got 10000000000.0; expected a finite number >= 0"
            f" and <= {threading.TIMEOUT_MAX} \\(threading.TIMEOUT_MAX\\)",
        ),
        (
            "session_timeout",
            5000,
            r"session_timeout: got 5000; expected a finite number >= 1"
            r" and <= 3600 \(session.timeout.ms\)",
        ),
        (
            "max_wait",
            1000,
            r"max_wait: got 1000; expected a finite number >= 0 and <= 300 \(fetch.wait.max.ms\)",
        ),
        ("ordering", "random", "ordering: got 'random'; expected 'key' or 'partition'"),
        ("error_handler", 3, "error_handler: got 3; expected a callable"),
        (
            "kafka_config",
            {"client.id": "订" * 43},
            r"kafka_config\['client.id'\]: got '订+'; expected at most 127 bytes of UTF-8",
        ),
    ],
)
def test_bad_queue_options_name_the_option(option: str, value: object, message: str) -> None:
    conf_ = KqConf(Brokers=["127.0.0.1:9092"], Group="g", Topic="t")
    # Any: the wrong types are the point, for Queue's own checks to refuse
    options: dict[str, Any] = {option: value}
    with pytest.raises(ConfigError, match=message):
        Queue(conf_, lambda k, v: None, **options)
