"""zeroqueue.admin against the embedded broker."""

from __future__ import annotations

import pytest
from confluent_kafka import Consumer, TopicPartition

from tests.kafka_helpers import unique_name
from zeroqueue import BrokerUnavailableError, ZeroQueueError, admin
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
