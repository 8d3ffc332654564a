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


def test_an_unset_environment_variable_is_named_with_its_key_path(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("ZQ_TEST_UNSET", raising=False)
    path = write(tmp_path, "Limits:\n  Retries: 1\n  Note: ${ZQ_TEST_UNSET}\n")
    with pytest.raises(
        ConfigError,
        match=r"config.yaml: Limits.Note uses \$\{ZQ_TEST_UNSET\}, but environment variable"
        r" ZQ_TEST_UNSET is not set",
    ):
        load(path, Service)
    path = write(tmp_path, "Endpoints:\n  - a\n  - x${ZQ_TEST_UNSET}\n")
    with pytest.raises(ConfigError, match=r"config.yaml: Endpoints\[1\] uses \$\{ZQ_TEST_UNSET\}"):
        load(path, Service)


def test_a_variable_in_a_comment_is_not_expanded(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # given a comment naming a variable that is not set
    monkeypatch.delenv("ZQ_TEST_UNSET", raising=False)
    monkeypatch.setenv("ZQ_TEST_NOTE", "from the environment")
    text = (
        "# to point elsewhere, set Endpoints: [${ZQ_TEST_UNSET}]\n"
        "Limits:\n  Note: ${ZQ_TEST_NOTE}  # not ${ZQ_TEST_UNSET} either\n"
    )
    # then the file loads: comments are not expanded
    assert load(write(tmp_path, text), Service).limits.note == "from the environment"
    toml = write(tmp_path, "# ${ZQ_TEST_UNSET}\n[Limits]\nNote = '${ZQ_TEST_NOTE}'\n", "c.toml")
    assert load(toml, Service).limits.note == "from the environment"


@pytest.mark.parametrize(
    "value",
    ["s3cr3t #2024", "a: b", "[1, 2]", "{x: 1}", "'quoted'", '"double" \\n', "- item", "*alias"],
)
@pytest.mark.parametrize(
    ("name", "text"),
    [
        ("config.yaml", "Limits:\n  Note: ${ZQ_TEST_VALUE}\n"),
        ("quoted.yaml", 'Limits: {Note: "${ZQ_TEST_VALUE}"}\n'),
        ("config.json", '{"Limits": {"Note": "${ZQ_TEST_VALUE}"}}'),
        ("config.toml", "[Limits]\nNote = '${ZQ_TEST_VALUE}'\n"),
    ],
)
def test_a_variables_value_is_taken_verbatim(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, value: str, name: str, text: str
) -> None:
    # a value is never parsed again: " #" does not start a comment, ": " no mapping
    monkeypatch.setenv("ZQ_TEST_VALUE", value)
    assert load(write(tmp_path, text, name), Service).limits.note == value


def test_variables_load_into_typed_fields_and_flow_collections(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ZQ_TEST_RETRIES", "4")
    monkeypatch.setenv("ZQ_TEST_TIMEOUT", "250ms")
    monkeypatch.setenv("ZQ_TEST_HOST", "b:9092")
    text = (
        "Limits: {Retries: ${ZQ_TEST_RETRIES}, Timeout: ${ZQ_TEST_TIMEOUT}}\n"
        "Endpoints: [${ZQ_TEST_HOST}, 'c:${ZQ_TEST_RETRIES}']\n"
    )
    conf = load(write(tmp_path, text), Service)
    assert (conf.limits.retries, conf.limits.timeout) == (4, 0.25)
    assert conf.endpoints == ["b:9092", "c:4"]
    # a whole value of a variable reads into an int field of RestConf as in go-zero files
    monkeypatch.setenv("ZQ_TEST_PORT", "8080")
    rest = load(write(tmp_path, "Name: api\nHost: 0.0.0.0\nPort: ${ZQ_TEST_PORT}\n"), RestConf)
    assert rest.port == 8080


def test_a_syntax_error_after_a_variable_is_located_by_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # the variable's marker moved the column: only the line is named
    monkeypatch.setenv("ZQ_TEST_NOTE", "n")
    path = write(tmp_path, "Limits:\n  Note: ${ZQ_TEST_NOTE}: [unclosed\n")
    with pytest.raises(ConfigError, match=r"not valid YAML: .*\(line 2\)") as info:
        load(path, Service)
    assert "column" not in str(info.value)
    assert "zqenv" not in str(info.value)


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


class GoZeroSecrets(Conf):
    """Keys go-zero's configs keep secrets under, each typed so that a string is wrong."""

    pass_: int = Field(0, alias="Pass")  # redis.RedisConf
    redis_pass: int = 0
    db_pwd: int = 0
    api_key: int = 0
    access_key: int = 0
    secret_key: int = 0
    private_key: int = 0
    access_secret: int = 0  # rest's Auth
    data_source: int = 0  # sqlx's DSN: redacted by its look, not its key
    endpoint: int = 0
    nested: dict[str, int] = Field(default_factory=dict)
    shards: list[int] = Field(default_factory=list)
    otlp_headers: int = 0  # Telemetry's: Authorization=Bearer ...
    note: int = 0  # a credential by its look


def test_secrets_under_go_zeros_keys_or_in_dsns_are_never_quoted() -> None:
    data = {
        "Pass": "hunter2-a",
        "RedisPass": "hunter2-b",
        "DbPwd": "hunter2-c",
        "ApiKey": "hunter2-d",
        "AccessKey": "hunter2-e",
        "SecretKey": "hunter2-f",
        "PrivateKey": "hunter2-g",
        "AccessSecret": "hunter2-h",
        "DataSource": ["root:hunter2-i@tcp(db:3306)/app"],
        "Endpoint": "redis://:hunter2-j@r:6379/0",
        "Nested": {"Dsn": "host=db user=app password=hunter2-k"},
        "Shards": {"Password": "hunter2-l"},  # a mapping where a list belongs
        "OtlpHeaders": "x-api=hunter2-m",
        "Note": "Bearer hunter2-n",
    }
    with pytest.raises(ConfigError) as info:
        from_mapping(data, GoZeroSecrets, source="etc/config.yaml")
    message = str(info.value)
    assert "hunter2" not in message
    lines = message.splitlines()
    assert len(lines) == len(data)
    assert all(": got a value of type " in line for line in lines), message
    assert lines[0].startswith("etc/config.yaml: Pass: got a value of type str; expected")


def test_values_that_are_not_secrets_are_still_quoted() -> None:
    class Topics(Conf):
        keys: int = 0  # a list of names, not a key
        key_file: int = 0  # a path
        topic: int = 0
        brokers: int = 0

    data = {"Keys": ["a", "b"], "KeyFile": "/etc/k.pem", "Topic": "t", "Brokers": "b:9092"}
    with pytest.raises(ConfigError) as info:
        from_mapping(data, Topics)
    message = str(info.value)
    for shown in ("got ['a', 'b']", "got '/etc/k.pem'", "got 't'", "got 'b:9092'"):
        assert shown in message


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


def test_a_conf_built_in_code_raises_config_error_naming_the_field() -> None:
    class Db(Conf):
        host: str
        port: int = 5432

    with pytest.raises(ConfigError) as caught:
        PusherConf(Brokers=["127.0.0.1:9092"], Topic="t", ChunkSize="big", Password="hunter2")
    assert str(caught.value) == (
        "PusherConf.ChunkSize: got 'big'; expected a valid integer, "
        "unable to parse string as an integer"
    )
    # pydantic's ValidationError quotes every input, the password too: it is not chained
    assert caught.value.__context__ is None
    with pytest.raises(ConfigError, match=r"^Db\.Port: got 'x'; expected a valid integer"):
        Db(host="h", port="x")
    with pytest.raises(ConfigError, match=r"^Db\.Host: missing"):
        Db()
    with pytest.raises(ConfigError, match=r"^RestConf: ShutdownTimout: unknown key; did you mean"):
        RestConf(ShutdownTimout=1)
