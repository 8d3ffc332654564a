"""A Source without Kafka, to drive the engine's fetch loop where a broker cannot time it.

It behaves as the engine's KafkaSource does where the engine can tell: partitions
are assigned on the first fetch, fetch() blocks up to its timeout for a first
record (and wakes when one is added), paused partitions deliver nothing, and
close() revokes what is assigned before it returns, as librdkafka's close does.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence

from confluent_kafka import KafkaError, KafkaException
from confluent_kafka import Message as KafkaMessage

from zeroqueue.engine.conn import ConnEngine, EngineOptions
from zeroqueue.engine.handlers import (
    ConsumeErrorHandler,
    FailurePolicy,
    Handler,
    resolve_handler,
)
from zeroqueue.engine.source import RebalanceListener, TopicPartitionKey


def record(
    partition: int, offset: int, value: str, key: str = "k", topic: str = "t"
) -> KafkaMessage:
    return KafkaMessage(
        topic=topic, partition=partition, offset=offset, key=key.encode(), value=value.encode()
    )


class FakeSource:
    """Records to hand out per partition, and what the engine did with them."""

    def __init__(self, listener: RebalanceListener, partitions: Sequence[TopicPartitionKey]):
        self.listener = listener
        self.partitions = list(partitions)
        # Every record of a partition, and the position of the next to fetch.
        self._records: dict[TopicPartitionKey, list[KafkaMessage]] = {key: [] for key in partitions}
        self._position = dict.fromkeys(partitions, 0)
        self._next_offset = dict.fromkeys(partitions, 0)
        self._changed = threading.Condition()
        self.assigned = False
        self.paused: set[TopicPartitionKey] = set()
        self.commits: list[tuple[str, int, int]] = []
        self.failing_commits = 0
        self._failed: list[TopicPartitionKey] = []
        self.fetches = 0
        self.zero_wait_fetches = 0
        # (topic, partition, offset) of every record handed out, in order.
        self.handed_out: list[tuple[str, int, int]] = []
        self.closed = False
        self._reassign = False
        # How many seeks to refuse (as librdkafka does for a partition it is not fetching).
        self.refused_seeks = 0

    # -- what a test does -----------------------------------------------------------

    def add(
        self,
        values: Sequence[str],
        *,
        partition: int = 0,
        key: str = "k",
        topic: str = "t",
        headers: list[tuple[str, str | bytes | None]] | None = None,
    ) -> None:
        """Append messages to ``partition`` of ``topic``."""
        with self._changed:
            tp = (topic, partition)
            for value in values:
                offset = self._next_offset[tp]
                self._next_offset[tp] = offset + 1
                self._records[tp].append(
                    KafkaMessage(
                        topic=topic,
                        partition=partition,
                        offset=offset,
                        key=key.encode(),
                        value=value.encode(),
                        headers=headers,
                    )
                )
            self._changed.notify_all()

    def reassign(self) -> None:
        """On the next fetch, revoke every partition and assign it back, as a rebalance can.

        Pauses stay, as librdkafka keeps them across a revoke and a new assignment.
        """
        with self._changed:
            self._reassign = True
            self._changed.notify_all()

    def committed(self, partition: int = 0) -> int | None:
        """The last offset committed for ``partition`` of topic ``t``."""
        offsets = [o for t, p, o in self.commits if (t, p) == ("t", partition)]
        return offsets[-1] if offsets else None

    # -- the Source protocol ----------------------------------------------------------

    def fetch(self, max_messages: int, timeout: float) -> list[KafkaMessage]:
        self.fetches += 1
        if timeout == 0:
            self.zero_wait_fetches += 1
        if not self.assigned:
            self.assigned = True
            self.listener.assigned(self.partitions)
        if self._reassign:
            self._reassign = False
            self.listener.revoking(self.partitions)
            with self._changed:
                # The next owner starts from the last commit (here: where it stopped).
                for tp in self.partitions:
                    committed = [o for t, p, o in self.commits if (t, p) == tp]
                    self._position[tp] = committed[-1] if committed else 0
            self.listener.assigned(self.partitions)
        deadline = time.monotonic() + timeout
        with self._changed:
            while True:
                batch: list[KafkaMessage] = []
                for tp, stored in self._records.items():
                    while (
                        self._position[tp] < len(stored)
                        and tp not in self.paused
                        and len(batch) < max_messages
                    ):
                        batch.append(stored[self._position[tp]])
                        self.handed_out.append((*tp, self._position[tp]))
                        self._position[tp] += 1
                left = deadline - time.monotonic()
                if batch or left <= 0:
                    return batch
                self._changed.wait(left)  # a poll blocks until a record or its timeout

    def commit(self, offsets: Sequence[tuple[str, int, int]], *, wait: bool) -> None:
        if self.failing_commits:
            self.failing_commits -= 1
            self._failed.extend((t, p) for t, p, _ in offsets)
            return
        self.commits.extend(offsets)

    def take_failed_commits(self) -> list[TopicPartitionKey]:
        failed, self._failed = self._failed, []
        return failed

    def pause(self, partitions: Sequence[TopicPartitionKey]) -> None:
        self.paused.update(partitions)

    def seek(self, partition: TopicPartitionKey, offset: int) -> None:
        if self.refused_seeks > 0:
            self.refused_seeks -= 1
            raise KafkaException(KafkaError(KafkaError._STATE, "seek refused"))
        with self._changed:
            self._position[partition] = offset

    def resume(self, partitions: Sequence[TopicPartitionKey]) -> None:
        self.paused.difference_update(partitions)
        with self._changed:
            self._changed.notify_all()

    def close(self) -> None:
        if self.assigned:
            self.listener.revoking(self.partitions)
        self.closed = True


class EngineRun:
    """A ConnEngine on a FakeSource, run on a thread of its own."""

    def __init__(
        self,
        handler: Handler,
        *,
        partitions: int = 1,
        force_commit: bool = True,
        retry_backoff: float = 0.05,
        error_handler: ConsumeErrorHandler | None = None,
        **options: object,
    ) -> None:
        self.source: FakeSource | None = None
        keys = [("t", p) for p in range(partitions)]
        ready = threading.Event()

        def make_source(listener: RebalanceListener) -> FakeSource:
            self.source = FakeSource(listener, keys)
            ready.set()
            return self.source

        policy = FailurePolicy(
            force_commit=force_commit,
            error_handler=error_handler,
            retry_backoff=retry_backoff,
            max_retry_backoff=retry_backoff,
        )
        engine_options = EngineOptions(commit_interval=0.05, **options)  # type: ignore[arg-type]
        self.engine = ConnEngine(
            make_source, resolve_handler(handler), policy, engine_options, name="fake"
        )
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, name="fake", daemon=True)
        self.thread.start()
        assert ready.wait(5)

    def _run(self) -> None:
        try:
            self.engine.run()
        except BaseException as exc:
            self.error = exc

    @property
    def fake(self) -> FakeSource:
        assert self.source is not None
        return self.source

    def stop(self, timeout: float = 60.0) -> float:
        """Stop the engine; return how long run() took to return."""
        started = time.monotonic()
        self.engine.stop()
        self.thread.join(timeout)
        assert not self.thread.is_alive(), f"run() did not return within {timeout}s"
        return time.monotonic() - started


def wait_for(predicate: Callable[[], bool], timeout: float = 10.0) -> bool:
    """Poll ``predicate`` for engine state that offers nothing to wait on."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.005)
    return True
