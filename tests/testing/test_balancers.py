"""The kit puts each key on the partition a real broker's producer does."""

from __future__ import annotations

import pytest

from tests.kafka_helpers import read_topic
from zeroqueue import Pusher
from zeroqueue.embedded import BrokerProcess
from zeroqueue.kq import Balancer
from zeroqueue.testing import MemoryBroker


@pytest.mark.parametrize("balancer", ["hash", "murmur2"])
def test_each_key_lands_on_the_same_partition_as_on_the_broker(
    kafka: BrokerProcess, new_topic: object, balancer: Balancer
) -> None:
    # given 300 keys pushed to a 7-partition topic, on the broker and on the kit
    keys = [f"key-{n}" for n in range(300)]
    topic = new_topic(7)  # type: ignore[operator]
    with Pusher([kafka.bootstrap_servers], topic, balancer=balancer) as pusher:
        for key in keys:
            pusher.push_with_key(key, key)
    with MemoryBroker() as memory:
        memory.create_topic(topic, 7)
        with Pusher(memory.brokers, topic, balancer=balancer) as pusher:
            for key in keys:
                pusher.push_with_key(key, key)
        on_kit = {m.key_str: m.partition for m in memory.messages(topic)}

    # then every key is on the same partition in both
    on_broker = {
        (r.key() or b"").decode(): r.partition()
        for r in read_topic([kafka.bootstrap_servers], topic, len(keys))
    }
    assert on_kit == on_broker
    assert len(set(on_kit.values())) == 7
