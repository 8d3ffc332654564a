"""A test kit for handlers, Pushers and Queues: an in-memory broker with Kafka's semantics.

Point ``Brokers`` at a :class:`MemoryBroker` (``broker.brokers``, that is
``["memory://<name>"]``) and a Pusher, a Queue or a Server built from that config
runs against it unchanged, with no cluster and no group-join waits::

    broker = MemoryBroker()
    conf = KqConf(Brokers=broker.brokers, Group="billing", Topic="orders", Offset="first")
    with Pusher(broker.brokers, "orders") as pusher:
        pusher.push_with_key("user-1", "hello")
    with Queue(conf, handle, handle_signals=False).running() as queue:
        broker.wait_idle(queue)

Partitions are chosen by the same balancers as on Kafka, each partition keeps
its order, groups commit offsets, and :meth:`MemoryBroker.crash` drops a Queue
without committing, so what it handled since its last commit is delivered
again. Retry topics, dead letters and delayed messages work as on a cluster.
``zeroqueue.testing.pytest_plugin`` has pytest fixtures for it, for the embedded
broker and for Apache Kafka.
"""

from zeroqueue.testing._broker import MemoryBroker
from zeroqueue.testing._partitioners import fnv1a_partition, murmur2_partition
from zeroqueue.testing._source import MemorySource

__all__ = ["MemoryBroker", "MemorySource", "fnv1a_partition", "murmur2_partition"]
