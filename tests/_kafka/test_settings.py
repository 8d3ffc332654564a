"""Client settings helpers: the remembered cause of connection trouble, refusals told
from trouble a retry may fix, and passwords kept out of reprs and errors."""

from __future__ import annotations

from typing import Any

import pytest
from confluent_kafka import KafkaError

from zeroqueue import ConfigError, admin
from zeroqueue._checks import check_settings
from zeroqueue._kafka.settings import (
    ClientErrors,
    Refusal,
    Security,
    client_settings,
    clipped_client_id,
    refusal_of,
)
from zeroqueue.producer.options import PushOptions

PASSWORD = "hunter2-Secr3t-0b7e"


def test_the_specific_cause_outlives_all_brokers_down_and_says_its_age() -> None:
    errors = ClientErrors()
    assert errors.hint() == ""
    errors.record(KafkaError(KafkaError._TRANSPORT, "Connection refused"))
    errors.record(KafkaError(KafkaError._ALL_BROKERS_DOWN, "1/1 brokers are down"))
    assert errors.hint() == " (last client error, 0s ago: Connection refused)"


def test_an_unverified_certificate_is_traced_to_the_ca_setting_in_either_wording() -> None:
    # librdkafka's short wording names no setting; its long one names only its own
    short = "ssl://127.0.0.1:9093/bootstrap: error:0A000086:SSL routines::certificate verify failed"
    long = f"{short}: broker certificate could not be verified, verify that ssl.ca.location is set"
    for wording in (short, long):
        errors = ClientErrors()
        errors.record(KafkaError(KafkaError._SSL, wording))
        hint = errors.hint()
        assert wording in hint
        assert "CaFile/ca_file (ssl.ca.location)" in hint


def test_other_client_errors_get_no_certificate_advice() -> None:
    errors = ClientErrors()
    errors.record(KafkaError(KafkaError._TRANSPORT, "Connection refused"))
    assert "CaFile" not in errors.hint()


# What librdkafka 2.16 reported to error_cb against Apache Kafka 4 (see test_security.py).
SCRAM_REFUSED = (
    "sasl_plaintext://127.0.0.1:39687/bootstrap: SASL authentication error: Authentication"
    " failed during authentication due to invalid credentials with SASL mechanism"
    " SCRAM-SHA-512 (after 375ms in state AUTH_REQ)"
)
PLAIN_REFUSED = (
    "sasl_plaintext://127.0.0.1:39687/bootstrap: SASL authentication error: Authentication"
    " failed: Invalid username or password (after 305ms in state AUTH_REQ)"
)
SASL_TO_A_PLAINTEXT_LISTENER = (
    "sasl_plaintext://127.0.0.1:35981/bootstrap: SASL SCRAM-SHA-512 mechanism handshake"
    " failed: Broker: Request not valid in current SASL state: broker's supported"
    " mechanisms:  (after 0ms in state AUTH_HANDSHAKE)"
)
UNTRUSTED_CERTIFICATE = (
    "ssl://127.0.0.1:46267/bootstrap: SSL handshake failed: error:0A000086:SSL"
    " routines::certificate verify failed: broker certificate could not be verified, verify"
    " that ssl.ca.location is correctly configured or root CA certificates are installed"
    " (install ca-certificates package) (after 32ms in state SSL_HANDSHAKE)"
)
TLS_TO_A_PLAINTEXT_LISTENER = (
    "ssl://127.0.0.1:35981/bootstrap: SSL handshake failed: Disconnected: SSL connection"
    " closed by peer: connecting to a PLAINTEXT broker listener? (after 11ms in state"
    " SSL_HANDSHAKE)"
)


@pytest.mark.parametrize(
    ("code", "text", "refusal"),
    [
        pytest.param(KafkaError._AUTHENTICATION, SCRAM_REFUSED, "sasl", id="scram-refused"),
        pytest.param(KafkaError._AUTHENTICATION, PLAIN_REFUSED, "sasl", id="plain-refused"),
        pytest.param(
            KafkaError._AUTHENTICATION, SASL_TO_A_PLAINTEXT_LISTENER, "sasl", id="no-sasl-there"
        ),
        pytest.param(KafkaError._SSL, UNTRUSTED_CERTIFICATE, "certificate", id="untrusted"),
        # the short wording some builds use, whatever the code it comes with
        pytest.param(
            KafkaError._TRANSPORT,
            "ssl://h:1/bootstrap: error:0A000086:SSL routines::certificate verify failed",
            "certificate",
            id="untrusted-short",
        ),
        pytest.param(
            KafkaError._SSL,
            "ssl://h:1/bootstrap: SSL handshake failed: tlsv13 alert certificate required",
            "tls",
            id="tls-handshake",
        ),
        # a broker restarting mid-handshake says the same: retrying may help
        pytest.param(
            KafkaError._TRANSPORT, TLS_TO_A_PLAINTEXT_LISTENER, None, id="tls-to-plaintext"
        ),
        pytest.param(
            KafkaError._TRANSPORT,
            "127.0.0.1:1/bootstrap: Connect to ipv4#127.0.0.1:1 failed: Connection refused",
            None,
            id="refused-connection",
        ),
        pytest.param(
            KafkaError._ALL_BROKERS_DOWN, "1/1 brokers are down", None, id="all-brokers-down"
        ),
    ],
)
def test_a_refusal_is_told_from_trouble_a_retry_may_fix(
    code: int, text: str, refusal: Refusal | None
) -> None:
    assert refusal_of(KafkaError(code, text)) == refusal


def test_a_refused_login_is_traced_to_username_password_and_the_mechanism() -> None:
    # given a client whose SASL login the broker refused
    errors = ClientErrors()
    errors.record(KafkaError(KafkaError._AUTHENTICATION, SCRAM_REFUSED))
    # then the hint quotes librdkafka and names the settings to check
    hint = errors.hint()
    assert SCRAM_REFUSED in hint
    assert "the broker refused the SASL login: check Username/Password (username/password)" in hint
    assert "SaslMechanism/sasl_mechanism (sasl.mechanism)" in hint


def test_a_refusal_is_remembered_whatever_comes_after() -> None:
    # given a refused login, then other trouble
    errors = ClientErrors()
    errors.record(KafkaError(KafkaError._AUTHENTICATION, PLAIN_REFUSED))
    errors.record(KafkaError(KafkaError._TRANSPORT, "Connection refused"))
    # then the refusal is kept for whoever decides to give up, the hint tells the latest
    assert errors.refusal == "sasl"
    assert errors.refused is not None
    assert errors.refused.str() == PLAIN_REFUSED
    assert "Connection refused" in errors.hint()
    assert "Username/Password" not in errors.hint()


def test_security_keeps_the_password_out_of_its_repr_but_gives_it_to_librdkafka() -> None:
    security = Security(username="alice", password=PASSWORD, sasl_mechanism="SCRAM-SHA-512")
    assert PASSWORD not in repr(security)
    assert PASSWORD not in str(security)
    assert "username='alice'" in repr(security)
    assert security.librdkafka()["sasl.password"] == PASSWORD


def test_push_options_keep_the_password_out_of_their_repr() -> None:
    options = PushOptions(username="alice", password=PASSWORD)
    assert PASSWORD not in repr(options)
    assert "username='alice'" in repr(options)


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"username": "u", "password": 12345}, "Password: got a value of type int; expected a str"),
        ({"username": 7, "password": "p"}, "Username: got a value of type int; expected a str"),
        ({"ca_file": None}, "CaFile: got a value of type NoneType; expected a str"),
    ],
)
def test_security_settings_of_the_wrong_type_are_named_without_their_value(
    fields: dict[str, Any], message: str
) -> None:
    with pytest.raises(ConfigError) as caught:
        Security(**fields)
    assert str(caught.value) == message


def test_a_made_up_client_id_is_cut_where_librdkafka_would_not_cut_a_character() -> None:
    # A service Name at the limit, plus the suffix zeroqueue adds for its releaser
    name = "订" * 42  # 126 bytes of UTF-8
    clipped = clipped_client_id(f"{name}-delay")
    assert clipped == f"{name}-"
    assert len(clipped.encode()) == 127
    assert PushOptions(client_id=clipped).client_id == clipped
    # ASCII is never cut: librdkafka's cut leaves it valid text
    assert clipped_client_id("a" * 300) == "a" * 300


def test_every_client_checks_a_client_id_given_in_kafka_config() -> None:
    # the admin helpers and the dead-letter reader build clients from client_settings alone
    with pytest.raises(ConfigError, match=r"^kafka_config\['client.id'\]: got '订+'; expected"):
        admin.create_topic(["127.0.0.1:1"], "t", kafka_config={"client.id": "订" * 43})
    assert client_settings(["h:1"], overrides={"client.id": "订" * 42})["client.id"] == "订" * 42


def test_a_kafka_config_with_a_bad_key_is_named_without_its_values() -> None:
    settings: Any = {"sasl.password": "hunter2", 1: "x"}
    with pytest.raises(ConfigError, match=r"^kafka_config: got keys 1; expected") as caught:
        check_settings("kafka_config", settings)
    assert "hunter2" not in str(caught.value)
    with pytest.raises(ConfigError, match=r"^kafka_config: got a list; expected a mapping"):
        check_settings("kafka_config", [("sasl.password", "hunter2")])
