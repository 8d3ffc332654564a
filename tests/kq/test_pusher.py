"""Pusher and AsyncPusher against the embedded broker."""

from __future__ import annotations

import asyncio
import gc
import inspect
import logging
import threading
import time
import weakref
from collections import defaultdict
from collections.abc import Callable
from typing import Any

import pytest
from confluent_kafka import KafkaError, Producer
from confluent_kafka import Message as KafkaMessage

from tests.kafka_helpers import eventually, read_topic, unique_name
from zeroqueue import (
    AsyncPusher,
    ConfigError,
    DeliveryError,
    InvalidMessageError,
    Message,
    MessageTooLargeError,
    Pusher,
    PusherClosedError,
    PushError,
    PushTimeoutError,
    admin,
)
from zeroqueue._process import free_port
from zeroqueue.kq import pusher as pusher_module
from zeroqueue.producer import deliver as deliver_module
from zeroqueue.producer import partitions as partitions_module
from zeroqueue.producer.options import HeadersArg
from zeroqueue.testing import fnv1a_partition, murmur2_partition

# The C FastPush the Pusher uses, or None where zeroqueue.kq._fastpush is not built.
try:
    from zeroqueue.kq._fastpush import FastPush
except ImportError:
    FAST_PUSH: type[FastPush] | None = None
else:
    FAST_PUSH = FastPush

UNREACHABLE = [f"127.0.0.1:{free_port()}"]


@pytest.fixture(autouse=True, params=["c", "python"])
def hot_path(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Run every test on both hot paths: the C FastPush and the pure-Python closures."""
    if request.param == "c":
        if FAST_PUSH is None:
            pytest.skip("zeroqueue.kq._fastpush is not built (see test_fastpush.py)")
    else:
        monkeypatch.setattr(pusher_module, "_FastPush", None)
    return str(request.param)


def test_the_quick_push_is_the_one_the_hot_path_names(hot_path: str) -> None:
    # given a pusher with the common options, on this hot path
    with Pusher(UNREACHABLE, "t") as pusher:
        quick = (pusher.push, pusher.push_with_key)
        # then both pushes are the expected kind, and read like the methods
        expected = "FastPush" if hot_path == "c" else "function"
        assert [type(push).__name__ for push in quick] == [expected, expected]
        assert [push.__qualname__ for push in quick] == ["Pusher.push", "Pusher.push_with_key"]
        assert quick[1].__doc__ == Pusher.push_with_key.__doc__
        assert str(inspect.signature(quick[1])) == str(
            inspect.signature(Pusher.push_with_key)
        ).replace("self, ", "")


def test_fnv1a_reference_matches_known_sarama_values() -> None:
    # FNV-1a 32 test vectors: "" -> 0x811c9dc5, "a" -> 0xe40c292c, "foobar" -> 0xbf9cf968
    assert fnv1a_partition(b"", 1 << 30) == abs(0x811C9DC5 - (1 << 32)) % (1 << 30)
    assert fnv1a_partition(b"a", 1 << 30) == abs(0xE40C292C - (1 << 32)) % (1 << 30)
    assert fnv1a_partition(b"foobar", 1 << 30) == abs(0xBF9CF968 - (1 << 32)) % (1 << 30)


def test_ten_thousand_keyed_messages_arrive_in_key_order(
    brokers: list[str], new_topic: Callable[[int], str]
) -> None:
    topic = new_topic(4)
    with Pusher(brokers, topic) as pusher:
        for i in range(10_000):
            pusher.push_with_key(f"user-{i % 97}", f"{i}")
    records = read_topic(brokers, topic, 10_000)
    assert len(records) == 10_000
    per_key: dict[bytes, list[int]] = defaultdict(list)
    for record in records:
        per_key[record.key() or b""].append(int(record.value() or b""))
    assert sorted(v for values in per_key.values() for v in values) == list(range(10_000))
    for values in per_key.values():
        assert values == sorted(values)


def test_hash_balancer_matches_sarama_and_kafka_go(
    brokers: list[str], new_topic: Callable[[int], str]
) -> None:
    topic = new_topic(7)
    keys = [f"login_log_{i}".encode() for i in range(1000)]
    with Pusher(brokers, topic) as pusher:
        for key in keys:
            pusher.push_with_key(key, b"x")
    records = read_topic(brokers, topic, 1000)
    actual = {record.key(): record.partition() for record in records}
    assert len(actual) == 1000
    mismatched = [k for k in keys if actual[k] != fnv1a_partition(k, 7)]
    assert mismatched == []
    assert len(set(actual.values())) == 7


def test_murmur2_balancer_matches_the_java_client(
    brokers: list[str], new_topic: Callable[[int], str]
) -> None:
    topic = new_topic(7)
    keys = [f"order-{i}".encode() for i in range(300)]
    with Pusher(brokers, topic, balancer="murmur2") as pusher:
        for key in keys:
            pusher.push_with_key(key, b"x")
    actual = {r.key(): r.partition() for r in read_topic(brokers, topic, 300)}
    assert all(actual[k] == murmur2_partition(k, 7) for k in keys)


def test_python_balancers(brokers: list[str], new_topic: Callable[[int], str]) -> None:
    topic = new_topic(4)
    with Pusher(brokers, topic, balancer="round_robin") as pusher:
        for i in range(40):
            pusher.push_with_key("same-key", f"{i}")
    counts: defaultdict[int | None, int] = defaultdict(int)
    for record in read_topic(brokers, topic, 40):
        counts[record.partition()] += 1
    assert dict(counts) == {0: 10, 1: 10, 2: 10, 3: 10}

    chosen: list[tuple[bytes | None, int]] = []

    def last_partition(key: bytes | None, count: int) -> int:
        chosen.append((key, count))
        return count - 1

    topic = new_topic(3)
    with Pusher(brokers, topic, balancer=last_partition) as pusher:
        pusher.push_with_key("k", "v")
        pusher.push("no key")
    assert chosen == [(b"k", 3), (None, 3)]
    assert {r.partition() for r in read_topic(brokers, topic, 2)} == {2}

    topic = new_topic(2)
    with Pusher(brokers, topic, balancer="least_bytes") as pusher:
        for size in (100, 10, 10, 10):
            pusher.push(b"x" * size)
    assert sorted(bytes_per_partition(brokers, topic, 4)) == [30, 100]


def bytes_per_partition(brokers: list[str], topic: str, count: int) -> list[int]:
    """Read ``count`` records back; the value bytes each partition received."""
    sizes: defaultdict[int, int] = defaultdict(int)
    for record in read_topic(brokers, topic, count):
        sizes[record.partition() or 0] += len(record.value() or b"")
    return list(sizes.values())


def test_least_bytes_counts_a_push_that_waited_for_room_once(
    brokers: list[str], new_topic: Callable[[int], str]
) -> None:
    # a one-message buffer: every push but the first waits (and retries) for room
    topic = new_topic(2)
    one = {"queue.buffering.max.messages": 1}
    with Pusher(brokers, topic, balancer="least_bytes", kafka_config=one) as pusher:
        for size in (100, 10, 10, 10, 10, 10, 10, 10, 10, 10, 10):
            pusher.push(b"x" * size)
    assert sorted(bytes_per_partition(brokers, topic, 11)) == [100, 100]


def test_a_balancer_returning_a_bad_partition_is_refused(
    brokers: list[str], new_topic: Callable[[int], str]
) -> None:
    with (
        Pusher(brokers, new_topic(2), balancer=lambda key, count: 5) as pusher,
        pytest.raises(PushError, match=r"returned partition 5; topic .* has partitions 0\.\.1"),
    ):
        pusher.push("x")


def test_headers_and_bytes_round_trip(brokers: list[str], new_topic: Callable[[int], str]) -> None:
    topic = new_topic(1)
    with Pusher(brokers, topic) as pusher:
        pusher.push_with_key(b"\x00k", b"\xff\x00", headers={"trace": "abc", "n": b"\x01"})
        pusher.push_with_key("k", "v", headers=[("a", b"1"), ("a", b"2")])
    first, second = read_topic(brokers, topic, 2)
    assert (first.key(), first.value()) == (b"\x00k", b"\xff\x00")
    assert first.headers() == [("trace", b"abc"), ("n", b"\x01")]
    assert Message.from_kafka(second).header("a") == b"2"


def test_sync_push_raises_when_the_broker_is_unreachable() -> None:
    with Pusher(UNREACHABLE, "t", sync_push=True, delivery_timeout=1) as pusher:
        with pytest.raises(
            DeliveryError, match=r"was not delivered: Local: Message timed out"
        ) as info:
            pusher.push_with_key("k", "v")
        assert info.value.count == 1
        # the reason names what the client saw
        assert "Connection refused" in str(info.value)


def test_sync_push_returns_after_the_ack(
    brokers: list[str], new_topic: Callable[[int], str]
) -> None:
    topic = new_topic(1)
    with Pusher(brokers, topic, sync_push=True) as pusher:
        pusher.push("acked")
        # readable before any flush: push returned after the broker stored it
        assert read_topic(brokers, topic, 1)[0].value() == b"acked"


def test_async_failures_surface_at_flush_and_reach_the_error_handler() -> None:
    failed: list[tuple[Message, PushError]] = []
    done = threading.Event()

    def on_error(message: Message, error: PushError) -> None:
        failed.append((message, error))
        if len(failed) == 5:
            done.set()

    pusher = Pusher(UNREACHABLE, "t", delivery_timeout=1, error_handler=on_error)
    for i in range(5):
        pusher.push_with_key("k", f"v{i}")
    with pytest.raises(
        DeliveryError, match=r"^5 message\(s\) to topic 't' were not delivered"
    ) as info:
        pusher.flush()
    assert info.value.count == 5
    assert info.value.reasons == {"Local: Message timed out": 5}
    assert done.wait(5)
    assert sorted(m.value or b"" for m, _ in failed) == [f"v{i}".encode() for i in range(5)]
    assert all(isinstance(e, DeliveryError) for _, e in failed)
    # the failures were reported once: a second flush is clean
    pusher.flush()
    pusher.close()


def test_failures_reach_the_error_handler_without_a_flush() -> None:
    # A long-running producer may never flush: the background thread must serve
    # the failure reports on its own.
    failed: list[Message] = []
    all_failed = threading.Event()

    def on_error(message: Message, error: PushError) -> None:
        failed.append(message)
        if len(failed) == 3:
            all_failed.set()

    pusher = Pusher(UNREACHABLE, "t", delivery_timeout=0.5, error_handler=on_error)
    for i in range(3):
        pusher.push(f"v{i}")
    served_in_background = all_failed.wait(10)
    with pytest.raises(DeliveryError, match=r"^3 message\(s\)"):
        pusher.close()
    assert served_in_background
    assert sorted(m.value or b"" for m in failed) == [b"v0", b"v1", b"v2"]


def test_close_raises_what_failed_and_later_pushes_are_refused() -> None:
    pusher = Pusher(UNREACHABLE, "t", delivery_timeout=1)
    # held across close(), as a hot loop would
    push, push_with_key = pusher.push, pusher.push_with_key
    pusher.push("lost")
    with pytest.raises(DeliveryError, match="1 message"):
        pusher.close()
    for late_push in (pusher.push, push):
        with pytest.raises(PusherClosedError, match="pusher for topic 't' is closed"):
            late_push("again")
    with pytest.raises(PusherClosedError, match="pusher for topic 't' is closed"):
        push_with_key("k", "again")
    with pytest.raises(PusherClosedError):
        pusher.flush()
    pusher.close()  # closing twice is fine


def test_a_held_push_is_refused_during_the_final_flush_of_close(
    brokers: list[str], new_topic: Callable[[int], str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # given pushes held by a hot loop, and a close() whose final flush is under way
    topic = new_topic(1)
    pusher = Pusher(brokers, topic)
    push, push_with_key = pusher.push, pusher.push_with_key
    outcomes: list[BaseException | None] = []
    final_flush = pusher._core._wait_for_acks

    def push_during_the_final_flush(timeout: float | None = None) -> int:
        late_pushes: tuple[Callable[[], None], ...] = (
            lambda: push("late"),
            lambda: push_with_key("k", "late"),
        )
        for late_push in late_pushes:
            try:
                late_push()
                outcomes.append(None)
            except PusherClosedError as exc:
                outcomes.append(exc)
        return final_flush(timeout)

    monkeypatch.setattr(pusher._core, "_wait_for_acks", push_during_the_final_flush)
    pusher.push("kept")
    # when the pusher closes
    pusher.close()
    # then both late pushes were refused, not queued behind the flush and dropped
    assert [type(o) for o in outcomes] == [PusherClosedError, PusherClosedError]
    assert [m.value() for m in read_topic(brokers, topic, 1)] == [b"kept"]


def test_patching_push_on_the_class_reaches_every_pusher(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[object] = []
    monkeypatch.setattr(Pusher, "push", lambda self, value: calls.append(value))
    monkeypatch.setattr(Pusher, "push_with_key", lambda self, *args: calls.append(args))
    with Pusher(UNREACHABLE, "t") as pusher:
        pusher.push("v")
        pusher.push_with_key("k", "w")
    assert calls == ["v", ("k", "w")]


def test_a_subclass_overriding_push_with_key_gets_every_push() -> None:
    calls: list[tuple[str | bytes | None, str | bytes]] = []

    class Recording(Pusher):
        # The signature before push took delay/at: such subclasses keep working.
        def push_with_key(  # type: ignore[override]
            self, key: str | bytes | None, value: str | bytes, headers: HeadersArg = None
        ) -> None:
            calls.append((key, value))

    with Recording(UNREACHABLE, "t") as pusher:
        pusher.push("v")
        pusher.push_with_key("k", "w")
    assert calls == [(None, "v"), ("k", "w")]


def test_a_subclass_overriding_push_only_gets_every_push() -> None:
    values: list[str | bytes] = []

    class Recording(Pusher):
        def push(self, value: str | bytes) -> None:  # type: ignore[override]
            values.append(value)

    with Recording(UNREACHABLE, "t") as pusher:
        pusher.push("v")
    assert values == ["v"]


def test_flush_timeout_names_what_is_still_in_flight() -> None:
    dropped: list[Message] = []
    pusher = Pusher(
        UNREACHABLE, "t", delivery_timeout=30, error_handler=lambda m, e: dropped.append(m)
    )
    pusher.push("stuck")
    with pytest.raises(PushTimeoutError, match=r"1 message\(s\) .* still in flight after 0.3s"):
        pusher.flush(timeout=0.3)
    # close() does not wait the 30 s delivery timeout: it drops them and raises them
    with pytest.raises(DeliveryError, match=r"close\(\) gave up after 0.3s and dropped") as info:
        pusher.close(timeout=0.3)
    assert info.value.count == 1
    assert [m.value for m in dropped] == [b"stuck"]


def test_a_flush_that_times_out_still_raises_what_failed_and_counts_the_rest() -> None:
    # given a message that failed (1 s delivery timeout, nobody listening)
    pusher = Pusher(UNREACHABLE, "t", delivery_timeout=1)
    pusher.push("failed")
    assert eventually(lambda: pusher._core._failed == 1, timeout=10)
    # and one still in flight
    pusher.push("in flight")
    # when a flush runs out of time
    with pytest.raises(DeliveryError, match=r"1 message\(s\) .*still in flight after 0.2s") as info:
        pusher.flush(timeout=0.2)
    # then the failure is raised, and the error says how many were still in flight
    assert (info.value.count, info.value.in_flight) == (1, 1)
    # and the one in flight is raised later, once it fails: nothing is only logged
    with pytest.raises(DeliveryError, match=r"1 message\(s\)") as later:
        pusher.close()
    assert later.value.count == 1


def test_client_events_are_not_taken_for_messages_in_flight() -> None:
    # given a pusher that pushed nothing, holding events about the refused connection
    pusher = Pusher(UNREACHABLE, "t")
    assert eventually(lambda: len(pusher._core.producer) > 0, timeout=10)
    # when it flushes without waiting, then nothing is reported in flight
    pusher.flush(timeout=0)
    pusher.close(timeout=0)


def test_a_message_above_the_limit_names_size_and_limit(brokers: list[str]) -> None:
    with Pusher(brokers, "t", max_message_bytes=1000) as pusher:
        with pytest.raises(
            MessageTooLargeError, match=r"2001 bytes .* max_message_bytes=1000"
        ) as info:
            pusher.push_with_key("k", "x" * 2000)
        assert (info.value.size, info.value.limit) == (2001, 1000)
        with pytest.raises(MessageTooLargeError, match=r"2000 bytes .* max_message_bytes=1000"):
            pusher.push("x" * 2000)


@pytest.mark.builds_records
def test_a_message_the_broker_rejects_as_too_large_names_the_topics_limit(
    brokers: list[str], request: pytest.FixtureRequest
) -> None:
    # given a topic that takes at most 1,000 bytes, and a pusher allowed 1 MiB
    topic = unique_name(request, "small")
    admin.create_topic(brokers, topic, config={"max.message.bytes": "1000"})
    with Pusher(brokers, topic) as pusher:
        # when the broker refuses a 5,000-byte message (the embedded broker does not
        # enforce the limit, so its verdict is handed in as librdkafka reports it)
        record = KafkaMessage(topic=topic, partition=0, offset=-1, key=b"k", value=b"x" * 5000)
        error = pusher._core.delivery_error(KafkaError(KafkaError.MSG_SIZE_TOO_LARGE), record)
    # then the error names the size and the limit it read from the cluster
    assert isinstance(error, MessageTooLargeError)
    assert (error.size, error.limit) == (5001, 1000)  # key and value
    assert "5001 bytes" in str(error)
    assert "max.message.bytes is 1000" in str(error)


@pytest.mark.kafka_only
def test_the_broker_enforces_its_size_limit_and_the_error_names_it(
    brokers: list[str], request: pytest.FixtureRequest
) -> None:
    # given a topic that takes record batches of at most 2,000 bytes
    topic = unique_name(request, "small")
    admin.create_topic(brokers, topic, config={"max.message.bytes": "2000"})
    # when a synchronous push sends a 5,000-byte message (below max_message_bytes)
    with Pusher(brokers, topic, sync_push=True) as pusher:
        with pytest.raises(MessageTooLargeError) as sync_info:
            pusher.push_with_key("k", "x" * 5000)
        # then the broker's refusal names the size and the limit read from the cluster
        assert (sync_info.value.size, sync_info.value.limit) == (5001, 2000)
        assert "max.message.bytes is 2000" in str(sync_info.value)
        pusher.push_with_key("k", "fits")  # and the pusher goes on
    # when a batching pusher sends one too large, alone in its batch
    failures: list[BaseException] = []
    pusher = Pusher(brokers, topic, error_handler=lambda message, error: failures.append(error))
    pusher.push_with_key("k", "y" * 5000)
    # then flush() raises it as a failed delivery, and error_handler got the size error
    with pytest.raises(DeliveryError, match=r"1 message\(s\) .* not delivered") as info:
        pusher.flush(timeout=30)
    assert info.value.count == 1
    [failure] = failures
    assert isinstance(failure, MessageTooLargeError)
    assert failure.size == 5001
    assert failure.limit in (None, 2000)  # None while the limit is still being read
    pusher.push_with_key("k", "small")
    pusher.close()
    assert [r.value() for r in read_topic(brokers, topic, 2, timeout=10)] == [b"fits", b"small"]


@pytest.mark.builds_records
@pytest.mark.kafka_only
def test_a_batch_holding_a_too_large_message_fails_whole_naming_chunk_size(
    brokers: list[str], request: pytest.FixtureRequest
) -> None:
    # given a topic that takes record batches of at most 2,000 bytes
    topic = unique_name(request, "small-batch")
    admin.create_topic(brokers, topic, config={"max.message.bytes": "2000"})
    failures: list[tuple[Message, BaseException]] = []
    # when a small and a too-large message travel in one batch (a long linger makes sure)
    pusher = Pusher(
        brokers,
        topic,
        flush_interval=1.0,
        error_handler=lambda message, error: failures.append((message, error)),
    )
    pusher.push_with_key("k", "small")
    pusher.push_with_key("k", "y" * 5000)
    # then Kafka refuses the whole batch: both fail, and neither is lost silently
    with pytest.raises(DeliveryError, match=r"2 message\(s\) .* not delivered") as info:
        pusher.flush(timeout=30)
    pusher.close()
    assert info.value.count == 2
    assert eventually(lambda: admin.max_message_bytes(brokers, topic) == 2000)
    # and the small one's error says it was the batch, once the limit is known
    small = pusher._core.delivery_error(
        KafkaError(KafkaError.MSG_SIZE_TOO_LARGE), _record(topic, b"small")
    )
    assert "below the batch it travelled in; lower chunk_size" in str(small)
    assert sorted(len(message.value or b"") for message, _ in failures) == [5, 5000]


def _record(topic: str, value: bytes) -> KafkaMessage:
    return KafkaMessage(topic=topic, partition=0, offset=-1, key=b"k", value=value)


def test_values_of_the_wrong_type_are_refused(brokers: list[str]) -> None:
    with Pusher(brokers, "t") as pusher, pytest.raises(InvalidMessageError, match="value int"):
        pusher.push(12)  # type: ignore[arg-type]


def test_a_full_buffer_makes_push_wait_not_fail(
    brokers: list[str], new_topic: Callable[[int], str]
) -> None:
    topic = new_topic(1)
    tiny = {"queue.buffering.max.messages": 5}
    with Pusher(brokers, topic, kafka_config=tiny) as pusher:
        for i in range(500):
            pusher.push(f"{i}")
    assert len(read_topic(brokers, topic, 500)) == 500


def test_a_buffer_that_stays_full_times_out() -> None:
    tiny = {"queue.buffering.max.messages": 2}
    pusher = Pusher(UNREACHABLE, "t", buffer_full_timeout=0.2, kafka_config=tiny)
    pusher.push("a")
    pusher.push("b")
    with pytest.raises(PushTimeoutError, match=r"stayed full for buffer_full_timeout=0\.2s"):
        pusher.push("c")
    with pytest.raises(DeliveryError, match="dropped"):
        pusher.close(timeout=0.1)


def test_a_push_waiting_for_room_when_close_begins_is_refused(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # given a push waiting for room in a full buffer
    tiny = {"queue.buffering.max.messages": 2}
    pusher = Pusher(UNREACHABLE, "t", buffer_full_timeout=30, kafka_config=tiny)
    pusher.push("a")
    pusher.push("b")
    waiting = threading.Event()
    wait_for_room = pusher._core.wait_for_room

    def note_the_wait() -> None:
        waiting.set()
        wait_for_room()

    monkeypatch.setattr(pusher._core, "wait_for_room", note_the_wait)
    outcome: list[BaseException | None] = []

    def push_c() -> None:
        try:
            pusher.push("c")
            outcome.append(None)
        except Exception as exc:
            outcome.append(exc)

    thread = threading.Thread(target=push_c)
    thread.start()
    assert waiting.wait(10)
    # when the pusher is closed (dropping what it could not deliver)
    with pytest.raises(DeliveryError, match="dropped"):
        pusher.close(timeout=0.1)
    # then the waiting push is refused as pushed to a closed pusher, not queued
    thread.join(10)
    assert len(outcome) == 1
    assert isinstance(outcome[0], PusherClosedError)


def test_threads_can_share_a_pusher(brokers: list[str], new_topic: Callable[[int], str]) -> None:
    topic = new_topic(3)
    with Pusher(brokers, topic) as pusher:

        def push_500(n: int) -> None:
            for i in range(500):
                pusher.push_with_key(f"t{n}", f"{n}:{i}")

        threads = [threading.Thread(target=push_500, args=(n,)) for n in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    values = [r.value() for r in read_topic(brokers, topic, 4000)]
    assert len(set(values)) == 4000


def test_missing_topic_without_auto_creation_fails_with_sync_push(brokers: list[str]) -> None:
    with (
        Pusher(brokers, "does-not-exist-xyz", sync_push=True, delivery_timeout=1) as pusher,
        pytest.raises(DeliveryError, match="does-not-exist-xyz"),
    ):
        pusher.push("x")


def test_auto_topic_creation_creates_the_topic(
    brokers: list[str], request: pytest.FixtureRequest
) -> None:
    topic = unique_name(request, "auto")
    with Pusher(brokers, topic, allow_auto_topic_creation=True, sync_push=True) as pusher:
        pusher.push("created")
    assert read_topic(brokers, topic, 1)[0].value() == b"created"


@pytest.mark.parametrize(
    ("option", "value", "message"),
    [
        (
            "chunk_size",
            0,
            "chunk_size: got 0; expected a finite number >= 1 and <= 2147483647 (batch.size)",
        ),
        (
            "flush_interval",
            -1,
            "flush_interval: got -1; expected a finite number >= 0 and <= 900 (linger.ms)",
        ),
        (
            "flush_interval",
            1000,
            "flush_interval: got 1000; expected a finite number >= 0 and <= 900 (linger.ms)",
        ),
        (
            "delivery_timeout",
            float("inf"),
            "delivery_timeout: got inf; expected a finite number >= 0.001"
            " and <= 2147483.647 (message.timeout.ms)",
        ),
        (
            "max_message_bytes",
            10,
            "max_message_bytes: got 10; expected a finite number >= 1000"
            " and <= 1000000000 (message.max.bytes)",
        ),
        ("buffer_full_timeout", float("nan"), "buffer_full_timeout: got nan; expected a finite"),
        ("acks", 2, "acks: got 2; expected 'all', -1, 1 or 0"),
        ("compression", "brotli", "compression: got 'brotli'"),
        ("balancer", "sticky", "balancer: got 'sticky'; expected one of 'hash'"),
        ("username", "alice", "Password: got an empty password for Username='alice'"),
        ("ca_file", "/nope.pem", "CaFile: got '/nope.pem'; expected a readable PEM file"),
    ],
)
def test_bad_options_name_the_option(option: str, value: object, message: str) -> None:
    # Any: the wrong types are the point, for Pusher's own checks to refuse
    options: dict[str, Any] = {option: value}
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)")):
        Pusher(["127.0.0.1:9092"], "t", **options)


def test_a_flush_interval_not_below_delivery_timeout_is_refused_naming_both() -> None:
    # librdkafka would refuse it too, but naming its own linger.ms and message.timeout.ms
    with pytest.raises(
        ConfigError,
        match=r"delivery_timeout: got 100 with flush_interval=200; expected longer than",
    ):
        Pusher(["127.0.0.1:9092"], "t", flush_interval=200, delivery_timeout=100)
    with pytest.raises(ConfigError, match=r"got 0\.004 with flush_interval=0\.005"):
        Pusher(["127.0.0.1:9092"], "t", delivery_timeout=0.004)
    with Pusher(["127.0.0.1:9092"], "t", delivery_timeout=0.004, sync_push=True) as pusher:
        assert pusher.options.delivery_timeout == 0.004


def test_idempotence_needs_acks_all() -> None:
    with pytest.raises(ConfigError, match="idempotence: got True with acks=1"):
        Pusher(["127.0.0.1:9092"], "t", acks=1, idempotence=True)
    with Pusher(["127.0.0.1:9092"], "t", acks=1) as pusher:
        assert not pusher.options.idempotent


def test_async_pusher_pushes_and_flushes(
    brokers: list[str], new_topic: Callable[[int], str]
) -> None:
    topic = new_topic(2)

    async def main() -> None:
        async with AsyncPusher(brokers, topic) as pusher:
            for i in range(1000):
                await pusher.push_with_key(f"k{i % 5}", f"{i}")
            await pusher.flush()
            assert len(pusher) == 0

    asyncio.run(main())
    records = read_topic(brokers, topic, 1000)
    per_key: dict[bytes, list[int]] = defaultdict(list)
    for record in records:
        per_key[record.key() or b""].append(int(record.value() or b""))
    assert all(values == sorted(values) for values in per_key.values())
    assert sum(len(v) for v in per_key.values()) == 1000


def test_async_pusher_sync_push_and_failures() -> None:
    async def main() -> None:
        pusher = AsyncPusher(UNREACHABLE, "t", sync_push=True, delivery_timeout=1)
        with pytest.raises(DeliveryError, match="Message timed out"):
            await pusher.push("x")
        await pusher.close()

        pusher = AsyncPusher(UNREACHABLE, "t", delivery_timeout=1)
        await pusher.push("y")
        with pytest.raises(DeliveryError, match="1 message"):
            await pusher.flush()
        await pusher.close()
        with pytest.raises(PusherClosedError):
            await pusher.push("z")

    asyncio.run(main())


def test_async_sync_push_does_not_block_the_loop(
    brokers: list[str], new_topic: Callable[[int], str]
) -> None:
    topic = new_topic(1)

    async def main() -> int:
        ticks = 0

        async def ticker() -> None:
            nonlocal ticks
            while True:
                ticks += 1
                await asyncio.sleep(0.001)

        task = asyncio.create_task(ticker())
        async with AsyncPusher(brokers, topic, sync_push=True) as pusher:
            for i in range(20):
                await pusher.push(f"{i}")
        task.cancel()
        return ticks

    assert asyncio.run(main()) > 1
    assert len(read_topic(brokers, topic, 20)) == 20


def test_a_pusher_keeps_the_hot_path_it_was_built_with(
    hot_path: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # given a pusher built on one hot path, and the module switched to the other
    pusher = Pusher(UNREACHABLE, "t")
    push_with_key = pusher.push_with_key
    monkeypatch.setattr(pusher_module, "_FastPush", None if hot_path == "c" else FAST_PUSH)
    # when it closes, then the push it handed out is refused
    pusher.close()
    with pytest.raises(PusherClosedError, match="pusher for topic 't' is closed"):
        push_with_key("k", "late")


def test_a_closed_pusher_is_freed() -> None:
    # given a pusher whose quick pushes hold it (through their fallbacks)
    pusher = Pusher(UNREACHABLE, "t")
    pusher.close()
    gone = weakref.ref(pusher)
    # when the last reference goes and the garbage collector runs
    del pusher
    gc.collect()
    # then it, and the client it held, are freed
    assert gone() is None


def test_an_async_pusher_reads_metadata_off_the_event_loop(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # given a Python balancer, whose first push reads the topic's partition count, and a
    # cluster that does not answer (the read gives up after 1 s)
    monkeypatch.setattr(partitions_module, "_METADATA_TIMEOUT", 1.0)

    async def main() -> float:
        gaps: list[float] = []
        running = True

        async def tick() -> None:
            last = time.monotonic()
            while running:
                await asyncio.sleep(0.01)
                now = time.monotonic()
                gaps.append(now - last)
                last = now

        ticker = asyncio.create_task(tick())
        pusher = AsyncPusher(UNREACHABLE, "t", balancer="round_robin", delivery_timeout=1)
        # when it pushes: the read fails, and says so
        with pytest.raises(PushError, match="cannot read the partitions of topic 't'"):
            await pusher.push("v")
        running = False
        await ticker
        await pusher.close()
        return max(gaps)

    # then the event loop kept running meanwhile
    assert asyncio.run(main()) < 0.5


def test_an_async_sync_push_without_a_report_raises_push_timeout(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # given a synchronous push whose report would come after the pusher stops waiting
    monkeypatch.setattr(deliver_module, "REPORT_GRACE", -0.9)

    async def main() -> None:
        async with AsyncPusher(UNREACHABLE, "t", sync_push=True, delivery_timeout=1) as pusher:
            # then the wait ends in zeroqueue's error, not asyncio's
            with pytest.raises(PushTimeoutError, match="no delivery report for a message"):
                await pusher.push("v")

    asyncio.run(main())


def test_a_report_for_a_closed_event_loop_does_not_stop_the_reports(
    brokers: list[str], new_topic: Callable[[int], str]
) -> None:
    # given a synchronous AsyncPusher shared by two event loops (two asyncio.run calls)
    topic = new_topic(1)
    pusher = AsyncPusher(brokers, topic, sync_push=True, delivery_timeout=2.0)
    on_missing_topic = pusher._core

    async def first() -> None:
        await pusher.push("fine")
        # a push still waiting for its report when this loop ends (a request that timed
        # out): to a topic that does not exist, it fails after delivery_timeout
        loop = asyncio.get_running_loop()

        def on_delivery(error: object, message: object) -> None:
            loop.call_soon_threadsafe(lambda: None)  # raises once the loop is closed

        on_missing_topic.produce("no-such-topic-here", b"pending", on_delivery=on_delivery)

    asyncio.run(first())
    # when its report arrives after the loop closed
    assert eventually(lambda: len(on_missing_topic.producer) == 0, timeout=15)

    # then the thread that serves reports lives on: later pushes are acknowledged
    async def second() -> None:
        await asyncio.wait_for(pusher.push("again"), 10)
        await pusher.close()

    asyncio.run(second())
    assert on_missing_topic._poller.is_alive() is False  # stopped by close(), not by the error
    assert [m.value() for m in read_topic(brokers, topic, 2)] == [b"fine", b"again"]


class _ProducerWithoutClose:
    """confluent-kafka before 2.13: a Producer without close()."""

    def __init__(self, settings: dict[str, Any]) -> None:
        self._producer = Producer(settings)
        self.produce = self._producer.produce
        self.poll = self._producer.poll
        self.flush = self._producer.flush
        self.purge = self._producer.purge
        self.list_topics = self._producer.list_topics

    def __len__(self) -> int:
        return len(self._producer)


def test_a_pusher_closes_on_a_client_without_close(
    brokers: list[str], new_topic: Callable[[int], str]
) -> None:
    # given a pusher on a client as confluent-kafka 2.12 makes it (no Producer.close)
    topic = new_topic(1)
    pusher = Pusher(brokers, topic, producer_factory=_ProducerWithoutClose)
    pusher.push_with_key("k", "v")
    # then it flushes and closes without an AttributeError
    pusher.close()
    assert [m.value() for m in read_topic(brokers, topic, 1)] == [b"v"]


def test_a_refused_push_asks_the_balancer_twice_on_either_path() -> None:
    # given a Python balancer, which runs on every attempt to produce
    asked: list[bytes | None] = []

    def first_partition(key: bytes | None, partitions: int) -> int:
        asked.append(key)
        return 0

    with Pusher(UNREACHABLE, "t", balancer=first_partition) as pusher:
        pusher._core._partitions.set("t", 1, float("inf"))
        # when librdkafka refuses the value, then the full method names the error
        with pytest.raises(InvalidMessageError):
            pusher.push_with_key("k", 42)  # type: ignore[arg-type]
    # after one quick attempt and one in the full method, never more
    assert asked == [b"k", b"k"]


def test_a_client_id_librdkafka_would_cut_mid_character_is_refused() -> None:
    # 129 bytes of UTF-8: librdkafka keeps 127 bytes of a client's name, cuts the rest
    # mid-character, and confluent-kafka then raises from every poll of that client
    with pytest.raises(ConfigError, match=r"client_id: got '订+'; expected at most 127 bytes"):
        Pusher(["127.0.0.1:1"], "t", client_id="订" * 43)
    # 126 bytes, and a long ASCII id (cut, it is still text): both are fine
    for client_id in ("订" * 42, "a" * 300):
        with Pusher(["127.0.0.1:1"], "t", client_id=client_id) as pusher:
            assert pusher.options.client_id == client_id
    # the same id set as librdkafka's property is checked the same way
    with pytest.raises(ConfigError, match=r"kafka_config\['client.id'\]: got '订+'; expected"):
        Pusher(["127.0.0.1:1"], "t", kafka_config={"client.id": "订" * 43})


class _ProducerOfEvents(_ProducerWithoutClose):
    """A client whose len() also counts two client events, as a refused connection does."""

    def __len__(self) -> int:
        return len(self._producer) + 2


class _ProducerThatSkipsFlush(_ProducerWithoutClose):
    """A client whose flush() returns at once: a push got in after close()'s final flush."""

    def __init__(self, settings: dict[str, Any]) -> None:
        super().__init__(settings)
        self.flush = lambda timeout=None: 0


def test_close_warns_of_dropped_messages_only(caplog: pytest.LogCaptureFixture) -> None:
    # given a client that counts events that are not messages: nothing dropped, no warning
    caplog.set_level(logging.WARNING, logger="zeroqueue.kq.pusher")
    Pusher(UNREACHABLE, "t", producer_factory=_ProducerOfEvents).close()
    assert not _warnings_of_the_pusher(caplog)
    # given a message still queued after the final flush: dropped, raised and told
    pusher = Pusher(UNREACHABLE, "t", producer_factory=_ProducerThatSkipsFlush)
    pusher.push("late")
    with pytest.raises(DeliveryError, match=r"^1 message\(s\) to topic 't' were not delivered"):
        pusher.close()
    assert _warnings_of_the_pusher(caplog) == [
        "close() dropped 1 message(s) pushed while it was closing"
    ]


def _warnings_of_the_pusher(caplog: pytest.LogCaptureFixture) -> list[str]:
    # Not librdkafka's own lines (a refused connection), logged on zeroqueue.kafka.
    return [r.getMessage() for r in caplog.records if r.name == "zeroqueue.kq.pusher"]
