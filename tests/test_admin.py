"""zeroqueue.admin against the broker under test (and the secured Kafka for logins)."""

from __future__ import annotations

import time

import pytest
from confluent_kafka import Consumer, Producer, TopicPartition

from tests.kafka_helpers import SecureKafka, unique_name
from zeroqueue import AuthenticationError, BrokerUnavailableError, ZeroQueueError, admin
from zeroqueue._process import free_port


def test_max_message_bytes_reads_the_topics_setting(
    brokers: list[str], request: pytest.FixtureRequest
) -> None:
    topic = unique_name(request, "admin-limit")
    admin.create_topic(brokers, topic, config={"max.message.bytes": "1000"})
    assert admin.max_message_bytes(brokers, topic) == 1000


def test_max_message_bytes_with_no_broker_is_a_clear_error() -> None:
    address = f"127.0.0.1:{free_port()}"
    with pytest.raises(BrokerUnavailableError, match=r"topic 't'.* took longer than 1"):
        admin.max_message_bytes([address], "t", timeout=1)


def test_delete_group_forgets_its_commits(
    brokers: list[str], request: pytest.FixtureRequest
) -> None:
    topic = unique_name(request, "admin-group")
    group = unique_name(request, "admin-group")
    admin.create_topic(brokers, topic)
    consumer = Consumer({"bootstrap.servers": brokers[0], "group.id": group})
    consumer.commit(offsets=[TopicPartition(topic, 0, 5)], asynchronous=False)
    consumer.close()
    assert admin.committed_offsets(brokers, group, topic) == {0: 5}
    admin.delete_group(brokers, group)
    assert admin.committed_offsets(brokers, group, topic) == {0: None}
    admin.delete_group(brokers, group)  # a group that does not exist is no error


def test_delete_topic_removes_it(brokers: list[str], request: pytest.FixtureRequest) -> None:
    topic = unique_name(request, "admin-delete")
    admin.create_topic(brokers, topic)
    admin.delete_topic(brokers, topic)
    with pytest.raises(ZeroQueueError, match="does not exist"):
        admin.committed_offsets(brokers, "any", topic)
    admin.delete_topic(brokers, topic)  # a topic that does not exist is no error


@pytest.mark.kafka_only
def test_wait_for_metadata_logs_in_and_gives_up_at_once_when_the_login_is_refused(
    broker_kind: str, secure_kafka: SecureKafka
) -> None:
    broker, password = secure_kafka.broker, secure_kafka.users["bob"]
    listener = [broker.listener("SASL_PLAINTEXT")]
    # the right password: the cluster answers
    right = broker.client_config("SASL_PLAINTEXT", username="bob", password=password)
    admin.wait_for_metadata(listener, timeout=10, kafka_config=right)
    # a wrong one: refused at the broker's first answer, not after the 10 s timeout
    wrong = broker.client_config("SASL_PLAINTEXT", username="bob", password="bob-Wr0ng-1d2c")
    started = time.monotonic()
    with pytest.raises(AuthenticationError) as caught:
        admin.wait_for_metadata(listener, timeout=10, kafka_config=wrong)
    assert time.monotonic() - started < 2
    assert "the broker refused the SASL login of user 'bob' with mechanism SCRAM-SHA-512" in str(
        caught.value
    )
    assert "retrying within 10s would not fix" in str(caught.value)
    assert "bob-Wr0ng-1d2c" not in str(caught.value)


@pytest.mark.kafka_only
def test_consumer_lag_reads_the_watermarks(
    brokers: list[str], request: pytest.FixtureRequest
) -> None:
    # given 10 messages on two partitions, and a group that committed 3 of partition 0's
    topic = unique_name(request, "admin-lag")
    group = unique_name(request, "admin-lag")
    admin.create_topic(brokers, topic, partitions=2)
    producer = Producer({"bootstrap.servers": brokers[0]})
    for i in range(10):
        producer.produce(topic, b"v", partition=i % 2)
    assert producer.flush(10) == 0
    consumer = Consumer({"bootstrap.servers": brokers[0], "group.id": group})
    consumer.commit(offsets=[TopicPartition(topic, 0, 3)], asynchronous=False)
    consumer.close()
    # then the lag is what the group has not committed past (Tansu's watermarks are not
    # reliable: Apache Kafka only)
    lag = admin.consumer_lag(brokers, group, topic)
    assert [(p.partition, p.committed, p.low, p.high) for p in lag.values()] == [
        (0, 3, 0, 5),
        (1, None, 0, 5),
    ]
    assert [p.lag for p in lag.values()] == [2, 5]
