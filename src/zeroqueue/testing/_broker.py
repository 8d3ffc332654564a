"""MemoryBroker: an in-memory Kafka for unit tests of handlers, Pushers and Queues.

It keeps the semantics handlers meet on Kafka: topics of partitions, each an
ordered log of records with offsets, timestamps and headers; partitions chosen
by librdkafka's partitioners (so ``"hash"`` puts a key where go-queue puts it);
consumer groups whose members share partitions and commit offsets; a new owner
of a partition starting from the committed offset, so whatever was handled but
not committed when a member crashed is delivered again. Retry topics, dead
letters and delay tiers are topics like any other, so retries, dead letters and
delayed messages work as they do on a cluster.
"""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from confluent_kafka import KafkaError
from confluent_kafka import Message as KafkaMessage

from zeroqueue._kafka.backends import MEMORY_SCHEME
from zeroqueue.delay import releaser_group, tier_topics
from zeroqueue.engine.source import RebalanceListener
from zeroqueue.errors import ConfigError
from zeroqueue.message import Message
from zeroqueue.testing import _registry
from zeroqueue.testing._clients import MemoryAdminClient, MemoryMetadataConsumer, MemoryProducer
from zeroqueue.testing._group import Group, TopicPartitionKey, subscribes
from zeroqueue.testing._log import TopicLog, make_record, normal_headers
from zeroqueue.testing._partitioners import choose_partition
from zeroqueue.testing._source import MemorySource, missing_error

if TYPE_CHECKING:
    from zeroqueue.kq.queue import Queue

__all__ = ["MemoryBroker"]

_names = itertools.count(1)
# How often the wait_* helpers look again (they also wake on every produce and commit).
_LOOK_EVERY = 0.002


class MemoryBroker:
    """An in-memory broker that Pushers, Queues and Servers reach through ``brokers``.

    Give its :attr:`brokers` (``["memory://<name>"]``) wherever a config takes
    ``Brokers``: every client zeroqueue builds for that value is this broker's,
    with no change to the code under test. A ``memory://<name>`` nobody built
    yet is created on first use, so a config file may say ``memory://`` too.

    Args:
        name: The name in ``memory://<name>``; a fresh one by default.
        partitions: Partitions of a topic created on first use.
        auto_create_topics: Create a topic the first time a producer, a
            subscription or a metadata request names it (as a broker with
            ``auto.create.topics.enable``); False makes pushes to a missing topic
            fail, and subscriptions wait for it, as on a cluster without.
    """

    def __init__(
        self, name: str | None = None, *, partitions: int = 1, auto_create_topics: bool = True
    ) -> None:
        self.name = name if name is not None else f"kit-{next(_names)}"
        self.default_partitions = partitions
        self.auto_create_topics = auto_create_topics
        self._cond = threading.Condition(threading.RLock())
        self._topics: dict[str, TopicLog] = {}
        self._groups: dict[str, Group] = {}
        self._sources: list[MemorySource] = []
        _registry.register(self)

    # -- what a test reads and does -----------------------------------------------------

    @property
    def url(self) -> str:
        """``memory://<name>``."""
        return f"{MEMORY_SCHEME}{self.name}"

    @property
    def brokers(self) -> list[str]:
        """The ``Brokers`` value that reaches this broker: ``["memory://<name>"]``."""
        return [self.url]

    def create_topic(
        self, name: str, partitions: int | None = None, config: Mapping[str, str] | None = None
    ) -> None:
        """Create topic ``name`` (``partitions``: the broker's default); an existing one stays."""
        self._create(name, partitions or self.default_partitions, dict(config or {}))

    def delete_topic(self, name: str) -> bool:
        """Delete topic ``name`` and its records; False when there was none."""
        with self._cond:
            found = self._topics.pop(name, None)
            for group in self._groups.values():
                for key in [k for k in group.committed if k[0] == name]:
                    del group.committed[key]
            self._cond.notify_all()
        return found is not None

    def topics(self) -> list[str]:
        """Every topic's name, sorted."""
        with self._cond:
            return sorted(self._topics)

    def partition_count(self, topic: str) -> int:
        """How many partitions ``topic`` has."""
        with self._cond:
            return len(self._known(topic).partitions)

    def push(
        self,
        topic: str,
        value: str | bytes | None,
        key: str | bytes | None = None,
        *,
        headers: Any = None,
        partition: int | None = None,
        balancer: str = "hash",
    ) -> Message:
        """Append one message as a Pusher with ``balancer`` would ("hash" or "murmur2")."""
        partitioner = {"hash": "fnv1a_random", "murmur2": "murmur2_random"}.get(balancer)
        if partitioner is None:
            raise ConfigError(f"balancer: got {balancer!r}; expected 'hash' or 'murmur2'")
        raw_key = key.encode() if isinstance(key, str) else key
        raw_value = value.encode() if isinstance(value, str) else value
        record, error = self._produce(
            topic,
            partition=-1 if partition is None else partition,
            key=raw_key,
            value=raw_value,
            headers=headers,
            timestamp=0,
            partitioner=lambda count: choose_partition(partitioner, raw_key, count),
            create=True,
        )
        if error is not None:
            raise ConfigError(f"cannot push to {topic!r}: {error.str()}")
        return Message.from_kafka(record)

    def records(self, topic: str, partition: int | None = None) -> list[KafkaMessage]:
        """The raw records of ``topic`` (or of one partition), partition by partition."""
        with self._cond:
            found = self._known(topic)
            chosen = found.partitions if partition is None else [found.partitions[partition]]
            return [record for log in chosen for record in log.records]

    def messages(self, topic: str, partition: int | None = None) -> list[Message]:
        """The messages of ``topic`` (or one partition), in offset order per partition."""
        return [Message.from_kafka(record) for record in self.records(topic, partition)]

    def values(self, topic: str, partition: int | None = None) -> list[str]:
        """The values of :meth:`messages`, as text."""
        return [message.value_str for message in self.messages(topic, partition)]

    def end_offsets(self, topic: str) -> dict[int, int]:
        """Per partition, the offset the next record gets (the high watermark)."""
        with self._cond:
            found = self._topics.get(topic)
            if found is None:
                return {}
            return {p: log.end for p, log in enumerate(found.partitions)}

    def committed(self, group: str, topic: str) -> dict[int, int | None]:
        """Per partition of ``topic``, the offset ``group`` committed (None: never)."""
        with self._cond:
            count = len(self._known(topic).partitions)
            found = self._groups.get(group)
            offsets = {} if found is None else found.committed
            return {p: offsets.get((topic, p)) for p in range(count)}

    def assignment(self, group: str) -> list[list[TopicPartitionKey]]:
        """What each live member of ``group`` owns, in the order they joined."""
        with self._cond:
            found = self._groups.get(group)
            if found is None:
                return []
            return [sorted(m.owned) for m in found.members]

    def crash(self, target: Queue | str) -> None:
        """Take a Queue (or every member of a group) down as a killed process goes down.

        From this call on its members commit nothing (not even on the way out),
        and their partitions go at once to the group's other members, or to the
        next Queue of the group, from the last committed offset: every message
        handled since the last commit is delivered again, as Kafka does after a
        crash. Its engine drops what it fetched and had not started (a killed
        process handles nothing more) and its Queue stops (without waiting for
        it); handlers already running finish, their work uncommitted. Callable
        from inside a handler: "crash after the n-th message".
        """
        queue = None if isinstance(target, str) else target
        with self._cond:
            if queue is None:
                victims = [s for s in self._sources if s.group == target and s.live]
            else:
                engines = {id(engine) for engine in queue.engines}
                victims = [s for s in self._sources if id(s.listener) in engines and s.live]
            stop = None if queue is None else (lambda: queue.stop(wait=False))
            for source in victims:
                source.crashed = True
                # Its engine drops these (nothing it fetched is handled any more) and
                # stops its Queue, on its fetch thread: see MemorySource.fetch.
                source.lost_on_crash = sorted(source.owned)
                # And at once: its handlers must not take the next message of a batch
                # before the fetch thread gets there (the engine's own flag for a
                # partition it lost, which its processors read before each message).
                progress = getattr(source.listener, "_progress", {})
                for key in source.lost_on_crash:
                    if key in progress:
                        progress[key].revoked = True
                source.after_crash = stop
                source.owned.clear()
                source.to_assign.clear()
                source.to_revoke.clear()
                self._leave(source)
            self._cond.notify_all()
        if queue is not None and not victims:
            queue.stop(wait=False)

    def wait_idle(self, *queues: Queue, timeout: float = 10.0) -> None:
        """Wait until everything pushed so far has been handled; no sleeping in tests.

        Returns once each Queue given has joined its group, and every member of
        every group owns what its subscription takes, has fetched all of it and
        handled all it fetched: retried messages waiting for their retry topic's
        delay and delayed messages waiting in their tiers count as not handled
        yet. Commits may still be due (see :meth:`wait_committed`).

        Raises:
            TimeoutError: not idle within ``timeout`` seconds; says what is pending.
        """
        self._wait(lambda: self._pending(queues), timeout, "idle")

    def wait_committed(self, group: str, topic: str | None = None, timeout: float = 10.0) -> None:
        """Wait until ``group`` committed the end of ``topic`` (default: of each topic it reads).

        Raises:
            TimeoutError: not committed within ``timeout`` seconds.
        """

        def pending() -> str | None:
            found = self._groups.get(group)
            if found is None:
                return f"group {group!r} does not exist"
            topics = [topic] if topic is not None else self._group_topics(found)
            for name in topics:
                for partition, end in self.end_offsets(name).items():
                    done = found.committed.get((name, partition), 0)
                    if done < end:
                        return f"{group!r} committed {name}[{partition}] up to {done} of {end}"
            return None

        self._wait(pending, timeout, "committed")

    def close(self) -> None:
        """Forget this broker: its ``memory://`` name then names a fresh, empty one."""
        _registry.unregister(self)

    def __enter__(self) -> MemoryBroker:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<MemoryBroker {self.url} topics={len(self._topics)} groups={len(self._groups)}>"

    # -- the clients' side (zeroqueue._kafka.backends.Backend) ----------------------------

    def producer(self, settings: dict[str, Any]) -> MemoryProducer:
        """A stand-in for ``confluent_kafka.Producer``."""
        return MemoryProducer(self, settings)

    def admin_client(self, settings: dict[str, Any]) -> MemoryAdminClient:
        """A stand-in for ``AdminClient``."""
        return MemoryAdminClient(self, settings)

    def consumer(self, settings: dict[str, Any]) -> MemoryMetadataConsumer:
        """A stand-in for a ``Consumer`` that reads metadata and offsets only."""
        return MemoryMetadataConsumer(self, settings)

    def source(
        self,
        settings: dict[str, Any],
        topics: Sequence[str],
        listener: RebalanceListener,
        *,
        missing_topic_timeout: float = 15.0,
        from_start: Collection[str] = (),
    ) -> MemorySource:
        """A group member: the engine's Source (a Queue's ``source_factory``)."""
        return MemorySource(
            self,
            settings,
            topics,
            listener,
            missing_topic_timeout=missing_topic_timeout,
            from_start=from_start,
        )

    # -- internals, under self._cond ----------------------------------------------------

    def _known(self, topic: str) -> TopicLog:
        found = self._topics.get(topic)
        if found is None:
            raise KeyError(f"topic {topic!r} does not exist on {self.url}")
        return found

    def _topic(self, name: str, *, create: bool) -> TopicLog | None:
        found = self._topics.get(name)
        if found is None and create and self.auto_create_topics:
            self._create(name, self.default_partitions, {})
            found = self._topics[name]
        return found

    def _create(self, name: str, partitions: int, config: dict[str, str]) -> bool:
        with self._cond:
            if name in self._topics:
                return False
            self._topics[name] = TopicLog.new(name, partitions, config)
            for group in self._groups.values():
                if any(subscribes(m, name) for m in group.members):
                    self._rebalance(group.name)
            self._cond.notify_all()
            return True

    def _produce(
        self,
        topic: str,
        *,
        partition: int,
        key: bytes | None,
        value: bytes | None,
        headers: Any,
        timestamp: int,
        partitioner: Callable[[int], int],
        create: bool,
    ) -> tuple[KafkaMessage, KafkaError | None]:
        stored_headers = normal_headers(headers)
        with self._cond:
            found = self._topic(topic, create=create)
            if found is None:
                failed = self._unsent(topic, -1, key, value, stored_headers)
                return failed, KafkaError(KafkaError.UNKNOWN_TOPIC_OR_PART)
            count = len(found.partitions)
            chosen = partitioner(count) if partition is None or partition < 0 else partition
            if not 0 <= chosen < count:
                failed = self._unsent(topic, chosen, key, value, stored_headers)
                return failed, KafkaError(KafkaError._UNKNOWN_PARTITION)
            record = found.append(
                chosen, key=key, value=value, headers=stored_headers, timestamp_ms=timestamp
            )
            self._cond.notify_all()
            return record, None

    @staticmethod
    def _unsent(
        topic: str, partition: int, key: bytes | None, value: bytes | None, headers: Any
    ) -> KafkaMessage:
        """The record of a message that was not stored (for its failed delivery report)."""
        return make_record(
            topic,
            partition=partition,
            offset=-1001,
            key=key,
            value=value,
            headers=headers,
            timestamp_ms=0,
        )

    def _join(self, source: MemorySource) -> None:
        with self._cond:
            for name in source.subscription:
                if not name.startswith("^"):
                    self._topic(name, create=True)
            group = self._groups.setdefault(source.group, Group(source.group))
            group.members.append(source)
            self._sources.append(source)
            self._rebalance(source.group)
            self._cond.notify_all()

    def _leave(self, source: MemorySource) -> None:
        with self._cond:
            if source in self._sources:
                self._sources.remove(source)
            group = self._groups.get(source.group)
            if group is not None:
                group.leave(source)
                self._rebalance(source.group)
            self._cond.notify_all()

    def _rebalance(self, group: str) -> None:
        found = self._groups.get(group)
        if found is not None:
            found.rebalance({name: len(t.partitions) for name, t in self._topics.items()})
            self._cond.notify_all()

    def _commit(self, group: str, key: TopicPartitionKey, offset: int) -> None:
        self._groups.setdefault(group, Group(group)).committed[key] = offset

    def _start_offset(self, source: MemorySource, key: TopicPartitionKey) -> int:
        found = self._groups.get(source.group)
        committed = None if found is None else found.committed.get(key)
        if committed is not None:
            return committed
        if key[0] in source.from_start or source.from_earliest:
            return 0
        return self._topics[key[0]].partitions[key[1]].end

    def _check_missing(self, source: MemorySource) -> None:
        if time.monotonic() - source.joined_at < source.missing_topic_timeout:
            return
        for name in source.subscription:
            if not name.startswith("^") and name not in self._topics:
                raise missing_error(source, name)

    def _delete_group(self, name: str) -> str:
        with self._cond:
            found = self._groups.get(name)
            if found is None:
                return "missing"
            if found.members:
                return "busy"
            del self._groups[name]
            return "deleted"

    def _group_topics(self, group: Group) -> list[str]:
        topics = {key[0] for key in group.committed}
        for member in group.members:
            topics.update(t for t in self._topics if subscribes(member, t))
        return sorted(topics)

    def _pending(self, queues: Iterable[Queue]) -> str | None:
        """What is not idle yet, in words; None when idle."""
        live = {id(s.listener) for s in self._sources if s.live}
        for queue in queues:
            engines = queue.engines
            if not engines or any(id(engine) not in live for engine in engines):
                return f"{queue!r} has not joined its group yet"
        for source in self._sources:
            if source.to_assign or source.to_revoke:
                return f"a rebalance of group {source.group!r} is under way"
            if not source.caught_up():
                return f"a member of group {source.group!r} has not handled all it owns"
        for group in self._groups.values():
            if not group.members:
                continue
            owned = set(group.owned_keys())
            for topic in self._group_topics(group):
                if not any(subscribes(m, topic) for m in group.members):
                    continue
                for partition in range(len(self._topics[topic].partitions)):
                    if (topic, partition) not in owned:
                        return f"{topic}[{partition}] of group {group.name!r} has no owner yet"
            for topic in self._group_topics(group):
                waiting = self._delayed_waiting(topic)
                if waiting:
                    return waiting
        return None

    def _delayed_waiting(self, topic: str) -> str | None:
        """Delayed messages of ``topic`` not released yet (by the releasers' group)."""
        releasers = self._groups.get(releaser_group(topic))
        for tier in tier_topics(topic):
            found = self._topics.get(tier)
            if found is None:
                return None  # no tiers: nothing was delayed
            for partition, log in enumerate(found.partitions):
                done = 0 if releasers is None else releasers.committed.get((tier, partition), 0)
                if log.end > done and (releasers is None or not releasers.members):
                    return f"delayed messages of {topic!r} wait in {tier}[{partition}]"
        return None

    def _wait(self, pending: Callable[[], str | None], timeout: float, what: str) -> None:
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                reason = pending()
                if reason is None:
                    return
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError(f"{self.url} not {what} after {timeout}s: {reason}")
                self._cond.wait(min(left, _LOOK_EVERY))
