"""Small administrative helpers: reach a cluster, create and delete topics and groups, read both."""

from __future__ import annotations

import concurrent.futures
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from confluent_kafka import KafkaError, KafkaException, TopicPartition
from confluent_kafka.admin import (  # type: ignore[attr-defined]  # public, not in __all__
    AdminClient,
    ConfigResource,
    ResourceType,
)
from confluent_kafka.cimpl import NewTopic

from zeroqueue._kafka import backends
from zeroqueue._kafka.settings import ClientErrors, Refusal, client_settings, refusal_words
from zeroqueue.errors import AuthenticationError, BrokerUnavailableError, ZeroQueueError

__all__ = [
    "PartitionLag",
    "committed_offsets",
    "consumer_lag",
    "create_topic",
    "create_topics",
    "delete_group",
    "delete_topic",
    "existing_topics",
    "max_message_bytes",
    "partition_count",
    "replication_factor",
    "wait_for_metadata",
]

# How long wait_for_metadata waits for an answer before it looks at what librdkafka
# reported meanwhile (confluent-kafka serves error_cb only in poll(), not while a
# metadata request waits): a refused login is found within about this much of
# the broker's refusal.
_METADATA_SLICE = 0.2


def _admin(brokers: Sequence[str], kafka_config: Mapping[str, Any] | None) -> AdminClient:
    return backends.admin_client(client_settings(brokers, overrides=kafka_config))


def wait_for_metadata(
    brokers: Sequence[str],
    *,
    timeout: float = 10.0,
    kafka_config: Mapping[str, Any] | None = None,
    cancelled: Callable[[], bool] | None = None,
) -> None:
    """Return once a broker of ``brokers`` answers a metadata request.

    With ``cancelled``, it also returns (without raising) as soon as that says so:
    a Queue stopped while it waits for its cluster.

    Connection trouble is retried until ``timeout``; a refusal is not, since no
    retry can fix it: as soon as librdkafka reports that the broker refused the
    SASL login or the TLS handshake failed (about half a second after the first
    connection against Apache Kafka, which delays refusals), this raises.

    Raises:
        AuthenticationError: the cluster refused the SASL credentials, or its
            certificate did not verify (or the TLS handshake failed otherwise).
        BrokerUnavailableError: no broker answered within ``timeout`` seconds.

    """
    errors = ClientErrors()
    settings = client_settings(brokers, overrides=kafka_config) | {"error_cb": errors.record}
    client = backends.admin_client(settings)
    started = time.monotonic()
    deadline = started + timeout
    while True:
        if cancelled is not None and cancelled():
            return
        slice_end = min(time.monotonic() + _METADATA_SLICE, deadline)
        try:
            client.list_topics(timeout=max(slice_end - time.monotonic(), 0.001))
            return
        except KafkaException as exc:
            failure = exc
        # Serve the error_cb calls that say why (TLS, SASL, refused, ...), waiting
        # out the slice if the request failed early so the loop does not spin.
        client.poll(max(slice_end - time.monotonic(), 0.0))
        if errors.refused is not None and errors.refusal is not None:
            what, fix = refusal_words(errors.refusal)
            raise AuthenticationError(
                f"no broker of Brokers={list(brokers)} answered a metadata request: "
                f"{_refused(errors.refusal, what, settings)}, which retrying within {timeout}s "
                f"would not fix, so this gave up after {time.monotonic() - started:.1f}s: "
                f"{errors.refused.str()}; {fix}"
            ) from failure
        if time.monotonic() >= deadline:
            raise BrokerUnavailableError(
                f"no broker of Brokers={list(brokers)} answered a metadata request "
                f"within {timeout}s: {failure.args[0].str() if failure.args else failure}"
                f"{errors.hint()}"
            ) from failure


def _refused(refusal: Refusal, what: str, settings: Mapping[str, Any]) -> str:
    """``what`` was refused, naming the SASL user and mechanism (never the password)."""
    if refusal != "sasl":
        return what
    user, mechanism = settings.get("sasl.username"), settings.get("sasl.mechanism")
    return (
        what
        + (f" of user {user!r}" if user else "")
        + (f" with mechanism {mechanism}" if mechanism else "")
    )


def create_topic(
    brokers: Sequence[str],
    name: str,
    *,
    partitions: int = 1,
    replication_factor: int = 1,
    config: Mapping[str, str] | None = None,
    timeout: float = 10.0,
    kafka_config: Mapping[str, Any] | None = None,
) -> None:
    """Create topic ``name`` unless it exists, and wait until its partitions are visible.

    Raises:
        BrokerUnavailableError: the cluster did not answer within ``timeout``.
        ZeroQueueError: the broker refused to create the topic.

    """
    create_topics(
        brokers,
        [name],
        partitions=partitions,
        replication_factor=replication_factor,
        config=config,
        timeout=timeout,
        kafka_config=kafka_config,
    )


def create_topics(
    brokers: Sequence[str],
    names: Sequence[str],
    *,
    partitions: int = 1,
    replication_factor: int = 1,
    config: Mapping[str, str] | None = None,
    timeout: float = 10.0,
    kafka_config: Mapping[str, Any] | None = None,
) -> None:
    """Create the topics of ``names`` that do not exist, in one request; wait until visible.

    Raises like :func:`create_topic`.
    """
    if not names:
        return
    client = _admin(brokers, kafka_config)
    futures = client.create_topics(
        [
            NewTopic(name, partitions, replication_factor, config=dict(config or {}))
            for name in names
        ],
        operation_timeout=timeout,
        request_timeout=timeout,
    )
    for name, future in futures.items():
        _settle(
            future, timeout, f"creating topic {name!r}", brokers, KafkaError.TOPIC_ALREADY_EXISTS
        )
    deadline = time.monotonic() + timeout
    for name in names:
        while True:
            metadata = client.list_topics(name, timeout=timeout).topics.get(name)
            if metadata is not None and metadata.error is None and metadata.partitions:
                break
            if time.monotonic() > deadline:
                raise BrokerUnavailableError(
                    f"topic {name!r} was created but its metadata did not appear within {timeout}s"
                )
            time.sleep(0.05)


def existing_topics(
    brokers: Sequence[str],
    names: Sequence[str],
    *,
    timeout: float = 10.0,
    kafka_config: Mapping[str, Any] | None = None,
) -> set[str]:
    """Which of ``names`` exist (one metadata request for all topics).

    Raises:
        BrokerUnavailableError: the cluster did not answer within ``timeout``.
    """
    client = _admin(brokers, kafka_config)
    try:
        topics = client.list_topics(timeout=timeout).topics
    except KafkaException as exc:
        raise BrokerUnavailableError(
            f"listing the topics of Brokers={list(brokers)} failed: "
            f"{exc.args[0].str() if exc.args else exc}"
        ) from exc
    return {name for name in names if name in topics and topics[name].error is None}


def replication_factor(
    brokers: Sequence[str],
    topic: str,
    *,
    timeout: float = 10.0,
    kafka_config: Mapping[str, Any] | None = None,
) -> int:
    """How many replicas ``topic``'s first partition has (what topics made for it copy).

    Raises like :func:`partition_count`.
    """
    client = _admin(brokers, kafka_config)
    try:
        found = client.list_topics(topic, timeout=timeout).topics.get(topic)
    except KafkaException as exc:
        raise BrokerUnavailableError(
            f"reading the replicas of {topic!r} from Brokers={list(brokers)} failed: "
            f"{exc.args[0].str() if exc.args else exc}"
        ) from exc
    if found is None or found.error is not None or not found.partitions:
        raise ZeroQueueError(f"topic {topic!r} does not exist on Brokers={list(brokers)}")
    return max(1, len(found.partitions[min(found.partitions)].replicas))


def delete_topic(
    brokers: Sequence[str],
    name: str,
    *,
    timeout: float = 10.0,
    kafka_config: Mapping[str, Any] | None = None,
) -> None:
    """Delete topic ``name`` and its messages; a topic that does not exist is no error.

    Raises:
        BrokerUnavailableError: the cluster did not answer within ``timeout``.
        ZeroQueueError: the broker refused to delete the topic.

    """
    client = _admin(brokers, kafka_config)
    future = client.delete_topics([name], operation_timeout=timeout, request_timeout=timeout)[name]
    _settle(future, timeout, f"deleting topic {name!r}", brokers, KafkaError.UNKNOWN_TOPIC_OR_PART)


def delete_group(
    brokers: Sequence[str],
    group: str,
    *,
    timeout: float = 10.0,
    kafka_config: Mapping[str, Any] | None = None,
) -> None:
    """Delete consumer group ``group`` and its committed offsets (it must have no members).

    A group that does not exist is no error.

    Raises:
        BrokerUnavailableError: the cluster did not answer within ``timeout``.
        ZeroQueueError: the broker refused, e.g. because the group still has members.

    """
    client = _admin(brokers, kafka_config)
    future = client.delete_consumer_groups([group], request_timeout=timeout)[group]
    _settle(future, timeout, f"deleting group {group!r}", brokers, KafkaError.GROUP_ID_NOT_FOUND)


def _settle(
    future: concurrent.futures.Future[Any],
    timeout: float,
    doing: str,
    brokers: Sequence[str],
    fine: int | None = None,
) -> Any:
    """The result of an admin request, or None for error code ``fine``; else zeroqueue's error."""
    try:
        return future.result(timeout=timeout)
    except KafkaException as exc:
        error: KafkaError = exc.args[0]
        if error.code() == fine:
            return None
        if error.code() in (KafkaError._TIMED_OUT, KafkaError._TRANSPORT):
            # The client's own timeout can fire before ours: say the same either way.
            raise BrokerUnavailableError(
                f"{doing} on Brokers={list(brokers)} took longer than {timeout}s: {error.str()}"
            ) from exc
        raise ZeroQueueError(f"{doing} failed: {error.str()}") from exc
    except concurrent.futures.TimeoutError as exc:
        raise BrokerUnavailableError(
            f"{doing} on Brokers={list(brokers)} took longer than {timeout}s"
        ) from exc


def partition_count(
    brokers: Sequence[str],
    topic: str,
    *,
    timeout: float = 10.0,
    kafka_config: Mapping[str, Any] | None = None,
) -> int:
    """How many partitions ``topic`` has.

    Raises:
        BrokerUnavailableError: the cluster did not answer within ``timeout``.
        ZeroQueueError: ``topic`` does not exist.

    """
    client = _admin(brokers, kafka_config)
    try:
        found = client.list_topics(topic, timeout=timeout).topics.get(topic)
    except KafkaException as exc:
        raise BrokerUnavailableError(
            f"reading the partitions of {topic!r} from Brokers={list(brokers)} failed: "
            f"{exc.args[0].str() if exc.args else exc}"
        ) from exc
    if found is None or found.error is not None or not found.partitions:
        raise ZeroQueueError(f"topic {topic!r} does not exist on Brokers={list(brokers)}")
    return len(found.partitions)


def max_message_bytes(
    brokers: Sequence[str],
    topic: str,
    *,
    timeout: float = 10.0,
    kafka_config: Mapping[str, Any] | None = None,
) -> int | None:
    """The largest record batch ``topic`` accepts: its effective ``max.message.bytes``.

    Kafka reports the topic's own setting, or the broker default it inherits.
    None when the cluster does not say (Tansu reports only settings made on the
    topic itself).

    Raises:
        BrokerUnavailableError: the cluster did not answer within ``timeout``.
        ZeroQueueError: the configuration cannot be read (on Kafka, also when ``topic``
            does not exist).

    """
    client = _admin(brokers, kafka_config)
    resource = ConfigResource(ResourceType.TOPIC, topic)
    future = client.describe_configs([resource], request_timeout=timeout)[resource]
    entries = _settle(future, timeout, f"reading the configuration of topic {topic!r}", brokers)
    entry = entries.get("max.message.bytes")
    return None if entry is None or entry.value is None else int(entry.value)


def committed_offsets(
    brokers: Sequence[str],
    group: str,
    topic: str,
    *,
    timeout: float = 10.0,
    kafka_config: Mapping[str, Any] | None = None,
) -> dict[int, int | None]:
    """The offset ``group`` committed on each partition of ``topic`` (``None``: never).

    A committed offset is the next one the group will read. Reads only: it does
    not join the group, so it is safe while the group runs.

    Raises:
        BrokerUnavailableError: the cluster did not answer within ``timeout``.
        ZeroQueueError: ``topic`` does not exist.

    """
    settings = client_settings(brokers, overrides=kafka_config) | {
        "group.id": group,
        "enable.auto.commit": False,
    }
    consumer = backends.consumer(settings)
    try:
        metadata = consumer.list_topics(topic, timeout=timeout).topics.get(topic)
        if metadata is None or metadata.error is not None or not metadata.partitions:
            raise ZeroQueueError(f"topic {topic!r} does not exist on Brokers={list(brokers)}")
        positions = [TopicPartition(topic, p) for p in sorted(metadata.partitions)]
        committed = consumer.committed(positions, timeout=timeout)
        for position in committed:
            if position.error is not None:
                raise ZeroQueueError(
                    f"reading the offset of group {group!r} on {topic}[{position.partition}] "
                    f"failed: {position.error.str()}"
                )
        return {p.partition: p.offset if p.offset >= 0 else None for p in committed}
    except KafkaException as exc:
        raise BrokerUnavailableError(
            f"reading the offsets of group {group!r} on {topic!r} from Brokers={list(brokers)} "
            f"failed: {exc.args[0].str() if exc.args else exc}"
        ) from exc
    finally:
        consumer.close()


@dataclass(frozen=True)
class PartitionLag:
    """Where a consumer group stands on one partition."""

    partition: int
    #: The next offset the group will read, or None when it never committed here.
    committed: int | None
    #: The first offset still on the broker.
    low: int
    #: The offset the next message pushed to the partition will get.
    high: int

    @property
    def lag(self) -> int:
        """Messages on the partition the group has not committed past yet."""
        start = self.low if self.committed is None else max(self.committed, self.low)
        return max(self.high - start, 0)


def consumer_lag(
    brokers: Sequence[str],
    group: str,
    topic: str,
    *,
    timeout: float = 10.0,
    kafka_config: Mapping[str, Any] | None = None,
) -> dict[int, PartitionLag]:
    """Per partition of ``topic``: ``group``'s committed offset, the watermarks, the lag.

    Reads only, without joining the group. Needs a broker that reports its
    watermarks (Apache Kafka does; the embedded broker's high watermark is not
    reliable).

    Raises:
        BrokerUnavailableError: the cluster did not answer within ``timeout``.
        ZeroQueueError: ``topic`` does not exist.

    """
    committed = committed_offsets(brokers, group, topic, timeout=timeout, kafka_config=kafka_config)
    settings = client_settings(brokers, overrides=kafka_config) | {
        "group.id": group,
        "enable.auto.commit": False,
    }
    consumer = backends.consumer(settings)
    try:
        lags = {}
        for partition, offset in committed.items():
            low, high = consumer.get_watermark_offsets(
                TopicPartition(topic, partition), timeout=timeout
            )
            lags[partition] = PartitionLag(partition, offset, low, high)
        return lags
    except KafkaException as exc:
        raise BrokerUnavailableError(
            f"reading the watermarks of {topic!r} from Brokers={list(brokers)} failed: "
            f"{exc.args[0].str() if exc.args else exc}"
        ) from exc
    finally:
        consumer.close()
