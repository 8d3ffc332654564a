"""Handler shapes and the failure policy."""

from __future__ import annotations

import logging

import pytest
from confluent_kafka import Message as KafkaMessage

from zeroqueue import ConfigError, DecodeError, Message
from zeroqueue.engine.handlers import FailurePolicy, as_consume_error, resolve_handler


def _kv(key: str, value: str) -> None: ...


def _msg(message: Message) -> None: ...


async def _async_kv(key: str, value: str) -> None: ...


class _Consumer:
    def consume(self, key: str, value: str) -> None: ...


class _AsyncCallable:
    async def __call__(self, message: Message) -> None: ...


@pytest.mark.parametrize(
    ("handler", "is_async", "takes_message"),
    [
        (_kv, False, False),
        (_msg, False, True),
        (_async_kv, True, False),
        (_Consumer(), False, False),
        (_AsyncCallable(), True, True),
        (lambda *args: None, False, False),
    ],
)
def test_handler_shapes_are_recognised(
    handler: object, is_async: bool, takes_message: bool
) -> None:
    spec = resolve_handler(handler)
    assert spec.is_async is is_async
    assert spec.takes_message is takes_message


def test_a_handler_with_three_arguments_is_refused() -> None:
    def three(a: str, b: str, c: str) -> None: ...

    with pytest.raises(ConfigError, match=r"takes 3 required arguments; expected \(key, value\)"):
        resolve_handler(three)


def test_a_non_callable_handler_is_refused() -> None:
    with pytest.raises(ConfigError, match="expected a callable"):
        resolve_handler(42)


def test_spec_calls_with_decoded_text_or_the_whole_message() -> None:
    seen: list[object] = []
    record = KafkaMessage(topic="t", partition=1, offset=7, key=b"k", value="héllo".encode())
    resolve_handler(lambda k, v: seen.append((k, v))).call(record)
    resolve_handler(seen.append).call(record)
    assert seen[0] == ("k", "héllo")
    message = seen[1]
    assert isinstance(message, Message)
    assert (message.topic, message.partition, message.offset, message.key) == ("t", 1, 7, b"k")


def test_undecodable_value_names_the_record() -> None:
    record = KafkaMessage(topic="orders", partition=2, offset=41, key=b"k", value=b"\xff\xfe")
    with pytest.raises(DecodeError, match=r"value of orders\[2\]@41 is not valid UTF-8"):
        resolve_handler(_kv).call(record)
    try:
        b"\xff".decode()
    except UnicodeDecodeError as exc:
        translated = as_consume_error(record, exc)
    assert isinstance(translated, DecodeError)


def test_force_commit_reports_and_moves_on() -> None:
    reported: list[tuple[Message, BaseException]] = []
    policy = FailurePolicy(
        force_commit=True,
        error_handler=lambda m, e: reported.append((m, e)),
        retry_backoff=0.1,
        max_retry_backoff=1,
    )
    error = RuntimeError("boom")
    record = KafkaMessage(topic="t", partition=0, offset=3, key=b"k", value=b"v")
    assert policy.failed(Message.from_kafka(record), error, 1) is None
    assert reported[0][0].offset == 3
    assert reported[0][1] is error


def test_without_force_commit_retries_back_off_up_to_the_cap() -> None:
    policy = FailurePolicy(
        force_commit=False, error_handler=None, retry_backoff=0.5, max_retry_backoff=3
    )
    assert [policy.delay(n) for n in range(1, 6)] == [0.5, 1.0, 2.0, 3.0, 3.0]


@pytest.mark.parametrize(
    ("retry_backoff", "ceiling"), [(0.5, 30.0), (0.0, 0.0), (0.0, 5.0), (1e300, 1e308)]
)
def test_a_message_failing_thousands_of_times_keeps_a_finite_pause(
    retry_backoff: float, ceiling: float
) -> None:
    # (2 ** 1024 does not convert to a float: attempt 1026 used to raise OverflowError)
    policy = FailurePolicy(
        force_commit=False,
        error_handler=None,
        retry_backoff=retry_backoff,
        max_retry_backoff=ceiling,
    )
    expected = min(retry_backoff * 2.0**40, ceiling)
    assert [policy.delay(n) for n in (41, 1_025, 1_026, 5_000, 10**9)] == [expected] * 5


def test_a_raising_error_handler_is_logged_not_propagated(caplog: pytest.LogCaptureFixture) -> None:
    def broken(message: Message, error: BaseException) -> None:
        raise ValueError("error handler bug")

    policy = FailurePolicy(
        force_commit=True, error_handler=broken, retry_backoff=0.1, max_retry_backoff=1
    )
    record = KafkaMessage(topic="t", partition=0, offset=1, key=None, value=b"v")
    with caplog.at_level(logging.ERROR, logger="zeroqueue.engine"):
        assert policy.failed(Message.from_kafka(record), RuntimeError("x"), 1) is None
    assert "error_handler raised" in caplog.text
