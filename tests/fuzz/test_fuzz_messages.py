"""Fuzzed messages: any key, value and headers are pushed or refused clearly, and arrive intact.

Keys, values and headers are empty, huge, binary or invalid UTF-8. A push either
succeeds or raises a :class:`ZeroQueueError`; what was pushed reaches a Message
handler byte for byte, and a ``(key, value)`` handler, which needs text, sends
what does not decode to the dead-letter topic: nothing is lost either way.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.kafka_helpers import eventually, fast_queue_options, read_topic
from zeroqueue import KqConf, Message, Pusher, Queue, ZeroQueueError, admin
from zeroqueue.retry import RetryConf

blobs = st.one_of(
    st.binary(max_size=64),
    st.text(max_size=32),
    st.sampled_from([b"", "", b"\xff\xfe\x00", b"\xc3\x28", "\u202e\U0001f600", b"x" * 100_000]),
)
headers = st.lists(st.tuples(st.text(max_size=12), st.one_of(st.none(), blobs)), max_size=4)
anything = st.one_of(blobs, st.none(), st.integers(), st.floats(), st.lists(st.integers()))


@settings(max_examples=200, deadline=None)
@given(key=anything, value=anything, pairs=st.one_of(st.none(), headers, anything))
def test_a_push_of_anything_succeeds_or_raises_a_zeroqueue_error(
    key: Any, value: Any, pairs: Any
) -> None:
    pusher = Pusher(["127.0.0.1:1"], "t", delivery_timeout=0.1)
    try:
        pusher.push_with_key(key, value, pairs)
    except ZeroQueueError:
        pass
    finally:
        with contextlib.suppress(ZeroQueueError):  # nothing is delivered: no broker listens
            pusher.close(timeout=0)


def as_bytes(data: str | bytes | None) -> bytes | None:
    return data.encode() if isinstance(data, str) else data


messages = st.lists(st.tuples(st.one_of(st.none(), blobs), blobs, headers), min_size=1, max_size=25)


@settings(
    max_examples=3, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(batch=messages)
def test_whatever_is_pushed_arrives_intact_or_in_the_dead_letter_topic(
    batch: list[tuple[str | bytes | None, str | bytes, list[tuple[str, Any]]]],
    brokers: list[str],
    new_topic: Callable[[int], str],
    group: str,
) -> None:
    topic = new_topic(3)
    dead_letters = f"{topic}.dlt"
    sent = []
    with Pusher(brokers, topic) as pusher:
        for index, (key, value, pairs) in enumerate(batch):
            pusher.push_with_key(key, value, [*pairs, ("n", str(index))])
            sent.append((as_bytes(key), as_bytes(value), index))
    # a Message handler gets every byte as pushed
    got: dict[int, tuple[bytes | None, bytes | None]] = {}
    lock = threading.Lock()

    def whole(message: Message) -> None:
        with lock:
            got[int(message.header("n") or b"-1")] = (message.key, message.value)

    conf = KqConf(Brokers=brokers, Group=group, Topic=topic, Offset="first")
    with Queue(conf, whole, **fast_queue_options()).running():
        assert eventually(lambda: len(got) == len(sent))
    assert got == {index: (key, value) for key, value, index in sent}
    # a (key, value) handler, which needs text: what does not decode is dead-lettered
    texts: list[str] = []
    retry = RetryConf(Attempts=1, DeadLetterTopic=dead_letters)
    text_conf = KqConf(
        Brokers=brokers, Group=f"{group}-text", Topic=topic, Offset="first", Retry=retry
    )
    undecodable = [
        index for key, value, index in sent if not all(_decodes(part) for part in (key, value))
    ]
    with Queue(text_conf, lambda key, value: texts.append(value), **fast_queue_options()).running():
        assert eventually(
            lambda: (
                admin.committed_offsets(brokers, f"{group}-text", topic)
                == admin.committed_offsets(brokers, group, topic)
            )
        )
    assert len(texts) == len(sent) - len(undecodable)
    if undecodable:
        dead = read_topic(brokers, dead_letters, len(undecodable))
        assert sorted(int(dict(r.headers() or [])["n"] or b"-1") for r in dead) == undecodable


def _decodes(data: bytes | None) -> bool:
    try:
        (data or b"").decode()
    except UnicodeDecodeError:
        return False
    return True
