"""The handler that moves due messages of a topic's delay tiers on.

A Queue runs it on the tiers of each topic it consumes (in a consumer group
of its own per topic, shared by every Queue of that topic whatever their
group, so each message is released once). The engine holds each tier partition
back until its first message is due (:class:`~zeroqueue.delay._gate.DueGate`);
this handler then pushes the message to the next tier or into its topic and
returns once the broker acknowledged it, so the offset is committed only then:
a releaser killed in between releases it again (at least once).
"""

from __future__ import annotations

import dataclasses
import logging
import threading
from collections.abc import Coroutine, Sequence
from typing import Any

from confluent_kafka import KafkaException

from zeroqueue.delay import _headers as h
from zeroqueue.delay._gate import DueGate
from zeroqueue.delay._plan import next_hop
from zeroqueue.delay._tiers import QUANTUM, TIERS, tier_topic
from zeroqueue.engine.handlers import RunHandling
from zeroqueue.errors import ConsumeError
from zeroqueue.message import Message
from zeroqueue.producer.balancer import Balancer
from zeroqueue.producer.core import ProducerCore
from zeroqueue.producer.deliver import send
from zeroqueue.producer.options import PushOptions

__all__ = ["Releaser", "releaser_group", "tier_gate"]

_log = logging.getLogger("zeroqueue.delay")


def releaser_group(topic: str) -> str:
    """The consumer group that releases ``topic``'s delayed messages."""
    return f"zeroqueue.delay.{topic}"


def tier_gate(topic: str) -> DueGate:
    """Holds each tier partition of ``topic`` until its first message is due."""
    return DueGate({tier_topic(topic, tier): tier * QUANTUM for tier in TIERS}, h.HOP_DUE)


class Releaser(RunHandling):
    """``async (message)``: push a due message of a tier on, and await the acknowledgement."""

    def __init__(self, brokers: Sequence[str], options: PushOptions) -> None:
        self._brokers = list(brokers)
        self._options = options
        # One client per librdkafka partitioner the pushers used ("hash", "murmur2").
        self._cores: dict[str, ProducerCore] = {}
        self._lock = threading.Lock()

    def warm_up(self, topics: Sequence[str]) -> None:
        """Make the usual client now and read ``topics``' metadata, before the first release.

        An idempotent producer's first message waits for its producer id (on a
        fresh cluster, for the coordinator to load) and for the topic's leaders:
        paid here, at start, not by the first messages that fall due.
        """
        core = self._core("hash")
        for topic in topics:
            try:
                core.producer.list_topics(topic, timeout=5.0)
            except KafkaException as exc:
                _log.warning("reading the metadata of %r failed: %s", topic, exc)

    async def __call__(self, message: Message) -> None:
        """Release one message (the engine calls it once the message is due)."""
        acknowledged = await self._send(message)
        if acknowledged is not None:
            await acknowledged

    async def handle_run(self, messages: Sequence[Message]) -> int | None:
        """Release a lane's run of due messages at once (the engine's run handler).

        All are sent, in order, before any acknowledgement is awaited: the
        idempotent client keeps their order per partition, and a run costs one
        round trip, not one per message (a burst of one key's messages falling
        due together would otherwise wait for each other's). Returns the index
        of the first message not released, or None when all were: that one and
        what follows are then released one by one, under the failure policy
        (those acknowledged meanwhile are released twice: at least once).
        """
        pending: list[tuple[int, Coroutine[Any, Any, None]]] = []
        failed: int | None = None
        awaited = 0
        try:
            for index, message in enumerate(messages):
                try:
                    acknowledged = await self._send(message)
                except Exception as exc:
                    _log.warning("releasing %s failed, one by one from here: %s", _at(message), exc)
                    failed = index
                    break
                if acknowledged is not None:
                    pending.append((index, acknowledged))
            for index, acknowledged in pending:
                awaited += 1
                try:
                    await acknowledged
                except Exception as exc:
                    _log.warning(
                        "releasing %s failed, one by one from here: %s", _at(messages[index]), exc
                    )
                    failed = index if failed is None else min(failed, index)
        finally:
            for _, acknowledged in pending[awaited:]:
                acknowledged.close()  # cancelled: nobody will await these
        return failed

    async def _send(self, message: Message) -> Coroutine[Any, Any, None] | None:
        """Send ``message`` on; return its acknowledgement (None: not ours to release)."""
        try:
            hop = next_hop(message.topic, message.headers)
        except ConsumeError as exc:
            # Not a delayed message zeroqueue wrote: it can never be released.
            _log.error(
                "skipped %s[%d]@%d: %s", message.topic, message.partition, message.offset, exc
            )
            return None
        balancer = hop.route.balancer if hop.final else "hash"
        partition = hop.route.partition if hop.final else None
        return await send(
            self._core(balancer),
            hop.topic,
            message.key,
            message.value,
            hop.headers,
            partition=partition,
        )

    def _core(self, balancer: str) -> ProducerCore:
        with self._lock:
            core = self._cores.get(balancer)
            if core is None:
                native: Balancer = "murmur2" if balancer == "murmur2" else "hash"
                options = dataclasses.replace(self._options, balancer=native)
                core = self._cores[balancer] = ProducerCore(self._brokers, options)
            return core

    def close(self) -> None:
        """Flush and close the clients."""
        with self._lock:
            cores, self._cores = list(self._cores.values()), {}
        for core in cores:
            core.close()


def _at(message: Message) -> str:
    return f"{message.topic}[{message.partition}]@{message.offset}"
