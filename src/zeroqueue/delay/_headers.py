"""The headers a delayed message carries on its way through the tiers.

Times are milliseconds since the epoch, 8 bytes big-endian (as Spring Kafka's
retry topics write theirs). On release the routing headers are removed;
``zeroqueue-delay-due`` stays, so a handler can see how late it came.
"""

from __future__ import annotations

__all__ = ["DUE", "HOP_DUE", "PARTITION", "PARTITIONER", "ROUTING", "TARGET"]

#: When the message is due in its topic (what the user asked for, rounded up).
DUE = "zeroqueue-delay-due"
#: When it leaves the tier it waits in now.
HOP_DUE = "zeroqueue-delay-hop-due"
#: The topic it is delayed for.
TARGET = "zeroqueue-delay-topic"
#: The partition of TARGET it goes to (a Python balancer chose it at push time).
PARTITION = "zeroqueue-delay-partition"
#: The librdkafka partitioner that chooses its partition of TARGET on release.
PARTITIONER = "zeroqueue-delay-partitioner"

#: Headers that steer the message: not passed on to its topic.
ROUTING = frozenset({HOP_DUE, TARGET, PARTITION, PARTITIONER})
