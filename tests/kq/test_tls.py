"""CaFile / ca_file turn TLS on, with certificate verification, end to end.

The cluster is the ``tls_kafka`` fixture: stunnel terminates TLS in front of a
plaintext Tansu that advertises the TLS port, so every connection a client makes
(to the bootstrap address, then to the advertised broker) goes through TLS.
"""

from __future__ import annotations

import logging
import time
import uuid

import pytest

from tests.kafka_helpers import Recorder, TlsKafka, fast_queue_options, running
from zeroqueue import BrokerUnavailableError, DeliveryError, KqConf, Pusher, Queue, admin
from zeroqueue._kafka.settings import KAFKA_LOGGER

# How much longer than its own timeout a failing call may take to give up.
SLACK = 2.0


def new_topic(tls: TlsKafka, partitions: int = 1) -> str:
    name = f"tls-{uuid.uuid4().hex[:10]}"
    tls.create_topic(name, partitions)
    return name


def tls_conf(tls: TlsKafka, topic: str, group: str, ca_file: str) -> KqConf:
    return KqConf(Brokers=[tls.bootstrap], Group=group, Topic=topic, Offset="first", CaFile=ca_file)


def test_pusher_and_queue_with_the_cluster_ca_deliver_every_message_in_key_order(
    tls_kafka: TlsKafka, group: str
) -> None:
    # given a 3-partition topic on the TLS-only cluster
    topic = new_topic(tls_kafka, partitions=3)
    # when a Pusher with ca_file pushes 200 messages over 10 keys
    with Pusher([tls_kafka.bootstrap], topic, ca_file=tls_kafka.ca_file) as pusher:
        for i in range(200):
            pusher.push_with_key(f"user-{i % 10}", f"{i}")
    # and a Queue with CaFile consumes the topic
    recorder = Recorder()
    queue = Queue(
        tls_conf(tls_kafka, topic, group, tls_kafka.ca_file), recorder, **fast_queue_options()
    )
    with running(queue):
        assert recorder.wait_for(200, timeout=20)
    # then each message was handled once, every key in the order it was pushed
    assert sorted(int(value) for _, value in recorder.seen) == list(range(200))
    by_key = recorder.by_key()
    assert sorted(by_key) == [f"user-{k}" for k in range(10)]
    for key, values in by_key.items():
        numbers = [int(v) for v in values]
        assert numbers == sorted(numbers), f"key {key} out of order"
    # and the group's offsets were committed over TLS too
    committed = admin.committed_offsets(
        [tls_kafka.bootstrap], group, topic, kafka_config=tls_kafka.ssl
    )
    assert sum(offset or 0 for offset in committed.values()) == 200


def test_a_pusher_trusting_another_ca_fails_the_push_naming_the_certificate(
    tls_kafka: TlsKafka,
) -> None:
    # given a pusher whose ca_file holds a CA that did not sign the broker's certificate
    topic = new_topic(tls_kafka)
    with Pusher(
        [tls_kafka.bootstrap],
        topic,
        ca_file=tls_kafka.wrong_ca_file,
        sync_push=True,
        delivery_timeout=3,
    ) as pusher:
        # when it pushes synchronously
        started = time.monotonic()
        with pytest.raises(DeliveryError) as caught:
            pusher.push("secret")
        elapsed = time.monotonic() - started
    # then the push fails within delivery_timeout and the error says the certificate
    # could not be verified, pointing at the CA setting
    assert elapsed < 3 + SLACK
    message = str(caught.value)
    assert f"to topic {topic!r} was not delivered" in message
    # (librdkafka words the cause two ways, one without "SSL handshake failed" or
    # any setting: CI met the short one, so the hint names the setting itself)
    assert "certificate verify failed" in message
    assert "CaFile/ca_file (ssl.ca.location)" in message
    assert caught.value.count == 1


def test_a_queue_trusting_another_ca_does_not_start(tls_kafka: TlsKafka, group: str) -> None:
    # given a Queue whose CaFile holds a CA that did not sign the broker's certificate
    topic = new_topic(tls_kafka)
    recorder = Recorder()
    queue = Queue(
        tls_conf(tls_kafka, topic, group, tls_kafka.wrong_ca_file),
        recorder,
        connect_timeout=3,
        **fast_queue_options(),
    )
    # when it starts
    started = time.monotonic()
    with pytest.raises(BrokerUnavailableError) as caught:
        queue.start()
    # then it gives up within connect_timeout, having handled nothing
    assert time.monotonic() - started < 3 + SLACK
    assert f"no broker of Brokers=['{tls_kafka.bootstrap}'] answered" in str(caught.value)
    assert "within 3" in str(caught.value)
    assert "certificate verify failed" in str(caught.value)
    assert "CaFile/ca_file (ssl.ca.location)" in str(caught.value)
    assert recorder.seen == []


def test_a_plaintext_pusher_cannot_push_to_the_tls_port(
    tls_kafka: TlsKafka, caplog: pytest.LogCaptureFixture
) -> None:
    # given a pusher without ca_file, so speaking plaintext, pointed at the TLS port
    caplog.set_level(logging.INFO, logger=KAFKA_LOGGER.name)
    topic = new_topic(tls_kafka)
    with Pusher([tls_kafka.bootstrap], topic, sync_push=True, delivery_timeout=3) as pusher:
        # when it pushes synchronously
        started = time.monotonic()
        with pytest.raises(DeliveryError) as caught:
            pusher.push("x")
        elapsed = time.monotonic() - started
    # then the push fails within delivery_timeout, saying no broker could be reached
    assert elapsed < 3 + SLACK
    assert f"to topic {topic!r} was not delivered" in str(caught.value)
    # (librdkafka 2.16 passes only "1/1 brokers are down" to the error callback; some
    # versions also pass the disconnect itself, which the hint would then quote)
    assert "brokers are down" in str(caught.value) or "Disconnected" in str(caught.value)
    # and the zeroqueue.kafka logger says why: the TLS port dropped each connection
    # (librdkafka gives that to the log only, not to the client's error callback)
    dropped = [
        record
        for record in caplog.records
        if record.name == KAFKA_LOGGER.name
        and tls_kafka.bootstrap in record.getMessage()
        and "Disconnected" in record.getMessage()
    ]
    assert dropped, [record.getMessage() for record in caplog.records]
