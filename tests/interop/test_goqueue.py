"""go-queue itself (Go, on kafka-go) beside zeroqueue on Apache Kafka.

The Go program in ``goqueue/`` runs go-queue v1.2.2's own ``kq.Pusher`` (with
kafka-go's ``Hash`` balancer) and ``kq`` queue. These tests check that a Go and
a Python service sharing a topic agree on where a key lives, that per-key order
survives the trip from Go to zeroqueue, and that W3C trace context crosses in
both directions through go-queue's own injection and extraction.
"""

from __future__ import annotations

import secrets
import threading
import time
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path

import pytest
from confluent_kafka import Consumer, KafkaException, TopicPartition
from confluent_kafka import Message as KafkaMessage

from tests.interop.conftest import TEST_TIMEOUT, run_go
from tests.kafka_helpers import eventually, fast_queue_options, read_topic
from tests.tracing_helpers import Traced
from zeroqueue import KqConf, Message, Pusher, Queue
from zeroqueue.delay import create_tiers

# The first test builds the Go program (go-zero and all: minutes on a cold cache).
pytestmark = pytest.mark.timeout(TEST_TIMEOUT)


@pytest.fixture
def go_topic(brokers: list[str], new_topic: Callable[[int], str]) -> Callable[[int], str]:
    """Like ``new_topic``, for go-queue's Pusher: returns once every partition takes writes.

    ``create_topic`` returns once the metadata lists the partitions, but Kafka's
    leader may still be loading them for a few hundred milliseconds and refuse
    writes with NOT_LEADER_OR_FOLLOWER. librdkafka retries those. go-queue's
    kafka.Writer writes with acks=0 (RequireNone), so Kafka drops the batch and
    closes the connection, and the Go side never learns: the messages are lost.
    """

    def make(partitions: int) -> str:
        topic = new_topic(partitions)
        wait_until_writable(brokers, topic)
        return topic

    return make


def wait_until_writable(brokers: list[str], topic: str, timeout: float = 30.0) -> None:
    """Wait until the leader of every partition of ``topic`` answers for it (ListOffsets)."""
    consumer = Consumer({"bootstrap.servers": ",".join(brokers), "group.id": "interop-probe"})
    try:
        pending = set(consumer.list_topics(topic, timeout=10).topics[topic].partitions)

        def all_answer() -> bool:
            for partition in sorted(pending):
                try:
                    consumer.get_watermark_offsets(TopicPartition(topic, partition), timeout=5)
                except KafkaException:  # NOT_LEADER_OR_FOLLOWER while the leader loads it
                    continue
                pending.discard(partition)
            return not pending

        assert eventually(all_answer, timeout), f"{topic}: partitions {sorted(pending)} not ready"
    finally:
        consumer.close()


def traceparent(trace_id: str, span_id: str) -> str:
    """A W3C ``traceparent`` header value for a sampled span."""
    return f"00-{trace_id}-{span_id}-01"


def go_push(
    binary: Path, brokers: list[str], topic: str, count: int, *flags: str
) -> list[KafkaMessage]:
    """Push ``count`` messages with go-queue's Pusher; return the records on ``topic``."""
    lines = run_go(binary, "push", "-brokers", ",".join(brokers), "-topic", topic, *flags)
    assert lines == [{"pushed": count}]
    records = read_topic(brokers, topic, count)
    # go-queue writes with acks=0: what Kafka refused is gone, and Go never knew.
    assert len(records) == count, f"go-queue pushed {count}; {topic} holds {len(records)}"
    return records


def partition_of_each_key(records: list[KafkaMessage]) -> dict[str, int]:
    """The partition each key's record was found on."""
    found: dict[str, int] = {}
    for record in records:
        key, partition = record.key(), record.partition()
        assert key is not None, f"a record without a key on partition {partition}"
        assert partition is not None
        found[key.decode()] = partition
    return found


class MessageRecorder:
    """A Queue handler taking whole Messages, which a test can wait for."""

    def __init__(self) -> None:
        self._changed = threading.Condition()
        self.seen: list[Message] = []

    def __call__(self, message: Message) -> None:
        with self._changed:
            self.seen.append(message)
            self._changed.notify_all()

    def wait_for(self, count: int, timeout: float = 60.0) -> bool:
        with self._changed:
            return self._changed.wait_for(lambda: len(self.seen) >= count, timeout)


@pytest.mark.kafka_only
def test_kafka_go_hash_and_zeroqueue_hash_put_every_key_on_the_same_partition(
    broker_kind: str,
    goqueue: Path,
    brokers: list[str],
    new_topic: Callable[[int], str],
    go_topic: Callable[[int], str],
) -> None:
    # given two topics of 7 partitions and 1,000 keys
    go_pushed, python_pushed = go_topic(7), new_topic(7)
    keys = [f"key-{i}" for i in range(1_000)]
    # when go-queue's Pusher with kafka-go's Hash balancer pushes each key once to one
    go_records = go_push(goqueue, brokers, go_pushed, 1_000, "-keys", "1000")
    # and zeroqueue's Pusher with its default balancer pushes the same keys to the other
    with Pusher(brokers, python_pushed) as pusher:
        for key in keys:
            pusher.push_with_key(key, f"{key}#0")
    # then every key sits on the same partition in both topics
    go_partition = partition_of_each_key(go_records)
    python_partition = partition_of_each_key(read_topic(brokers, python_pushed, 1_000))
    assert sorted(go_partition) == sorted(keys)
    assert sorted(python_partition) == sorted(keys)
    disagree = {
        k: (go_partition[k], python_partition[k])
        for k in keys
        if go_partition[k] != python_partition[k]
    }
    assert not disagree, f"(go, python) partitions differ for {len(disagree)} keys: {disagree}"
    # and the keys cover every partition, so a balancer that ignored the key would show
    assert set(go_partition.values()) == set(range(7))


@pytest.mark.kafka_only
def test_messages_go_queue_pushed_reach_a_zeroqueue_queue_in_key_order_with_their_trace(
    broker_kind: str,
    goqueue: Path,
    brokers: list[str],
    go_topic: Callable[[int], str],
    group: str,
) -> None:
    # given go-queue's Pusher (Hash balancer) pushing 50 keys x 20 sequence numbers,
    # from a context that carries a remote span
    topic = go_topic(7)
    parent = traceparent(secrets.token_hex(16), secrets.token_hex(8))
    go_push(goqueue, brokers, topic, 1_000, "-keys", "50", "-per-key", "20", "-traceparent", parent)
    # when a zeroqueue Queue consumes the topic with a handler taking whole Messages
    recorder = MessageRecorder()
    conf = KqConf(Brokers=brokers, Group=group, Topic=topic, Offset="first")
    with Queue(conf, recorder, **fast_queue_options()).running():
        assert recorder.wait_for(1_000), f"handled {len(recorder.seen)} of 1,000"
    # then all 1,000 arrived, each key's in the order go-queue pushed them
    assert len(recorder.seen) == 1_000
    by_key: defaultdict[str, list[str]] = defaultdict(list)
    for message in recorder.seen:
        by_key[message.key_str].append(message.value_str)
    assert by_key == {f"key-{i}": [f"key-{i}#{seq}" for seq in range(20)] for i in range(50)}
    # and each carries the traceparent go-queue injected: the caller's trace and span
    headers = {message.header("traceparent") for message in recorder.seen}
    assert headers == {parent.encode()}


@pytest.mark.kafka_only
def test_messages_zeroqueue_pushed_reach_a_go_queue_queue_with_their_trace(
    broker_kind: str,
    goqueue: Path,
    brokers: list[str],
    new_topic: Callable[[int], str],
    group: str,
) -> None:
    # given 300 keyed messages pushed by zeroqueue, each with a traceparent header of
    # one trace and a span of its own
    topic = new_topic(4)
    trace_id = secrets.token_hex(16)
    sent: dict[str, tuple[str, str]] = {}  # value -> (key, span id)
    with Pusher(brokers, topic) as pusher:
        for i in range(300):
            key, value, span_id = f"key-{i % 30}", f"value-{i}-é", f"{i + 1:016x}"
            pusher.push_with_key(
                key, value, headers=[("traceparent", traceparent(trace_id, span_id))]
            )
            sent[value] = (key, span_id)
    # when go-queue's own kq queue consumes them (Offset first, 8 consumers, 8 processors)
    lines = run_go(
        goqueue,
        "consume",
        "-brokers",
        ",".join(brokers),
        "-topic",
        topic,
        "-group",
        group,
        "-count",
        "300",
    )
    # then every message arrived once, key and value intact
    assert sorted(line["value"] for line in lines) == sorted(sent)
    assert all(line["key"] == sent[line["value"]][0] for line in lines)
    # and go-queue's extraction put each message's own span context into the handler's ctx
    assert {line["trace_id"] for line in lines} == {trace_id}
    assert all(line["span_id"] == sent[line["value"]][1] for line in lines)


@pytest.mark.kafka_only
def test_a_go_queue_consumer_sees_a_delayed_message_only_when_due(
    broker_kind: str,
    goqueue: Path,
    brokers: list[str],
    new_topic: Callable[[int], str],
    group: str,
) -> None:
    # given a topic that a zeroqueue Queue (of another group) consumes, and so releases
    topic = new_topic(2)
    create_tiers(brokers, topic)
    queue = Queue(
        KqConf(Brokers=brokers, Group=f"{group}-py", Topic=topic, Offset="first"),
        lambda message: None,
        **fast_queue_options(),
    )
    with queue.running():
        assert eventually(lambda: queue.releasing == [topic], timeout=30)
        # when zeroqueue pushes 20 messages delayed 2-3 s
        due: dict[str, float] = {}
        with Pusher(brokers, topic) as pusher:
            for index in range(20):
                delay = 2.0 + index / 19
                due[f"late-{index}"] = time.time() + delay
                pusher.push_with_key(f"key-{index}", f"late-{index}", delay=delay)
        # then go-queue's own consumer gets each once, no earlier than due
        lines = run_go(
            goqueue,
            "consume",
            "-brokers",
            ",".join(brokers),
            "-topic",
            topic,
            "-group",
            group,
            "-count",
            "20",
        )
    assert sorted(line["value"] for line in lines) == sorted(due)
    for line in lines:
        late = line["at"] - due[line["value"]]
        assert 0 <= late < 1.5, f"{line['value']}: {late:+.3f}s from due"


@pytest.mark.kafka_only
def test_a_trace_go_queue_pushed_continues_in_zeroqueues_handling_spans(  # noqa: PLR0917 - fixtures
    broker_kind: str,
    goqueue: Path,
    brokers: list[str],
    go_topic: Callable[[int], str],
    group: str,
    spans: Traced,
) -> None:
    # given go-queue's Pusher pushing from a context that carries a remote span
    topic = go_topic(2)
    trace_id, caller = secrets.token_hex(16), secrets.token_hex(8)
    go_push(
        goqueue,
        brokers,
        topic,
        20,
        "-keys",
        "4",
        "-per-key",
        "5",
        "-traceparent",
        traceparent(trace_id, caller),
    )
    # when a zeroqueue Queue with tracing on handles them
    recorder = MessageRecorder()
    conf = KqConf(Brokers=brokers, Group=group, Topic=topic, Offset="first")
    with Queue(conf, recorder, **fast_queue_options()).running():
        assert recorder.wait_for(20)
        assert eventually(lambda: len(spans.named(f"process {topic}")) == 20)
    # then each handling span is a child of the caller's span, in its trace
    for span in spans.named(f"process {topic}"):
        assert format(span.context.trace_id, "032x") == trace_id
        assert span.parent is not None
        assert format(span.parent.span_id, "016x") == caller


@pytest.mark.kafka_only
def test_a_trace_zeroqueue_pushed_reaches_go_queues_handler(  # noqa: PLR0917 - fixtures
    broker_kind: str,
    goqueue: Path,
    brokers: list[str],
    new_topic: Callable[[int], str],
    group: str,
    spans: Traced,
) -> None:
    # given zeroqueue pushing with tracing on, inside a request's span
    topic = new_topic(2)
    with Pusher(brokers, topic) as pusher, spans.tracer.start_as_current_span("request"):
        for i in range(10):
            pusher.push_with_key(f"key-{i}", f"value-{i}")
    sends = {span.context.span_id: span for span in spans.named(f"send {topic}")}
    assert len(sends) == 10
    [request] = spans.named("request")
    # when go-queue's own kq queue consumes them
    lines = run_go(
        goqueue,
        "consume",
        "-brokers",
        ",".join(brokers),
        "-topic",
        topic,
        "-group",
        group,
        "-count",
        "10",
    )
    # then go-queue's handler context holds each message's own send span, in the trace
    assert {line["trace_id"] for line in lines} == {format(request.context.trace_id, "032x")}
    assert {int(line["span_id"], 16) for line in lines} == set(sends)
