"""zeroqueue.conf loads a service's own config model with go-zero's rules."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Annotated, Literal

import pytest
from pydantic import Field

from zeroqueue import ConfigError, KqConf, PusherConf
from zeroqueue.conf import Conf, Duration, RestConf, ServiceConf, from_mapping, load

# go-zero's login-log tutorial (shared/reference), one file for the whole service.
TUTORIAL = """\
Name: user-api
Host: 0.0.0.0
Port: 8888
MysqlConfig:
  DataSource: root:secret@tcp(127.0.0.1:3306)/user
Auth:
  AccessSecret: abc
  AccessExpire: 86400
RedisConfig:
  Host: 127.0.0.1:6379
  Type: node
KqPusherConf:
  Name: log-producer
  Brokers:
    - 127.0.0.1:9094
  Topic: login-log
  Group: login-log-group
KqConsumerConf:
  Name: log-consumer
  Brokers:
    - 127.0.0.1:9094
  Group: login-login-group
  Topic: login-log
"""


class Config(RestConf):
    """The tutorial's Config: it embeds RestConf and declares the two kq sections."""

    kq_pusher_conf: PusherConf
    kq_consumer_conf: KqConf


class Limits(Conf):
    retries: Annotated[int, Field(ge=0, le=10)] = 3
    timeout: Duration = 1.0
    mode: Literal["fast", "safe"] = "safe"
    note: str | None = None


class Service(Conf):
    limits: Limits = Field(default_factory=Limits)
    shards: list[Limits] = Field(default_factory=list)
    endpoints: list[str] = Field(default_factory=list)


def write(tmp_path: Path, text: str, name: str = "config.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_the_tutorials_config_file_loads_unchanged(tmp_path: Path) -> None:
    conf = load(write(tmp_path, TUTORIAL), Config)
    assert (conf.name, conf.host, conf.port) == ("user-api", "0.0.0.0", 8888)
    assert conf.kq_pusher_conf.brokers == ["127.0.0.1:9094"]
    assert conf.kq_pusher_conf.topic == "login-log"
    assert conf.kq_consumer_conf.group == "login-login-group"
    assert conf.kq_consumer_conf.offset == "last"  # go-queue's default
    # MysqlConfig, Auth and RedisConfig are the Go service's: ignored, as go-zero does
    assert conf.log.level == "info"


def test_keys_match_in_any_case_and_snake_case(tmp_path: Path) -> None:
    text = "limits:\n  RETRIES: 5\n  TimeOut: 250ms\nShards:\n  - retries: 1\n  - Mode: fast\n"
    conf = load(write(tmp_path, text), Service)
    assert (conf.limits.retries, conf.limits.timeout) == (5, 0.25)
    assert [(s.retries, s.mode) for s in conf.shards] == [(1, "safe"), (3, "fast")]


def test_defaults_and_optional_keys() -> None:
    conf = from_mapping({}, Service)
    assert conf.limits == Limits()
    assert conf.limits.note is None


@pytest.mark.parametrize(
    ("value", "seconds"),
    [("500ms", 0.5), ("2s", 2.0), ("1m30s", 90.0), ("1h", 3600.0), ("1.5s", 1.5), (3, 3.0)],
)
def test_durations_in_go_spelling(value: object, seconds: float) -> None:
    assert from_mapping({"Timeout": value}, Limits).timeout == seconds


@pytest.mark.parametrize(
    ("text", "message"),
    [
        # a required key that is missing
        (
            "KqConsumerConf: {Brokers: [b:1], Topic: t}\nKqPusherConf: {Brokers: [b:1], Topic: t}",
            "config.yaml: KqConsumerConf.Group: missing; expected a consumer group id",
        ),
        # a value outside the allowed options
        (
            "Limits: {Mode: quick}",
            "config.yaml: Limits.Mode: got 'quick'; expected 'fast' or 'safe'",
        ),
        # a duration that is not one
        ("Limits: {Timeout: soon}", "config.yaml: Limits.Timeout: got 'soon'; expected a duration"),
        # out of range
        (
            "Limits: {Retries: 11}",
            "config.yaml: Limits.Retries: got 11; expected less than or equal to 10",
        ),
        # the wrong type, in a list
        (
            "Shards: [{Retries: many}]",
            r"config.yaml: Shards\[0\].Retries: got 'many'; expected a valid integer",
        ),
        # a typo of a declared key, not silently ignored
        (
            "Limits: {Retires: 5}",
            r"config.yaml: Limits.Retires: unknown key; did you mean 'Retries'\?",
        ),
        # a go-zero option of a nested KqConf, named with its whole path
        (
            "KqConsumerConf: {Brokers: [b:1], Group: g, Topic: t, Offset: middle}\n"
            "KqPusherConf: {Brokers: [b:1], Topic: t}",
            "config.yaml: KqConsumerConf.Offset: got 'middle'; expected 'first' or 'last'",
        ),
    ],
)
def test_each_kind_of_bad_input_names_file_key_value_and_what_is_allowed(
    tmp_path: Path, text: str, message: str
) -> None:
    model = Config if "Kq" in text else Service
    with pytest.raises(ConfigError, match=message):
        load(write(tmp_path, text), model)


def test_a_key_the_model_does_not_declare_is_ignored(tmp_path: Path) -> None:
    conf = load(write(tmp_path, "Limits: {Retries: 2, Owner: ops}\nMysqlConfig: {A: 1}\n"), Service)
    assert conf.limits.retries == 2


def test_environment_variables_are_expanded(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ZQ_TEST_RETRIES", "7")
    conf = load(write(tmp_path, "Limits:\n  Retries: ${ZQ_TEST_RETRIES}\n"), Service)
    assert conf.limits.retries == 7


def test_an_unset_environment_variable_is_named(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("ZQ_TEST_UNSET", raising=False)
    path = write(tmp_path, "Limits:\n  Retries: 1\n  Note: ${ZQ_TEST_UNSET}\n")
    with pytest.raises(ConfigError, match=r"config.yaml: line 3 uses \$\{ZQ_TEST_UNSET\}, but"):
        load(path, Service)


def test_json_and_toml_files(tmp_path: Path) -> None:
    as_json = load(write(tmp_path, '{"Limits": {"Retries": 4}}', "c.json"), Service)
    as_toml = load(write(tmp_path, "[Limits]\nRetries = 4\nTimeout = '2s'\n", "c.toml"), Service)
    assert as_json.limits.retries == as_toml.limits.retries == 4
    assert as_toml.limits.timeout == 2.0


def test_broken_files_are_located_not_quoted(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"not valid YAML: .*line 2") as info:
        load(write(tmp_path, "Limits:\n  Note: [hunter2-Secr3t\n"), Service)
    assert "hunter2" not in str(info.value)
    with pytest.raises(ConfigError, match=r"c.json: not valid JSON: .*line 1"):
        load(write(tmp_path, '{"Limits": ', "c.json"), Service)


def test_a_section_of_a_file(tmp_path: Path) -> None:
    path = write(tmp_path, TUTORIAL)
    assert load(path, PusherConf, key="kqpusherconf").topic == "login-log"
    with pytest.raises(ConfigError, match=r"no 'Missing' section; it has 'Name', 'Host'"):
        load(path, PusherConf, key="Missing")


def test_a_secret_is_never_quoted() -> None:
    class Db(Conf):
        password: int = 0

    with pytest.raises(ConfigError, match=r"Password: got a value of type str") as info:
        from_mapping({"Password": "hunter2-Secr3t"}, Db)
    assert "hunter2" not in str(info.value)


def test_a_dataclass_model() -> None:
    @dataclasses.dataclass
    class Plain:
        retries: int
        timeout: Duration = 1.0

    conf = from_mapping({"RETRIES": 2, "Timeout": "100ms", "Other": 1}, Plain)
    assert (conf.retries, conf.timeout) == (2, 0.1)
    with pytest.raises(ConfigError, match=r"config: retries: missing"):
        from_mapping({}, Plain)


def test_service_conf_keeps_go_zeros_keys(tmp_path: Path) -> None:
    text = (
        "Name: svc\nMode: dev\nLog:\n  Level: error\n  Encoding: plain\n"
        "Prometheus:\n  Host: 127.0.0.1\n  Port: 9102\nTelemetry:\n  Endpoint: http://j:14268\n"
    )
    conf = load(write(tmp_path, text), ServiceConf)
    assert (conf.name, conf.mode, conf.log.level, conf.log.encoding) == (
        "svc",
        "dev",
        "error",
        "plain",
    )
    assert (conf.prometheus.host, conf.prometheus.port) == ("127.0.0.1", 9102)
    assert conf.telemetry.endpoint == "http://j:14268"
    with pytest.raises(ConfigError, match=r"Log.Level: got 'loud'; expected 'debug', 'info'"):
        from_mapping({"Log": {"Level": "loud"}}, ServiceConf)
