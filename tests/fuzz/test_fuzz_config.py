"""Fuzzed configuration: any value for any key or option is a clear error or works, never a crash.

Hypothesis throws wrong types, huge and negative numbers, NaN and infinities,
unicode and nested junk at KqConf's keys, the Retry section, a Pusher's and a
Queue's options, and config files (broken YAML included). The promise under
test: a :class:`ZeroQueueError` (naming what is wrong) or success; never a
TypeError, a KeyError or a crash from deeper down.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from zeroqueue import KqConf, Pusher, PusherConf, Queue, ZeroQueueError, conf
from zeroqueue.retry import RetryConf

# A fixed budget: CI runs these on every change.
BUDGET = settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
NO_BROKER = ["127.0.0.1:1"]

junk = st.recursive(
    st.one_of(
        st.none(),
        st.booleans(),
        st.integers(min_value=-(2**70), max_value=2**70),
        st.floats(allow_nan=True, allow_infinity=True),
        st.text(max_size=40),
        st.binary(max_size=20),
    ),
    lambda inner: st.one_of(
        st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=10), inner, max_size=4)
    ),
    max_leaves=8,
)
# Values near what a key takes, so examples also reach deeper checks than "not an int".
plausible = st.one_of(
    junk,
    st.sampled_from(["first", "last", "1s", "500ms", "-1s", "1e309s", "PLAIN", "127.0.0.1:9092"]),
    st.integers(min_value=-5, max_value=100_000),
    st.floats(min_value=-1e6, max_value=1e6),
)

KQ_KEYS = [
    "Name",
    "Brokers",
    "Group",
    "Topic",
    "CaFile",
    "Offset",
    "Conns",
    "Consumers",
    "Processors",
    "MinBytes",
    "MaxBytes",
    "Username",
    "Password",
    "SaslMechanism",
    "ForceCommit",
    "CommitInOrder",
    "Retry",
]
RETRY_KEYS = [
    "Attempts",
    "Backoff",
    "MaxBackoff",
    "Jitter",
    "Delays",
    "DeadLetterTopic",
    "RetryTopicPartitions",
    "MoveTimeout",
]
PUSHER_OPTIONS = [
    "chunk_size",
    "flush_interval",
    "sync_push",
    "allow_auto_topic_creation",
    "balancer",
    "acks",
    "idempotence",
    "compression",
    "max_message_bytes",
    "delivery_timeout",
    "buffer_full_timeout",
    "client_id",
    "error_handler",
    "kafka_config",
]
QUEUE_OPTIONS = [
    "commit_interval",
    "queue_capacity",
    "max_wait",
    "session_timeout",
    "error_handler",
    "metrics",
    "ordering",
    "unordered_keyless",
    "shutdown_timeout",
    "retry_backoff",
    "max_retry_backoff",
    "connect_timeout",
    "adaptive",
    "kafka_config",
]


def valid_kq() -> dict[str, Any]:
    return {"Brokers": NO_BROKER, "Group": "g", "Topic": "t"}


@BUDGET
@given(key=st.sampled_from(KQ_KEYS), value=plausible, casing=st.sampled_from(["keep", "lower"]))
def test_any_value_of_a_kqconf_key_is_a_config_error_or_loads(
    key: str, value: object, casing: str
) -> None:
    mapping = valid_kq() | {key if casing == "keep" else key.lower(): value}
    problem = ""
    try:
        loaded = KqConf.from_mapping(mapping)
    except ZeroQueueError as error:
        problem = str(error)
    if problem:
        assert key.lower() in problem.lower(), problem  # it names the key
    else:
        assert loaded.topics


@BUDGET
@given(section=st.dictionaries(st.sampled_from(RETRY_KEYS), plausible, max_size=4))
def test_any_retry_section_is_a_config_error_or_loads(section: dict[str, object]) -> None:
    try:
        retry = RetryConf(**section)
    except ZeroQueueError:
        return
    assert retry.attempts >= 1
    assert all(math.isfinite(delay) and delay > 0 for delay in retry.delays)


@BUDGET
@given(mapping=st.dictionaries(st.text(max_size=12), junk, max_size=6))
def test_a_mapping_of_any_keys_is_a_config_error_or_loads(mapping: dict[str, object]) -> None:
    with pytest.raises(ZeroQueueError):
        # no Brokers, Group and Topic among random keys (the text strategy cannot spell
        # all three): always an error, never a crash
        KqConf.from_mapping(mapping)


@BUDGET
@given(option=st.sampled_from(PUSHER_OPTIONS), value=plausible)
def test_any_pusher_option_value_is_a_config_error_or_builds(option: str, value: object) -> None:
    problem = ""
    try:
        options: dict[str, Any] = {option: value}  # deliberately any type at all
        Pusher(NO_BROKER, "t", **options).close(timeout=0)
    except ZeroQueueError as error:
        problem = str(error)
    assert not problem or option in problem, problem


@BUDGET
@given(option=st.sampled_from(QUEUE_OPTIONS), value=plausible)
def test_any_queue_option_value_is_a_config_error_or_builds(option: str, value: object) -> None:
    problem = ""
    try:
        options: dict[str, Any] = {option: value}  # deliberately any type at all
        Queue(KqConf.from_mapping(valid_kq()), lambda key, value: None, **options)
    except ZeroQueueError as error:
        problem = str(error)
    assert not problem or option in problem, problem


yaml_text = st.one_of(
    st.text(max_size=200),
    st.builds(
        lambda key, value: f"KqConsumerConf:\n  Brokers: [127.0.0.1:1]\n  {key}: {value}\n",
        st.sampled_from(KQ_KEYS),
        st.text(max_size=30),
    ),
    st.sampled_from(["KqConsumerConf: [", "{{{", "KqConsumerConf:\n\t- bad", "\x00", "- - -"]),
)


@BUDGET
@given(text=yaml_text)
def test_any_config_file_is_a_config_error_or_loads(text: str, tmp_path: Path) -> None:
    path = tmp_path / "config.yaml"
    path.write_text(text, encoding="utf-8", errors="surrogatepass")
    try:
        conf.load(str(path), KqConf, key="KqConsumerConf")
    except ZeroQueueError:
        return


@BUDGET
@given(section=st.dictionaries(st.sampled_from(["Brokers", "Topic", "Name"]), plausible))
def test_any_pusher_section_is_a_config_error_or_builds_a_pusher(
    section: dict[str, object],
) -> None:
    try:
        pusher = Pusher.from_conf(conf.from_mapping(section, PusherConf))
    except ZeroQueueError:
        return
    pusher.close(timeout=0)
