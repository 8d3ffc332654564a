"""KqConf: go-queue's defaults, go-zero YAML files unchanged, errors that name the field."""

from __future__ import annotations

import traceback
from pathlib import Path

import pytest
from pydantic import ValidationError

from zeroqueue import ConfigError, KqConf

# As in go-zero's docs (the minimal consumer): the whole file is the KqConf.
GO_ZERO_KQ_FILE = """\
Name: kq
Brokers:
- 127.0.0.1:19092
- 127.0.0.1:19093
- 127.0.0.1:19094
Group: foo
Topic: test
Offset: first
Consumers: 1
"""

# As in go-zero's tutorial: a service config with a KqConsumerConf section and other keys.
GO_ZERO_SERVICE_FILE = """\
Name: mq
Host: 0.0.0.0
Port: 8888

KqPusherConf:
  Brokers:
    - 127.0.0.1:9092
  Topic: payment-success

#kq
KqConsumerConf:
  Name: kqConsumer
  Brokers:
    - 127.0.1:9092
  Group: kqConsumer
  Topic: payment-success
  Offset: first
  Consumers: 8
  Processors: 8
  Log:
    Mode: console
"""


def test_defaults_are_go_queues_but_min_bytes() -> None:
    conf = KqConf(Brokers=["127.0.0.1:9092"], Group="g", Topic="t")
    assert (conf.offset, conf.conns, conf.consumers, conf.processors) == ("last", 1, 8, 8)
    # go-queue's 10240 holds a quiet topic's messages up to max_wait: see README
    assert (conf.min_bytes, conf.max_bytes) == (1, 10485760)
    # a file that sets it keeps its value
    assert KqConf(Brokers=["b:1"], Group="g", Topic="t", MinBytes=10240).min_bytes == 10240
    assert (conf.username, conf.password, conf.ca_file) == ("", "", "")
    assert conf.force_commit is True
    assert conf.commit_in_order is False


def test_a_go_zero_kq_file_loads_unchanged(tmp_path: Path) -> None:
    path = tmp_path / "config.yaml"
    path.write_text(GO_ZERO_KQ_FILE)
    conf = KqConf.load(path)
    assert conf.name == "kq"
    assert conf.brokers == ["127.0.0.1:19092", "127.0.0.1:19093", "127.0.0.1:19094"]
    assert (conf.group, conf.topic, conf.offset, conf.consumers) == ("foo", "test", "first", 1)
    assert conf.processors == 8


def test_a_section_of_a_go_zero_service_file_loads(tmp_path: Path) -> None:
    path = tmp_path / "mq.yaml"
    path.write_text(GO_ZERO_SERVICE_FILE)
    conf = KqConf.load(path, key="KqConsumerConf")
    assert (conf.name, conf.group, conf.topic) == ("kqConsumer", "kqConsumer", "payment-success")
    assert conf.brokers == ["127.0.1:9092"]
    # go-zero's ServiceConf keys are kept, not rejected
    assert conf.service == {"Log": {"Mode": "console"}}


def test_keys_match_without_regard_to_case_or_underscores() -> None:
    conf = KqConf.from_mapping(
        {
            "brokers": "a:1,b:2",
            "GROUP": "g",
            "topic": ["x", "^y-.*"],
            "min_bytes": 1,
            "forceCommit": False,
        }
    )
    assert conf.brokers == ["a:1", "b:2"]
    assert conf.topics == ["x", "^y-.*"]
    assert (conf.min_bytes, conf.force_commit) == (1, False)
    assert KqConf(brokers=["a:1"], group="g", topic="t", ca_file="") == KqConf(
        Brokers=["a:1"], Group="g", Topic="t"
    )


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"Offset": "middle"}, "KqConf.Offset: got 'middle'; expected 'first' or 'last'"),
        ({"Processors": 0}, "KqConf.Processors: got 0; expected greater than or equal to 1"),
        ({"Conns": "two"}, "KqConf.Conns: got 'two'; expected a valid integer"),
        ({"Brokers": []}, r"KqConf.Brokers: got \[\]; expected at least one host:port"),
        ({"Brokers": ["kafka"]}, "expected host:port entries; 'kafka' is not"),
        ({"Group": " "}, "KqConf.Group: got ' '; expected a non-empty consumer group id"),
        ({"MinBytes": 2000, "MaxBytes": 1024}, "MinBytes=2000 is larger than MaxBytes=1024"),
        ({"Proccessors": 4}, r"unknown key 'Proccessors'; did you mean 'Processors'\?"),
        ({"Username": "u"}, "Password: got an empty password for Username='u'"),
        (
            {"SaslMechanism": "MD5"},
            "SaslMechanism: got 'MD5'; expected 'PLAIN', 'SCRAM-SHA-256' or",
        ),
        ({"CaFile": "/missing/ca.pem"}, "CaFile: got '/missing/ca.pem'; expected a readable"),
        # The Kafka client id: librdkafka cuts a long one mid-character, and every poll
        # of that client then raises UnicodeDecodeError.
        (
            {"Name": "订单" * 22},
            "KqConf.Name: got '订单订单.*'; expected at most 127 bytes of UTF-8",
        ),
    ],
)
def test_invalid_values_name_field_value_and_what_is_allowed(
    fields: dict[str, object], message: str
) -> None:
    base = {"Brokers": ["127.0.0.1:9092"], "Group": "g", "Topic": "t"}
    with pytest.raises(ConfigError, match=message):
        KqConf(**(base | fields))


def test_missing_required_fields_say_what_they_are() -> None:
    with pytest.raises(ConfigError, match=r"KqConf\.Group: missing; expected a consumer group id"):
        KqConf(Brokers=["a:1"], Topic="t")


def test_file_errors_name_the_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read config file"):
        KqConf.load(tmp_path / "nope.yaml")
    broken = tmp_path / "broken.yaml"
    broken.write_text("Brokers: [a:1\n")
    with pytest.raises(ConfigError, match=r"broken\.yaml: not valid YAML"):
        KqConf.load(broken)
    service = tmp_path / "mq.yaml"
    service.write_text(GO_ZERO_SERVICE_FILE)
    with pytest.raises(ConfigError, match=r"no 'KqConf' section; it has 'Name'"):
        KqConf.load(service, key="KqConf")
    with pytest.raises(
        ConfigError, match=r"mq.yaml: KqPusherConf.Group: missing; expected a consumer group id"
    ):
        KqConf.load(service, key="KqPusherConf")


def test_sasl_and_tls_settings() -> None:
    conf = KqConf(
        Brokers=["a:1"],
        Group="g",
        Topic="t",
        Username="u",
        Password="p",
        SaslMechanism="SCRAM-SHA-512",
    )
    assert conf.security().librdkafka() == {
        "security.protocol": "SASL_PLAINTEXT",
        "sasl.mechanism": "SCRAM-SHA-512",
        "sasl.username": "u",
        "sasl.password": "p",
    }


PASSWORD = "hunter2-Secr3t-0b7e"
SASL = {"Brokers": ["a:1"], "Group": "g", "Topic": "t", "Username": "alice"}


def test_repr_and_str_leave_the_password_out() -> None:
    conf = KqConf(**SASL, Password=PASSWORD)
    for text in (repr(conf), str(conf), repr(conf.security())):
        assert PASSWORD not in text
        assert "username='alice'" in text
    # the attribute itself is unchanged
    assert conf.password == PASSWORD
    assert conf.security().librdkafka()["sasl.password"] == PASSWORD


def _texts(error: BaseException) -> list[str]:
    """Everything an error shows: str, repr, and its whole cause and context chain."""
    texts = ["".join(traceback.format_exception(error))]
    seen: BaseException | None = error
    while seen is not None:
        texts += [str(seen), repr(seen)]
        seen = seen.__cause__ or seen.__context__
    return texts


@pytest.mark.parametrize(
    ("password", "secret", "kind"),
    [(918273645, "918273645", "int"), ([PASSWORD], PASSWORD, "list")],
)
def test_a_password_of_the_wrong_type_is_named_by_its_type_only(
    password: object, secret: str, kind: str
) -> None:
    with pytest.raises(ConfigError) as caught:
        KqConf(**SASL, Password=password)
    assert str(caught.value) == (
        f"KqConf.Password: got a value of type {kind}; expected a valid string"
    )
    # and no chained error quotes it either (pydantic's ValidationError would)
    assert caught.value.__cause__ is None
    assert caught.value.__context__ is None
    assert not [text for text in _texts(caught.value) if secret in text]


def test_a_validation_error_that_skips_our_init_quotes_no_input() -> None:
    # model_validate does not go through KqConf.__init__, so pydantic's own error escapes
    with pytest.raises(ValidationError) as caught:
        KqConf.model_validate({**SASL, "Password": PASSWORD, "Conns": "two"})
    assert not [text for text in _texts(caught.value) if PASSWORD in text]


def test_a_mapping_with_a_bad_key_is_refused_without_echoing_its_values() -> None:
    with pytest.raises(ConfigError) as caught:
        KqConf.from_mapping({**SASL, "Password": PASSWORD, 1: "x"})  # type: ignore[dict-item]
    assert str(caught.value) == "KqConf: got keys 1; expected string keys"
    with pytest.raises(ConfigError, match="KqConf: got a list; expected a mapping"):
        KqConf.from_mapping([("Password", PASSWORD)])  # type: ignore[arg-type]


def test_invalid_yaml_is_located_without_quoting_the_line(tmp_path: Path) -> None:
    # given a file whose broken line holds the password
    path = tmp_path / "config.yaml"
    path.write_text(f"Brokers: [a:1]\nGroup: g\nTopic: t\nUsername: alice\nPassword: [{PASSWORD}\n")
    # when it is loaded
    with pytest.raises(ConfigError) as caught:
        KqConf.load(path)
    # then the error names the file, what is wrong and where, and not the password
    assert str(caught.value) == (
        f"{path}: not valid YAML: while parsing a flow sequence (line 5, column 11): "
        "expected ',' or ']', but got '<stream end>' (line 6, column 1)"
    )
    assert not [text for text in _texts(caught.value) if PASSWORD in text]
