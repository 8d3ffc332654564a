"""zeroqueue.admin against the embedded broker."""

from __future__ import annotations

from zeroqueue import admin


def test_max_message_bytes_reads_the_topics_setting(brokers, request) -> None:
    topic = f"admin-limit-{request.node.name}"
    admin.create_topic(brokers, topic, config={"max.message.bytes": "1000"})
    assert admin.max_message_bytes(brokers, topic) == 1000
