"""Username/Password/SaslMechanism and CaFile end to end on Apache Kafka, and no password
in any log line, repr or error.

The cluster is the ``secure_kafka`` fixture: one Apache Kafka broker with SASL users
(PLAIN, SCRAM-SHA-256 and SCRAM-SHA-512 on a SASL_PLAINTEXT and a SASL_SSL listener)
and an SSL listener, its certificate signed by a throwaway CA. Tansu has neither SASL
nor TLS, so every test here runs on Kafka only (``--broker kafka`` or ``both``).
"""

from __future__ import annotations

import logging
import time
import traceback
import uuid
from collections.abc import Iterable

import pytest

from tests.kafka_helpers import (
    Recorder,
    SecureKafka,
    eventually,
    fast_queue_options,
    read_topic,
    running,
)
from zeroqueue import (
    AuthenticationError,
    BrokerUnavailableError,
    DeliveryError,
    KqConf,
    Message,
    Pusher,
    Queue,
    admin,
)
from zeroqueue._kafka.settings import KAFKA_LOGGER, SaslMechanism
from zeroqueue.embedded._kafka import Protocol
from zeroqueue.retry import RetryConf

pytestmark = pytest.mark.kafka_only

USER = "alice"
WRONG_PASSWORD = "not-alice-Wr0ng-77e1"
# A Queue must give up on a refused login or certificate this fast, against
# connect_timeout's 15 s: Kafka delays each refusal by about 0.3 s, and start()
# looks at librdkafka's errors every 0.2 s.
REFUSAL_BOUND = 2.0
DELIVERY_TIMEOUT = 3.0
# librdkafka looks for timed-out messages once a second, so a failed message can
# reach flush() up to a second after delivery_timeout; then some scheduling slack.
FLUSH_BOUND = DELIVERY_TIMEOUT + 1.0 + 2.0
# librdkafka's own account of the login and of its configuration, so that the
# password checks cover its most talkative logging too (it redacts sasl.password).
LIBRDKAFKA_DEBUG = {"debug": "security,conf"}


@pytest.fixture
def secure(broker_kind: str, secure_kafka: SecureKafka) -> SecureKafka:
    """The secured cluster; taking ``broker_kind`` puts these tests under ``--broker``."""
    return secure_kafka


@pytest.fixture
def logs(caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    """Every log record at DEBUG and up, librdkafka's (the zeroqueue.kafka logger) too."""
    caplog.set_level(logging.DEBUG)
    return caplog


def new_topic(secure: SecureKafka, partitions: int = 1) -> str:
    name = f"sec-{uuid.uuid4().hex[:10]}"
    secure.broker.create_topic(name, partitions)
    return name


def shown(things: Iterable[object], logs: pytest.LogCaptureFixture) -> list[str]:
    """Every text a user may see: log lines, and repr/str of objects and of errors
    with their whole chain (what a logged traceback prints)."""
    texts = [record.getMessage() for record in logs.records] + [logs.text]
    for thing in things:
        texts += [repr(thing), str(thing)]
        if isinstance(thing, BaseException):
            texts.append("".join(traceback.format_exception(thing)))
            chained = thing.__cause__ or thing.__context__
            while chained is not None:
                texts += [repr(chained), str(chained)]
                chained = chained.__cause__ or chained.__context__
    return texts


def assert_never_shown(
    secrets: Iterable[str], things: Iterable[object], logs: pytest.LogCaptureFixture
) -> None:
    texts = shown(things, logs)
    for secret in secrets:
        leaks = [text.replace(secret, "<PASSWORD>") for text in texts if secret in text]
        assert not leaks, leaks


def timed(request: pytest.FixtureRequest, elapsed: float) -> None:
    """Keep how long a failure took to surface, for the JUnit XML report (--junitxml)."""
    request.node.user_properties.append(("seconds_to_fail", f"{elapsed:.2f}"))


def assert_key_order(recorder: Recorder, count: int, keys: int) -> None:
    """Each message handled once, and each key's messages in the order pushed."""
    assert sorted(int(value) for _, value in recorder.seen) == list(range(count))
    by_key = recorder.by_key()
    assert sorted(by_key) == sorted(f"user-{k}" for k in range(keys))
    for key, values in by_key.items():
        numbers = [int(v) for v in values]
        assert numbers == sorted(numbers), f"key {key} out of order"


def queue_conf(
    bootstrap: str,
    topic: str,
    group: str,
    *,
    password: str,
    mechanism: SaslMechanism,
    ca_file: str = "",
) -> KqConf:
    return KqConf(
        Brokers=[bootstrap],
        Group=group,
        Topic=topic,
        Offset="first",
        Username=USER,
        Password=password,
        SaslMechanism=mechanism,
        CaFile=ca_file,
    )


# -- logging in ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("protocol", "mechanism"),
    [
        ("SASL_PLAINTEXT", "PLAIN"),
        ("SASL_PLAINTEXT", "SCRAM-SHA-256"),
        ("SASL_PLAINTEXT", "SCRAM-SHA-512"),
        ("SASL_SSL", "SCRAM-SHA-512"),
    ],
)
def test_a_pusher_and_a_queue_that_log_in_handle_every_message_in_key_order(
    secure: SecureKafka,
    group: str,
    logs: pytest.LogCaptureFixture,
    protocol: Protocol,
    mechanism: SaslMechanism,
) -> None:
    # given a 3-partition topic and the SASL listener (with TLS: the cluster's CA)
    password = secure.users[USER]
    ca_file = secure.ca_file if protocol == "SASL_SSL" else ""
    bootstrap = secure.broker.listener(protocol)
    topic = new_topic(secure, partitions=3)
    # when a Pusher logs in with username/password/sasl_mechanism and pushes 200
    # messages over 10 keys
    with Pusher(
        [bootstrap],
        topic,
        username=USER,
        password=password,
        sasl_mechanism=mechanism,
        ca_file=ca_file,
        kafka_config=LIBRDKAFKA_DEBUG,
    ) as pusher:
        for i in range(200):
            pusher.push_with_key(f"user-{i % 10}", f"{i}")
    # and a Queue logs in with Username/Password/SaslMechanism (and CaFile)
    conf = queue_conf(
        bootstrap, topic, group, password=password, mechanism=mechanism, ca_file=ca_file
    )
    recorder = Recorder()
    queue = Queue(conf, recorder, kafka_config=LIBRDKAFKA_DEBUG, **fast_queue_options())
    with running(queue):
        assert recorder.wait_for(200, timeout=30)
    # then every message was handled once, each key in the order it was pushed
    assert_key_order(recorder, 200, keys=10)
    # and the group's offsets were committed, read back with the same login
    committed = admin.committed_offsets(
        [bootstrap],
        group,
        topic,
        kafka_config=secure.broker.client_config(
            protocol,
            username=USER,
            password=password,
            mechanism=mechanism,
            ca_file=ca_file or None,
        ),
    )
    assert sum(offset or 0 for offset in committed.values()) == 200
    # and the password shows in no log line (librdkafka's debug account of the login
    # and its configuration among them) and no repr
    assert any(
        r.name == KAFKA_LOGGER.name and "sasl.password" in r.getMessage() for r in logs.records
    )
    assert_never_shown([password], [conf, conf.security(), pusher, pusher.options, queue], logs)


# -- a wrong password ---------------------------------------------------------------


@pytest.mark.parametrize("mechanism", ["PLAIN", "SCRAM-SHA-512"])
def test_a_queue_with_a_wrong_password_fails_at_start_naming_what_to_fix(
    secure: SecureKafka,
    group: str,
    logs: pytest.LogCaptureFixture,
    mechanism: SaslMechanism,
    request: pytest.FixtureRequest,
) -> None:
    # given a Queue whose Password is wrong (connect_timeout stays 15 s)
    bootstrap = secure.broker.listener("SASL_PLAINTEXT")
    conf = queue_conf(
        bootstrap, new_topic(secure), group, password=WRONG_PASSWORD, mechanism=mechanism
    )
    recorder = Recorder()
    queue = Queue(conf, recorder, **fast_queue_options())
    # when it starts
    started = time.monotonic()
    with pytest.raises(AuthenticationError) as caught:
        queue.start()
    elapsed = time.monotonic() - started
    timed(request, elapsed)
    # then it gives up at the broker's first refusal, not after connect_timeout
    assert elapsed < REFUSAL_BOUND
    # with an error that says what was refused, in librdkafka's words, and what to fix
    message = str(caught.value)
    assert f"no broker of Brokers=['{bootstrap}'] answered a metadata request" in message
    assert (
        f"the broker refused the SASL login of user 'alice' with mechanism {mechanism}" in message
    )
    assert "SASL authentication error: Authentication failed" in message
    assert "check Username/Password (username/password)" in message
    assert "SaslMechanism/sasl_mechanism" in message
    # and code that catches BrokerUnavailableError still catches it
    assert isinstance(caught.value, BrokerUnavailableError)
    assert recorder.seen == []
    # and neither password shows anywhere: librdkafka's log of the refusal was seen
    assert any(
        r.name == KAFKA_LOGGER.name and "Authentication failed" in r.getMessage()
        for r in logs.records
    )
    assert_never_shown([WRONG_PASSWORD, secure.users[USER]], [caught.value, conf, queue], logs)


@pytest.mark.parametrize("mechanism", ["PLAIN", "SCRAM-SHA-512"])
def test_a_pusher_with_a_wrong_password_fails_at_flush_within_delivery_timeout(
    secure: SecureKafka,
    logs: pytest.LogCaptureFixture,
    mechanism: SaslMechanism,
    request: pytest.FixtureRequest,
) -> None:
    # given a Pusher whose password is wrong, with a short delivery_timeout
    bootstrap = secure.broker.listener("SASL_PLAINTEXT")
    topic = new_topic(secure)
    with Pusher(
        [bootstrap],
        topic,
        username=USER,
        password=WRONG_PASSWORD,
        sasl_mechanism=mechanism,
        delivery_timeout=DELIVERY_TIMEOUT,
    ) as pusher:
        pusher.push_with_key("k", "v")
        # when it flushes
        started = time.monotonic()
        with pytest.raises(DeliveryError) as caught:
            pusher.flush()
        elapsed = time.monotonic() - started
    timed(request, elapsed)
    # then the message failed within delivery_timeout (and librdkafka's 1 s check)
    assert elapsed < FLUSH_BOUND
    assert caught.value.count == 1
    # and the error quotes the refused login and says what to fix
    message = str(caught.value)
    assert f"1 message(s) to topic {topic!r} were not delivered" in message
    assert "SASL authentication error: Authentication failed" in message
    assert (
        "the broker refused the SASL login: check Username/Password (username/password)" in message
    )
    assert_never_shown([WRONG_PASSWORD], [caught.value, pusher, pusher.options], logs)


# -- a certificate the client does not trust ----------------------------------------


@pytest.mark.parametrize("protocol", ["SSL", "SASL_SSL"])
def test_a_queue_trusting_another_ca_fails_at_start_pointing_at_cafile(
    secure: SecureKafka,
    group: str,
    logs: pytest.LogCaptureFixture,
    protocol: Protocol,
    request: pytest.FixtureRequest,
) -> None:
    # given a Queue whose CaFile holds a CA that did not sign the broker's certificate
    bootstrap = secure.broker.listener(protocol)
    password = secure.users[USER] if protocol == "SASL_SSL" else ""
    conf = KqConf(
        Brokers=[bootstrap],
        Group=group,
        Topic=new_topic(secure),
        Username=USER if password else "",
        Password=password,
        SaslMechanism="SCRAM-SHA-512",
        CaFile=secure.wrong_ca_file,
    )
    recorder = Recorder()
    queue = Queue(conf, recorder, **fast_queue_options())
    # when it starts
    started = time.monotonic()
    with pytest.raises(AuthenticationError) as caught:
        queue.start()
    elapsed = time.monotonic() - started
    timed(request, elapsed)
    # then it gives up at once, saying the certificate did not verify against CaFile
    assert elapsed < REFUSAL_BOUND
    message = str(caught.value)
    assert f"no broker of Brokers=['{bootstrap}'] answered a metadata request" in message
    assert "the broker's certificate did not verify against CaFile/ca_file" in message
    assert "certificate verify failed" in message
    assert "it must be signed by a CA in that file and name the host in Brokers" in message
    assert recorder.seen == []
    assert_never_shown([secure.users[USER]], [caught.value, conf, queue], logs)


def test_a_pusher_trusting_another_ca_fails_at_flush_pointing_at_ca_file(
    secure: SecureKafka, request: pytest.FixtureRequest
) -> None:
    # given a Pusher on the SSL listener whose ca_file holds the wrong CA
    bootstrap = secure.broker.listener("SSL")
    topic = new_topic(secure)
    with Pusher(
        [bootstrap], topic, ca_file=secure.wrong_ca_file, delivery_timeout=DELIVERY_TIMEOUT
    ) as pusher:
        pusher.push_with_key("k", "v")
        # when it flushes
        started = time.monotonic()
        with pytest.raises(DeliveryError) as caught:
            pusher.flush()
        elapsed = time.monotonic() - started
    timed(request, elapsed)
    # then the message failed within delivery_timeout, the error pointing at ca_file
    assert elapsed < FLUSH_BOUND
    message = str(caught.value)
    assert f"1 message(s) to topic {topic!r} were not delivered" in message
    assert "certificate verify failed" in message
    assert "did not verify against CaFile/ca_file (ssl.ca.location)" in message


# -- SASL given only as librdkafka settings --------------------------------------------


def test_security_in_kafka_config_reaches_the_retry_and_delay_clients(
    secure: SecureKafka, group: str
) -> None:
    # given SASL set only through kafka_config, not Username/Password
    sasl = secure.broker.client_config("SASL_PLAINTEXT", username=USER, password=secure.users[USER])
    sasl.pop("bootstrap.servers")
    bootstrap = secure.broker.listener("SASL_PLAINTEXT")
    topic = new_topic(secure)
    dead_letters = f"{topic}.dlt"
    handled: list[str] = []

    def handle(message: Message) -> None:
        if message.value_str == "poison":
            raise ValueError("never handled")
        handled.append(message.value_str)

    conf = KqConf(
        Brokers=[bootstrap],
        Group=group,
        Topic=topic,
        Offset="first",
        Retry=RetryConf(Attempts=1, DeadLetterTopic=dead_letters),
    )
    queue = Queue(conf, handle, kafka_config=sasl, **fast_queue_options())
    with running(queue):
        # when a poison message and a delayed one are pushed (over SASL too)
        with Pusher([bootstrap], topic, kafka_config=sasl) as pusher:
            pusher.push("poison")
            pusher.push("later", delay=0.5)
        # then the retry client dead-letters the first and the releaser releases the second
        assert eventually(lambda: handled == ["later"], timeout=30)
        found = read_topic([bootstrap], dead_letters, 1, kafka_config=sasl)
    assert [record.value() for record in found] == [b"poison"]
