"""The Broker/Server face end to end: typed subscribers, codecs, poison messages, as a service."""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import threading
from collections.abc import Callable

import pytest
from pydantic import BaseModel

from tests.kafka_helpers import eventually, fast_queue_options, read_topic, unique_name
from zeroqueue import (
    ConfigError,
    InvalidMessageError,
    Message,
    Pusher,
    PusherClosedError,
    admin,
)
from zeroqueue.retry import RetryConf
from zeroqueue.retry import headers as h
from zeroqueue.server import Broker, Server

# Subscribers read what was published before they joined (go-queue's default is "last").
FIRST = {"Offset": "first"}


class Order(BaseModel):
    id: int
    item: str


@dataclasses.dataclass
class Shipment:
    order_id: int
    address: str


def test_a_pydantic_model_round_trips_through_publish_and_a_typed_subscriber(
    brokers: list[str], new_topic: Callable[[int], str], group: str
) -> None:
    topic = new_topic(4)
    received: list[tuple[Order, str | None, str]] = []
    server = Server(brokers, group=group, settings=FIRST, handle_signals=False)

    @server.subscriber(topic, **fast_queue_options())
    def on_order(order: Order, message: Message) -> None:
        content_type = dict(message.headers)["content-type"] or b""
        received.append((order, message.key_str, content_type.decode()))

    with server.running():
        for i in range(20):
            server.publish(topic, Order(id=i, item=f"item-{i}"), key=f"user-{i % 3}")
        server.broker.flush()
        assert eventually(lambda: len(received) == 20)
    assert sorted(order.id for order, _, _ in received) == list(range(20))
    assert all(order.item == f"item-{order.id}" for order, _, _ in received)
    assert {key for _, key, _ in received} == {"user-0", "user-1", "user-2"}
    assert {content_type for _, _, content_type in received} == {"application/json"}
    # and per key, in the order published
    for user in range(3):
        ids = [order.id for order, key, _ in received if key == f"user-{user}"]
        assert ids == sorted(ids)


def test_async_handlers_dataclasses_dicts_text_and_bytes(
    brokers: list[str], new_topic: Callable[[int], str], group: str
) -> None:
    shipments, dicts, texts, raws = new_topic(1), new_topic(1), new_topic(1), new_topic(1)
    got: dict[str, object] = {}
    server = Server(brokers, group=group, settings=FIRST, handle_signals=False)

    @server.subscriber(shipments, **fast_queue_options())
    async def on_shipment(shipment: Shipment) -> None:
        await asyncio.sleep(0)
        got["shipment"] = shipment

    @server.subscriber(dicts, **fast_queue_options())
    def on_dict(payload: dict[str, int]) -> None:
        got["dict"] = payload

    @server.subscriber(texts, **fast_queue_options())
    def on_text(text: str) -> None:
        got["text"] = text

    @server.subscriber(raws, codec="raw", **fast_queue_options())
    def on_raw(data: bytes) -> None:
        got["raw"] = data

    with server.running():
        server.publish(shipments, Shipment(7, "1 Main St"))
        server.publish(dicts, {"a": 1})
        server.publish(texts, "hello", codec="raw")
        server.publish(raws, b"\xff\x00")
        server.broker.flush()
        assert eventually(lambda: len(got) == 4)
    assert got == {
        "shipment": Shipment(7, "1 Main St"),
        "dict": {"a": 1},
        "text": "hello",
        "raw": b"\xff\x00",
    }


def test_the_content_type_header_wins_over_the_subscribers_codec(
    brokers: list[str], new_topic: Callable[[int], str], group: str
) -> None:
    topic = new_topic(1)
    received: list[object] = []
    server = Server(brokers, group=group, settings=FIRST, handle_signals=False)
    server.subscribe(topic, received.append, codec="json", **fast_queue_options())
    # (a handler without an annotation gets what the codec reads: a dict)
    with server.running():
        server.publish(topic, Order(id=1, item="tea"), codec="msgpack")
        server.broker.flush()
        assert eventually(lambda: len(received) == 1)
    assert received == [{"id": 1, "item": "tea"}]


def test_a_wrong_typed_message_lands_in_the_dead_letter_topic(
    brokers: list[str], new_topic: Callable[[int], str], group: str, request: pytest.FixtureRequest
) -> None:
    topic = new_topic(1)
    dead_letters = unique_name(request, "dlt")
    handled: list[Order] = []
    server = Server(brokers, group=group, settings=FIRST, handle_signals=False)
    retry = RetryConf(Attempts=3, Backoff="10ms", DeadLetterTopic=dead_letters)

    @server.subscriber(topic, retry=retry, **fast_queue_options())
    def on_order(order: Order) -> None:
        handled.append(order)

    with server.running():
        server.publish(topic, {"id": "seven", "item": "tea"}, key="k")
        server.publish(topic, Order(id=8, item="cake"), key="k")
        server.broker.flush()
        # then the good message after it is handled: the poison did not stop the partition
        assert eventually(lambda: [order.id for order in handled] == [8])
        [dead] = read_topic(brokers, dead_letters, 1)
    headers: dict[str, bytes] = dict(dead.headers() or [])  # type: ignore[arg-type]
    assert dead.value() == b'{"id":"seven","item":"tea"}'
    assert headers[h.EXCEPTION_FQCN] == b"zeroqueue.errors.DecodeError"
    message = headers[h.EXCEPTION_MESSAGE].decode()
    assert f"{topic}[0]@0: the value does not decode as Order with codec 'json'" in message
    assert "id" in message
    # tried once: a value that does not decode will not decode on a retry either
    assert h.decode_int(headers[h.ATTEMPTS]) == 1


def test_a_subscriber_without_a_group_or_with_a_bad_setting_is_refused(brokers: list[str]) -> None:
    server = Server(brokers, handle_signals=False)
    with pytest.raises(ConfigError, match="group: subscriber of 'orders' has none"):
        server.subscribe("orders", lambda order: None)
    with pytest.raises(ConfigError, match="Offset"):
        server.subscribe("orders", lambda order: None, group="g", settings={"Offset": "middle"})
    with pytest.raises(ConfigError, match=r"expected \(payload\) or \(payload, message\)"):
        server.subscribe("orders", lambda a, b, c: None, group="g")


def test_a_keyword_only_parameter_without_a_default_is_refused_at_subscribe(
    brokers: list[str],
) -> None:
    # (it would fail every message with a TypeError, each one retried or dead-lettered)
    server = Server(brokers, group="g", handle_signals=False)

    def on_order(order: Order, *, message: Message) -> None: ...

    with pytest.raises(ConfigError, match=r"expected \(payload\) or \(payload, message\)"):
        server.subscribe("orders", on_order)


class Recorder:
    """A handler that is an object: its annotations are on __call__."""

    def __init__(self) -> None:
        self.got: list[Order] = []

    def __call__(self, order: Order) -> None:
        self.got.append(order)


def test_callable_objects_partials_an_optional_message_and_tombstones(
    brokers: list[str], new_topic: Callable[[int], str], group: str
) -> None:
    objects, partials, optional, tombstones = (new_topic(1) for _ in range(4))
    recorder = Recorder()
    got: dict[str, list[object]] = {"partial": [], "message": [], "tombstone": []}

    def tagged(into: list[object], order: Order) -> None:
        into.append(order)

    def with_message(order: Order, message: Message | None = None) -> None:
        got["message"].append(message.offset if message is not None else None)

    def maybe(order: Order | None) -> None:
        got["tombstone"].append(order)

    server = Server(brokers, group=group, settings=FIRST, handle_signals=False)
    server.subscribe(objects, recorder, **fast_queue_options())
    server.subscribe(partials, functools.partial(tagged, got["partial"]), **fast_queue_options())
    server.subscribe(optional, with_message, **fast_queue_options())
    server.subscribe(tombstones, maybe, **fast_queue_options())
    with server.running():
        for topic in (objects, partials, optional, tombstones):
            server.publish(topic, Order(id=1, item="tea"))
        server.broker.flush()
        with Pusher(brokers, tombstones) as pusher:
            pusher.push_with_key("gone", None)  # type: ignore[arg-type]  # a tombstone
        assert eventually(
            lambda: (
                len(recorder.got) == 1
                and all(
                    len(values) == len(expected)
                    for values, expected in (
                        (got["partial"], [1]),
                        (got["message"], [0]),
                        (got["tombstone"], [1, 2]),
                    )
                )
            )
        )
    assert recorder.got == [Order(id=1, item="tea")]
    assert got["partial"] == [Order(id=1, item="tea")]
    # the Message reaches a second parameter that asks for it, default or not
    assert got["message"] == [0]
    # a tombstone is None for a payload that takes None, not a poison message (it has a key
    # and the order none, so they take two lanes: either may come first)
    assert sorted(got["tombstone"], key=lambda order: order is None) == [
        Order(id=1, item="tea"),
        None,
    ]


def test_stop_drains_and_commits_then_closes_the_broker(
    brokers: list[str], new_topic: Callable[[int], str], group: str
) -> None:
    topic = new_topic(1)
    release = threading.Event()
    started = threading.Event()
    done: list[int] = []
    server = Server(brokers, group=group, settings=FIRST, handle_signals=False)

    @server.subscriber(topic, **fast_queue_options())
    def slow(order: Order) -> None:
        started.set()
        assert release.wait(10)
        done.append(order.id)

    thread = threading.Thread(target=server.start)
    thread.start()
    try:
        server.publish(topic, Order(id=1, item="tea"))
        server.broker.flush()
        assert started.wait(30)
        # when stopped while its handler is busy
        stopper = threading.Thread(target=server.stop)
        stopper.start()
        release.set()
    finally:
        thread.join(30)
    # then the handler finished, its offset is committed, and the broker is closed
    assert not thread.is_alive()
    assert done == [1]
    assert admin.committed_offsets(brokers, group, topic) == {0: 1}
    with pytest.raises(PusherClosedError, match="closed"):
        server.publish(topic, Order(id=2, item="x"))


def test_a_value_the_codec_cannot_encode_is_refused_naming_the_topic(brokers: list[str]) -> None:
    with (
        Broker(brokers) as broker,
        pytest.raises(InvalidMessageError, match="cannot be encoded") as caught,
    ):
        broker.publish("orders", object())
    assert "orders" in str(caught.value)
