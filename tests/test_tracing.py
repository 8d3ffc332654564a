"""OpenTelemetry tracing: context in headers from push to handler, spans, nothing when off."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable

import pytest
from confluent_kafka import Producer
from opentelemetry import baggage, trace

from tests.kafka_helpers import eventually, fast_queue_options, read_topic, running, unique_name
from tests.tracing_helpers import Traced
from zeroqueue import AsyncPusher, KqConf, Message, Pusher, Queue
from zeroqueue.engine.handlers import HandlerSpec
from zeroqueue.retry import RetryConf
from zeroqueue.tracing import tracing_enabled


def conf(brokers: list[str], topic: str, group: str, retry: RetryConf | None = None) -> KqConf:
    return KqConf(Brokers=brokers, Group=group, Topic=topic, Offset="first", Retry=retry)


class Seen:
    """A Message handler recording the trace context current while it runs."""

    def __init__(self, fail_first: bool = False) -> None:
        self.contexts: list[trace.SpanContext] = []
        self.fail_first = fail_first
        self.lock = threading.Lock()

    def __call__(self, message: Message) -> None:
        with self.lock:
            self.contexts.append(trace.get_current_span().get_span_context())
            if self.fail_first and len(self.contexts) == 1:
                raise ValueError("not yet")


def test_a_trace_started_before_a_push_continues_in_the_handler(
    brokers: list[str], new_topic: Callable[[int], str], group: str, spans: Traced
) -> None:
    topic = new_topic(2)
    seen = Seen()
    queue = Queue(conf(brokers, topic, group), seen, **fast_queue_options())
    with Pusher(brokers, topic) as pusher, spans.tracer.start_as_current_span("request") as request:
        pusher.push_with_key("user-1", "login")
    with running(queue):
        assert eventually(lambda: len(spans.named(f"process {topic}")) == 1)
    [send] = spans.named(f"send {topic}")
    [process] = spans.named(f"process {topic}")
    assert spans.ancestors(process) == [f"send {topic}", "request"]
    assert process.context.trace_id == request.get_span_context().trace_id
    assert process.kind is trace.SpanKind.CONSUMER
    assert send.kind is trace.SpanKind.PRODUCER
    assert process.attributes is not None
    assert process.attributes["messaging.system"] == "kafka"
    assert process.attributes["messaging.destination.name"] == topic
    assert process.attributes["messaging.consumer.group.name"] == group
    assert process.attributes["messaging.kafka.message.key"] == "user-1"
    # and the handler ran inside the consumer span
    assert seen.contexts == [process.context]


def test_a_traceparent_written_by_another_client_is_continued(
    brokers: list[str], new_topic: Callable[[int], str], group: str, spans: Traced
) -> None:
    # given a message with a W3C traceparent as a Go service (go-queue, kratos-transport)
    # writes it: text, under the header key "traceparent"
    topic = new_topic(1)
    trace_id, parent_id = "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7"
    producer = Producer({"bootstrap.servers": ",".join(brokers)})
    producer.produce(
        topic,
        b"from go",
        headers=[("traceparent", f"00-{trace_id}-{parent_id}-01".encode()), ("baggage", b"a=1")],
    )
    assert producer.flush(10) == 0
    seen = Seen()
    with running(Queue(conf(brokers, topic, group), seen, **fast_queue_options())):
        assert eventually(lambda: len(seen.contexts) == 1)
    [process] = spans.named(f"process {topic}")
    # then the handling span is its child, in its trace
    assert format(process.context.trace_id, "032x") == trace_id
    assert process.parent is not None
    assert format(process.parent.span_id, "016x") == parent_id
    assert process.parent.is_remote


def test_async_pushes_and_async_handlers_are_traced_too(
    brokers: list[str], new_topic: Callable[[int], str], group: str, spans: Traced
) -> None:
    topic = new_topic(1)
    contexts: list[trace.SpanContext] = []

    async def handle(message: Message) -> None:
        await asyncio.sleep(0)
        contexts.append(trace.get_current_span().get_span_context())

    async def push() -> None:
        async with AsyncPusher(brokers, topic) as pusher:
            await pusher.push_with_key("k", "v")

    asyncio.run(push())
    with running(Queue(conf(brokers, topic, group), handle, **fast_queue_options())):
        assert eventually(lambda: len(contexts) == 1)
    [send] = spans.named(f"send {topic}")
    [process] = spans.named(f"process {topic}")
    assert process.parent is not None
    assert process.parent.span_id == send.context.span_id
    assert contexts == [process.context]


def test_the_baggage_a_message_carries_reaches_sync_and_async_handlers(
    brokers: list[str], new_topic: Callable[[int], str], group: str, spans: Traced
) -> None:
    # given a message whose baggage says who the user is (as go-zero's propagator writes it)
    topic = new_topic(1)
    producer = Producer({"bootstrap.servers": ",".join(brokers)})
    producer.produce(
        topic,
        b"v",
        headers=[
            ("traceparent", b"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"),
            ("baggage", b"user=alice"),
        ],
    )
    assert producer.flush(10) == 0
    users: dict[str, str | None] = {}

    def handle(message: Message) -> None:
        users["sync"] = baggage.get_baggage("user")  # type: ignore[assignment]

    async def handle_async(message: Message) -> None:
        await asyncio.sleep(0)
        users["async"] = baggage.get_baggage("user")  # type: ignore[assignment]

    # when a sync and an async handler (groups of their own) handle it
    one = Queue(conf(brokers, topic, group), handle, **fast_queue_options())
    two = Queue(conf(brokers, topic, f"{group}-async"), handle_async, **fast_queue_options())
    with running(one), running(two):
        assert eventually(lambda: len(users) == 2)
    # then both see it in their context
    assert users == {"sync": "alice", "async": "alice"}


def test_a_retried_message_stays_in_its_trace_and_the_failure_is_recorded(
    brokers: list[str],
    new_topic: Callable[[int], str],
    group: str,
    spans: Traced,
    request: pytest.FixtureRequest,
) -> None:
    topic = new_topic(1)
    retry = RetryConf(Attempts=1, Delays=["100ms"], DeadLetterTopic=unique_name(request, "dlt"))
    seen = Seen(fail_first=True)
    with Pusher(brokers, topic) as pusher:
        pusher.push_with_key("k", "v")
    with running(Queue(conf(brokers, topic, group, retry), seen, **fast_queue_options())):
        assert eventually(lambda: len(seen.contexts) == 2)
    [send] = spans.named(f"send {topic}")
    [failed] = spans.named(f"process {topic}")
    retry_topic = f"{topic}.{group}.retry-100ms"
    [moved] = spans.named(f"send {retry_topic}")
    assert eventually(lambda: len(spans.named(f"process {retry_topic}")) == 1)
    [retried] = spans.named(f"process {retry_topic}")
    assert failed.status.status_code is trace.StatusCode.ERROR
    assert [event.name for event in failed.events] == ["exception"]
    assert {span.context.trace_id for span in (failed, moved, retried)} == {send.context.trace_id}
    assert spans.ancestors(retried)[:2] == [f"send {retry_topic}", f"send {topic}"]
    assert retried.attributes is not None
    assert retried.attributes["zeroqueue.attempt"] == 2


def test_without_an_sdk_nothing_is_added_to_a_push_or_a_handling(
    brokers: list[str], new_topic: Callable[[int], str], group: str
) -> None:
    # no tracer provider set: OpenTelemetry's API alone records nothing
    assert not tracing_enabled()
    topic = new_topic(1)
    with Pusher(brokers, topic) as pusher:
        # the quick push is bound, as without the tracing extra
        assert pusher.push_with_key is not Pusher.push_with_key.__get__(pusher)
        pusher.push_with_key("k", "v")
    [record] = read_topic(brokers, topic, 1)
    assert record.headers() is None
    queue = Queue(conf(brokers, topic, group), lambda key, value: None)
    assert type(queue.handler) is HandlerSpec
