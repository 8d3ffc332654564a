"""RetryConf, retry topic names, headers, and the RetryRouter's decisions (no broker)."""

from __future__ import annotations

import asyncio
import re
from typing import Any

import pytest
from confluent_kafka import Message as KafkaMessage

from zeroqueue import ConfigError, DecodeError, KqConf, Message, PushError
from zeroqueue.kq._failures import FailureHooks
from zeroqueue.producer.options import PushOptions
from zeroqueue.retry import DeadLetter, RetryConf, RetryLater, retry_topic_name
from zeroqueue.retry import headers as h
from zeroqueue.retry._moved import MOVE_HEADROOM
from zeroqueue.retry._router import RetryRouter


def test_a_retry_section_loads_from_go_zero_keys() -> None:
    conf = KqConf.from_mapping(
        {
            "Brokers": ["b:1"],
            "Group": "billing",
            "Topic": "orders",
            "Retry": {
                "Attempts": 2,
                "backoff": "250ms",
                "Delays": ["10s", "1m"],
                "DeadLetterTopic": "orders.dlt",
            },
        }
    )
    assert conf.retry is not None
    assert (conf.retry.attempts, conf.retry.backoff) == (2, 0.25)
    assert conf.retry.delays == [10.0, 60.0]
    assert conf.retry.dead_letter_topic == "orders.dlt"


@pytest.mark.parametrize(
    ("section", "message"),
    [
        ({"Atempts": 2}, r"unknown key; did you mean 'Attempts'"),
        ({"Delays": ["soon"]}, r"Retry.Delays\[0\]: got 'soon'; expected a duration"),
        ({"Delays": ["0s"]}, "every delay must be longer than 0"),
        ({"Backoff": "2s", "MaxBackoff": "1s"}, "MaxBackoff=1.0s is shorter than Backoff=2.0s"),
        ({"Attempts": 0}, r"Retry.Attempts: got 0; expected greater than or equal to 1"),
    ],
)
def test_a_bad_retry_section_names_the_key(section: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        KqConf.from_mapping({"Brokers": ["b:1"], "Group": "g", "Topic": "t", "Retry": section})


def test_retry_topics_are_named_after_the_topic_the_group_and_the_delay() -> None:
    assert retry_topic_name("orders", "billing", 10) == "orders.billing.retry-10s"
    assert retry_topic_name("orders", "billing", 60) == "orders.billing.retry-1m"
    assert retry_topic_name("orders", "billing", 0.5) == "orders.billing.retry-500ms"
    # a group name Kafka would not take in a topic name is made safe, and marked with a digest
    assert re.fullmatch(
        r"orders\.team_a_b-[0-9a-f]{8}\.retry-1h", retry_topic_name("orders", "team a/b", 3600)
    )


def test_groups_whose_names_differ_only_where_a_topic_name_cannot_get_topics_of_their_own() -> None:
    groups = ["my team", "my_team", "my.team", "my/team"]
    assert len({retry_topic_name("orders", group, 10) for group in groups}) == len(groups)
    # and the dot between topic and group cannot be shifted from one to the other
    assert retry_topic_name("a.b", "c", 10) != retry_topic_name("a", "b.c", 10)


def test_a_retry_topic_name_past_kafkas_limit_is_refused_when_the_queue_is_built() -> None:
    conf = RetryConf(Delays=[10])
    with pytest.raises(ConfigError, match=r"Retry.Delays: retry topic 'o+\.g\.retry-10s' is 250"):
        RetryRouter(
            conf,
            brokers=["127.0.0.1:1"],
            source_topics=["o" * 238],
            group="g",
            force_commit=True,
            report=lambda message, error, outcome: None,
            push_options=PushOptions(sync_push=True),
        )


@pytest.mark.parametrize("topic", ["orders dlt", "orders/dlt", "d" * 250])
def test_a_dead_letter_topic_kafka_would_refuse_is_refused_with_the_config(topic: str) -> None:
    with pytest.raises(ConfigError, match=r"DeadLetterTopic: got '.+'; expected a topic name"):
        RetryConf(DeadLetterTopic=topic)


def test_an_attempt_count_spring_wrote_in_one_byte_counts() -> None:
    record = KafkaMessage(topic="orders.g.retry-10s", value=b"v", headers=[(h.ATTEMPTS, b"\x02")])
    assert Message.from_kafka(record).attempt == 1 + 2


def test_headers_are_spring_kafkas_binary_numbers() -> None:
    assert h.encode_int(3) == b"\x00\x00\x00\x03"
    assert h.decode_int(h.encode_int(-2)) == -2
    assert h.decode_int(h.encode_long(1_700_000_000_000)) == 1_700_000_000_000
    assert h.decode_int(b"12") == 12
    assert h.decode_int(None) is None
    assert h.ORIGINAL_TOPIC == "kafka_dlt-original-topic"
    assert h.ATTEMPTS == "retry_topic-attempts"


class _Router(RetryRouter):
    """A RetryRouter that records its moves instead of pushing them."""

    def __init__(self, conf: RetryConf, *, force_commit: bool = True) -> None:
        self.reports: list[tuple[str, str]] = []
        super().__init__(
            conf,
            brokers=["127.0.0.1:1"],
            source_topics=["orders"],
            group="g",
            force_commit=force_commit,
            report=lambda message, error, outcome: self.reports.append((str(error), outcome)),
            push_options=PushOptions(sync_push=True),
        )
        self.moves: list[tuple[str, dict[str, bytes]]] = []

    def _push(self, topic: str, message: Message, headers: list[tuple[str, bytes]]) -> None:
        self.moves.append((topic, dict(headers)))


def message(topic: str = "orders", attempts: int | None = None) -> Message:
    headers = () if attempts is None else ((h.ATTEMPTS, h.encode_int(attempts)),)
    return Message(topic, 1, 7, b"k", b"v", headers, 1_700_000_000.0)


@pytest.fixture
def router() -> _Router:
    conf = RetryConf(Attempts=3, Backoff=1, Jitter=0, Delays=[10, 60], DeadLetterTopic="dlt")
    return _Router(conf)


def test_attempts_in_place_then_each_tier_then_the_dead_letter_topic(router: _Router) -> None:
    error = ValueError("down")
    # in place, the pause doubling
    assert router.failed(message(), error, 1) == 1.0
    assert router.failed(message(), error, 2) == 2.0
    # then to the first retry topic, counted handled (None: commit)
    assert router.failed(message(), error, 3) is None
    topic, headers = router.moves[-1]
    assert topic == "orders.g.retry-10s"
    assert h.decode_int(headers[h.ATTEMPTS]) == 3
    assert headers[h.ORIGINAL_TOPIC] == b"orders"
    assert h.decode_int(headers[h.ORIGINAL_OFFSET]) == 7
    assert h.BACKOFF_TIMESTAMP in headers
    # from the first tier (one try there) to the second, then to the dead-letter topic
    assert router.failed(message("orders.g.retry-10s", 3), error, 1) is None
    assert router.moves[-1][0] == "orders.g.retry-1m"
    assert router.failed(message("orders.g.retry-1m", 4), error, 1) is None
    topic, headers = router.moves[-1]
    assert topic == "dlt"
    assert h.decode_int(headers[h.ATTEMPTS]) == 5
    assert headers[h.EXCEPTION_FQCN] == b"builtins.ValueError"
    assert headers[h.EXCEPTION_MESSAGE] == b"down"
    assert h.BACKOFF_TIMESTAMP not in headers
    assert [outcome for _, outcome in router.reports] == [
        "retrying",
        "retrying",
        "retry-topic",
        "retry-topic",
        "dead-lettered",
    ]


def test_a_poison_message_and_a_dead_letter_request_skip_the_retries(router: _Router) -> None:
    assert router.failed(message(), DecodeError("not UTF-8"), 1) is None
    assert router.failed(message(), DeadLetter("never valid"), 1) is None
    assert [topic for topic, _ in router.moves] == ["dlt", "dlt"]


def test_retry_later_goes_to_the_first_tier_long_enough(router: _Router) -> None:
    assert router.failed(message(), RetryLater(30), 1) is None
    assert router.moves[-1][0] == "orders.g.retry-1m"
    # longer than any tier: the longest
    assert router.failed(message(), RetryLater(3600), 1) is None
    assert router.moves[-1][0] == "orders.g.retry-1m"


def test_without_topics_retry_later_waits_in_place_and_the_rest_follows_force_commit() -> None:
    in_place = _Router(RetryConf(Attempts=2, Backoff=1, Jitter=0), force_commit=False)
    assert in_place.failed(message(), RetryLater(5), 1) == 5.0
    assert in_place.failed(message(), ValueError("x"), 2) == 30.0  # keeps trying, max backoff
    skipping = _Router(RetryConf(Attempts=2, Backoff=1, Jitter=0), force_commit=True)
    assert skipping.failed(message(), ValueError("x"), 2) is None
    assert in_place.moves == skipping.moves == []


def test_a_move_that_fails_commits_nothing_and_tries_again() -> None:
    class Failing(_Router):
        def _push(self, topic: str, message: Message, headers: list[tuple[str, bytes]]) -> None:

            raise PushError("broker down")

    router = Failing(RetryConf(Attempts=1, DeadLetterTopic="dlt", MaxBackoff=5))
    assert router.failed(message(), ValueError("x"), 1) == 5.0
    assert router.reports[-1][1] == "move-failed"


def test_jitter_varies_the_pause_within_its_share() -> None:
    router = _Router(RetryConf(Attempts=5, Backoff=1, Jitter=0.5))
    pauses = {router.failed(message(), ValueError("x"), 1) for _ in range(50)}
    assert len(pauses) > 1
    assert all(p is not None and 0.5 <= p <= 1.5 for p in pauses)


# -- ForceCommit false, RetryLater without retry topics ----------------------------------


def test_force_commit_false_never_skips_a_poison_message_or_a_dead_letter_request() -> None:
    # given tries in place but no dead-letter topic, and ForceCommit false
    router = _Router(RetryConf(Attempts=3, Backoff=1, MaxBackoff=4, Jitter=0), force_commit=False)
    # then a message that cannot be decoded, or that its handler gives up on, is not
    # counted handled: it is tried again, the pause doubling up to MaxBackoff
    for error in (DecodeError("not UTF-8"), DeadLetter("never valid")):
        assert [router.failed(message(), error, n) for n in (1, 2, 3, 4)] == [1.0, 2.0, 4.0, 4.0]
    assert {outcome for _, outcome in router.reports} == {"retrying"}
    assert router.moves == []
    # while under ForceCommit true they are skipped
    skipping = _Router(RetryConf(Attempts=3), force_commit=True)
    assert skipping.failed(message(), DecodeError("not UTF-8"), 1) is None
    assert skipping.reports[-1][1] == "skipped"


def test_retry_later_without_retry_topics_counts_as_an_attempt() -> None:
    conf = RetryConf(Attempts=3, DeadLetterTopic="dlt")
    router = _Router(conf)
    # it waits in place as asked while tries are left
    assert router.failed(message(), RetryLater(5), 1) == 5.0
    assert router.failed(message(), RetryLater(5), 2) == 5.0
    # then the third is the last: to the dead-letter topic
    assert router.failed(message(), RetryLater(5), 3) is None
    topic, headers = router.moves[-1]
    assert topic == "dlt"
    assert h.decode_int(headers[h.ATTEMPTS]) == 3
    assert [outcome for _, outcome in router.reports] == ["retrying", "retrying", "dead-lettered"]
    # without a dead-letter topic ForceCommit decides: true skips, false waits again
    assert (
        _Router(RetryConf(Attempts=3), force_commit=True).failed(message(), RetryLater(5), 3)
        is None
    )
    assert (
        _Router(RetryConf(Attempts=3), force_commit=False).failed(message(), RetryLater(5), 3)
        == 5.0
    )


def test_retry_later_in_the_last_retry_topic_is_dead_lettered(router: _Router) -> None:
    assert router.failed(message("orders.g.retry-1m", 4), RetryLater(5), 1) is None
    assert router.moves[-1][0] == "dlt"


# -- the awaitable path ----------------------------------------------------------------------


class _AsyncRouter(_Router):
    """Records awaited moves apart from blocking ones."""

    def __init__(self, conf: RetryConf, *, fail: bool = False) -> None:
        super().__init__(conf)
        self.awaited: list[str] = []
        self._fail = fail

    async def _push_async(
        self, topic: str, message: Message, headers: list[tuple[str, bytes]]
    ) -> None:
        await asyncio.sleep(0)
        if self._fail:
            raise PushError("broker down")
        self.awaited.append(topic)


def test_failed_async_decides_as_failed_does_and_awaits_its_moves() -> None:
    conf = RetryConf(Attempts=2, Backoff=1, Jitter=0, Delays=[10], DeadLetterTopic="dlt")
    router = _AsyncRouter(conf)

    async def fail(topic: str, error: BaseException, attempt: int) -> float | None:
        return await router.failed_async(message(topic), error, attempt)

    assert asyncio.run(fail("orders", ValueError("x"), 1)) == 1.0
    assert asyncio.run(fail("orders", ValueError("x"), 2)) is None
    assert asyncio.run(fail("orders.g.retry-10s", ValueError("x"), 1)) is None
    assert asyncio.run(fail("orders", DecodeError("x"), 1)) is None
    assert router.awaited == ["orders.g.retry-10s", "dlt", "dlt"]
    assert router.moves == []  # nothing went the blocking way
    assert [outcome for _, outcome in router.reports] == [
        "retrying",
        "retry-topic",
        "dead-lettered",
        "dead-lettered",
    ]
    # and a move that fails commits nothing: tried again after MaxBackoff
    failing = _AsyncRouter(RetryConf(Attempts=1, DeadLetterTopic="dlt", MaxBackoff=5), fail=True)
    assert asyncio.run(failing.failed_async(message(), ValueError("x"), 1)) == 5.0
    assert failing.reports[-1][1] == "move-failed"


# -- sizes -------------------------------------------------------------------------------------


class _KnownLimit(RetryRouter):
    """A RetryRouter whose source topics' max.message.bytes is given, not asked for."""

    def __init__(self, conf: RetryConf, limit: int | None, reports: list[str]) -> None:
        super().__init__(
            conf,
            brokers=["127.0.0.1:1"],
            source_topics=["orders"],
            group="billing",
            force_commit=True,
            report=lambda message, error, outcome: reports.append(outcome),
            push_options=PushOptions(sync_push=True),
        )
        self._limit = limit

    def source_size_limit(self) -> int | None:
        return self._limit


def test_moves_may_be_as_large_as_the_source_topic_allows_plus_their_headers() -> None:
    conf = RetryConf(DeadLetterTopic="dlt")
    kafka = _KnownLimit(conf, 1_048_588, [])
    headroom = MOVE_HEADROOM + len("billing")
    assert kafka.headroom == headroom
    assert kafka.move_size_limit() == 1_048_588 + headroom
    assert kafka.retry_topic_config() == {"max.message.bytes": str(1_048_588 + headroom)}
    # a cluster that does not say (the embedded broker): a default Pusher's limit
    unknown = _KnownLimit(conf, None, [])
    assert unknown.move_size_limit() == 1024 * 1024 + headroom
    assert unknown.retry_topic_config() == {}


def test_a_move_too_large_names_the_size_of_its_headers(caplog: pytest.LogCaptureFixture) -> None:
    # given source topics that take 10,000 bytes, and a message larger than they allow
    reports: list[str] = []
    conf = RetryConf(Attempts=1, DeadLetterTopic="dlt", MaxBackoff=2)
    router = _KnownLimit(conf, 10_000, reports)
    big = Message("orders", 0, 9, b"k", b"v" * 30_000, (("trace", b"t" * 100),), 1e9)
    try:
        # when it fails and is moved
        assert router.failed(big, ValueError("x"), 1) == 2.0
    finally:
        router.close()
    # then the move failed, and says how large key and value, and headers, were
    assert reports == ["move-failed"]
    [line] = [r.getMessage() for r in caplog.records if r.name == "zeroqueue.retry"]
    assert "key and value 30001, headers " in line
    assert "of which the retry headers " in line
    assert f"more than the retry producer takes ({10_000 + router.headroom} bytes" in line


# -- what the metrics hook hears -----------------------------------------------------------------


def test_a_five_parameter_metrics_hook_hears_each_messages_fate() -> None:
    heard: list[str] = []

    def metrics(topic: str, partition: int, seconds: float, error: Any, outcome: str) -> None:
        heard.append(outcome)

    hooks = FailureHooks(None, metrics)
    observe = hooks.metrics_hook()
    assert observe is not None
    m = message()
    # without a RetryRouter (no Retry section), a message done with an error was skipped
    observe("orders", 0, 0.1, ValueError("x"))
    # with one, what it said last
    hooks.report(m, ValueError("x"), "retrying")
    hooks.report(m, ValueError("x"), "dead-lettered")
    observe("orders", 0, 0.1, ValueError("x"))
    observe("orders", 0, 0.1, None)
    # and a later message never hears an earlier one's fate
    observe("orders", 0, 0.1, ValueError("y"))
    assert heard == ["skipped", "dead-lettered", "handled", "skipped"]
