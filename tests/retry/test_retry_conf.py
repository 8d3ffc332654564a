"""The Retry section refuses what it cannot honour: unknown keys, delays naming one topic twice."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from zeroqueue import ConfigError, KqConf
from zeroqueue.conf import Conf, LogConf, load
from zeroqueue.retry import RetryConf

_ALLOWED = (
    "Attempts, Backoff, MaxBackoff, Jitter, Delays, DeadLetterTopic, RetryTopicPartitions,"
    " MoveTimeout"
)


def _kq(retry: dict[str, Any]) -> KqConf:
    return KqConf.from_mapping(
        {"Brokers": ["b:1"], "Group": "g", "Topic": "orders", "Retry": retry}
    )


@pytest.mark.parametrize("key", ["DeadLetter", "DeadLetterQueue", "DLT"])
def test_an_unknown_key_in_the_retry_section_is_refused_naming_the_allowed_keys(key: str) -> None:
    # given a Retry section whose dead-letter topic is under a key zeroqueue does not know
    # (go-zero would ignore it: no dead-letter topic, failed messages skipped)
    # when it is loaded, in a KqConf or built in code
    # then both refuse it, naming the key and every key the section takes
    with pytest.raises(ConfigError) as in_kqconf:
        _kq({"Attempts": 1, key: "orders.dlt"})
    with pytest.raises(ConfigError) as in_code:
        RetryConf(**{"Attempts": 1, key: "orders.dlt"})
    for refused in (in_kqconf, in_code):
        assert f"{key}: unknown key" in str(refused.value)
        assert f"Retry takes only {_ALLOWED}" in str(refused.value)
    assert str(in_kqconf.value).startswith("KqConf.Retry: ")
    assert str(in_code.value).startswith("RetryConf: ")


def test_a_retry_section_in_a_file_is_strict_while_the_rest_keeps_go_zeros_rules(
    tmp_path: Path,
) -> None:
    # given a service config: a KqConf with a Retry section, a log section, and keys for a Go
    # service that zeroqueue does not declare
    class Config(Conf):
        log: LogConf
        queue: KqConf

    path = tmp_path / "config.yaml"
    path.write_text(
        "GoOnly: 1\n"
        "Log:\n  Level: error\n  GoOnly: 2\n"
        "Queue:\n  Brokers: [b:1]\n  Group: g\n  Topic: orders\n  GoOnly: 3\n"
        "  Retry:\n    Attempts: 2\n    DeadLetterTopic: orders.dlt\n"
    )
    # then the undeclared keys outside Retry are ignored, as go-zero does
    loaded = load(path, Config)
    assert loaded.queue.retry is not None
    assert loaded.queue.retry.dead_letter_topic == "orders.dlt"
    # and one inside Retry is refused, with its path in the file
    path.write_text(
        "Queue:\n  Brokers: [b:1]\n  Group: g\n  Topic: orders\n"
        "  Retry:\n    Attempts: 2\n    DeadLetterQueue: orders.dlt\n"
    )
    with pytest.raises(ConfigError, match=r"config.yaml: Queue.Retry: .*DeadLetterQueue: unknown"):
        load(path, Config)


def test_a_retry_section_still_matches_keys_in_any_case() -> None:
    conf = _kq({"attempts": 2, "dead_letter_topic": "d", "MOVETIMEOUT": "5s"})
    assert conf.retry is not None
    assert (conf.retry.attempts, conf.retry.dead_letter_topic, conf.retry.move_timeout) == (
        2,
        "d",
        5.0,
    )


@pytest.mark.parametrize(
    ("delays", "message"),
    [
        (["10s", "10s"], r"Delays: 10s is there twice \(its retry topic is \.\.\.retry-10s\)"),
        (["1m", "60s"], r"Delays: 60s is there twice \(its retry topic is \.\.\.retry-1m\)"),
        (["100us"], r"Delays: got 0.0001s; expected 1ms or longer"),
        (["1.5ms"], r"Delays: got 0.0015s; expected whole milliseconds"),
    ],
)
def test_delays_that_would_name_one_retry_topic_twice_are_refused(
    delays: list[str], message: str
) -> None:
    with pytest.raises(ConfigError, match=message):
        _kq({"Delays": delays})
    with pytest.raises(ConfigError, match=message):
        RetryConf(Delays=delays)


def test_distinct_delays_in_any_unit_are_accepted() -> None:
    conf = RetryConf(Delays=["500ms", "1s", "90s", "1m", "1h"])
    assert conf.delays == [0.5, 1.0, 90.0, 60.0, 3600.0]


@pytest.mark.parametrize("timeout", ["0s", "-1s"])
def test_a_move_timeout_must_be_positive(timeout: str) -> None:
    with pytest.raises(ConfigError, match="MoveTimeout"):
        _kq({"MoveTimeout": timeout})
