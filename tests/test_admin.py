"""zeroqueue.admin against the embedded broker."""

from __future__ import annotations

import pytest

from zeroqueue import BrokerUnavailableError, admin
from zeroqueue._process import free_port


def test_max_message_bytes_reads_the_topics_setting(brokers, request) -> None:
    topic = f"admin-limit-{request.node.name}"
    admin.create_topic(brokers, topic, config={"max.message.bytes": "1000"})
    assert admin.max_message_bytes(brokers, topic) == 1000


def test_max_message_bytes_with_no_broker_is_a_clear_error() -> None:
    address = f"127.0.0.1:{free_port()}"
    with pytest.raises(BrokerUnavailableError, match=r"topic 't'.* took longer than 1"):
        admin.max_message_bytes([address], "t", timeout=1)
