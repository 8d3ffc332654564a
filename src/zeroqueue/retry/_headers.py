"""The headers a retried or dead-lettered message carries: Spring Kafka's names and encodings.

Spring Kafka's retry topics and DeadLetterPublishingRecoverer are the most used
convention for these, so a Spring consumer (or its tooling) reads zeroqueue's
retry and dead-letter topics, and the reverse. Numbers are big-endian binary:
zeroqueue writes 4 bytes for a partition and an attempt count, 8 for an offset
and a timestamp (milliseconds since the epoch); :func:`decode_int` also reads
the shorter forms Spring writes (``BigInteger.toByteArray()``, one byte).
"""

from __future__ import annotations

from zeroqueue._kafka.headers import decode_int, encode_int, encode_long, last
from zeroqueue.message import ATTEMPTS_HEADER

__all__ = [
    "ATTEMPTS",
    "BACKOFF_TIMESTAMP",
    "EXCEPTION_CAUSE_FQCN",
    "EXCEPTION_FQCN",
    "EXCEPTION_MESSAGE",
    "EXCEPTION_STACKTRACE",
    "ORIGINAL_CONSUMER_GROUP",
    "ORIGINAL_OFFSET",
    "ORIGINAL_PARTITION",
    "ORIGINAL_TIMESTAMP",
    "ORIGINAL_TOPIC",
    "OWN_HEADERS",
    "RETRY_ORIGINAL_TIMESTAMP",
    "decode_int",
    "encode_int",
    "encode_long",
    "last",
]

#: The original record's topic, partition, offset and timestamp (Spring's DLT headers).
ORIGINAL_TOPIC = "kafka_dlt-original-topic"
ORIGINAL_PARTITION = "kafka_dlt-original-partition"
ORIGINAL_OFFSET = "kafka_dlt-original-offset"
ORIGINAL_TIMESTAMP = "kafka_dlt-original-timestamp"
#: The consumer group that gave up on it.
ORIGINAL_CONSUMER_GROUP = "kafka_dlt-original-consumer-group"
#: The last error: its type (module.qualname), its cause's type, message, traceback.
EXCEPTION_FQCN = "kafka_dlt-exception-fqcn"
EXCEPTION_CAUSE_FQCN = "kafka_dlt-exception-cause-fqcn"
EXCEPTION_MESSAGE = "kafka_dlt-exception-message"
EXCEPTION_STACKTRACE = "kafka_dlt-exception-stacktrace"
#: Attempts made so far (Spring's retry topic headers).
ATTEMPTS = ATTEMPTS_HEADER
#: When the message is due again, in a retry topic.
BACKOFF_TIMESTAMP = "retry_topic-backoff-timestamp"
#: The original record's timestamp (Spring's retry topic header; the same time as
#: ORIGINAL_TIMESTAMP, kept from the first move on).
RETRY_ORIGINAL_TIMESTAMP = "retry_topic-original-timestamp"

#: Every header above: replaced, not repeated, when a message moves again.
OWN_HEADERS = frozenset(
    {
        ORIGINAL_TOPIC,
        ORIGINAL_PARTITION,
        ORIGINAL_OFFSET,
        ORIGINAL_TIMESTAMP,
        ORIGINAL_CONSUMER_GROUP,
        EXCEPTION_FQCN,
        EXCEPTION_CAUSE_FQCN,
        EXCEPTION_MESSAGE,
        EXCEPTION_STACKTRACE,
        ATTEMPTS,
        BACKOFF_TIMESTAMP,
        RETRY_ORIGINAL_TIMESTAMP,
    }
)
