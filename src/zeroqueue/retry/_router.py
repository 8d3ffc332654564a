"""RetryRouter: a Queue's failure policy with retry topics and a dead-letter topic.

A failed message is tried again in place (``Attempts``, with backoff and jitter:
its key waits), then pushed to the next retry topic (``Delays``), which the same
Queue consumes once the message is due, then to the dead-letter topic. A move
is acknowledged by every in-sync replica before the source offset may be
committed: if the push fails, or no acknowledgement comes within
``MoveTimeout``, nothing is committed and the message is tried again after
``MaxBackoff``. A message that cannot be decoded, or whose handler raises
:class:`DeadLetter`, goes to the dead-letter topic at once; :class:`RetryLater`
skips the rest of the tries in place when there are retry topics.

:meth:`RetryRouter.failed` waits for a move's acknowledgement on the calling
thread; :meth:`RetryRouter.failed_async` awaits it, for handlers run on an
event loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import random
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from confluent_kafka import KafkaError
from confluent_kafka import Message as KafkaMessage

from zeroqueue import admin
from zeroqueue._kafka.names import MAX_TOPIC_NAME
from zeroqueue._kafka.settings import Security
from zeroqueue.errors import (
    ConfigError,
    DecodeError,
    MessageTooLargeError,
    PushError,
    ZeroQueueError,
)
from zeroqueue.message import Message
from zeroqueue.producer.core import ProducerCore
from zeroqueue.producer.options import PushOptions
from zeroqueue.retry import _headers as h
from zeroqueue.retry._conf import RetryConf, retry_topic_name
from zeroqueue.retry._moved import MOVE_HEADROOM, moved_headers, too_large
from zeroqueue.retry._signals import DeadLetter, RetryLater
from zeroqueue.tracing import forwarding

__all__ = ["Outcome", "RetryRouter", "Tier"]

_log = logging.getLogger("zeroqueue.retry")

# A delivery report comes within MoveTimeout (librdkafka's message.timeout.ms);
# this much more before a move counts as unacknowledged anyway.
_REPORT_GRACE = 5.0
# How long reading a source topic's size limit may take, once.
_LIMIT_LOOKUP_TIMEOUT = 5.0
# How long each step waits while the retry producer's local buffer is full (async).
_ROOM_POLL = 0.005
# kafka_config entries an admin client refuses (producer callbacks).
_PRODUCER_ONLY = frozenset({"on_delivery", "dr_cb", "dr_msg_cb"})

#: What became of a failed attempt (given to error_handler and metrics hooks that ask):
#: "retrying" in place, "retry-topic" (moved to one), "dead-lettered", "skipped"
#: (ForceCommit, nothing configured), "move-failed" (will be tried again).
Outcome = str


@dataclass(frozen=True)
class Tier:
    """One retry topic: its name and how long a message waits there."""

    topic: str
    delay: float


@dataclass(frozen=True)
class _Move:
    """A decision to push the message on: where, with which headers, reported how."""

    topic: str
    headers: list[tuple[str, bytes]]
    outcome: Outcome


#: Reports a failure and what became of it: ``(message, error, outcome)``.
FailureReport = Callable[[Message, BaseException, Outcome], None]


class RetryRouter:
    """Implements the engine's FailurePolicyLike for a Queue with a RetryConf.

    ``failed`` may block its thread while a move waits for its acknowledgement
    (up to ``MoveTimeout`` and a few seconds); ``failed_async`` awaits it instead.
    """

    def __init__(
        self,
        conf: RetryConf,
        *,
        brokers: Sequence[str],
        source_topics: Sequence[str],
        group: str,
        force_commit: bool,
        report: FailureReport,
        push_options: PushOptions,
    ) -> None:
        self.conf = conf
        self.group = group
        self._force_commit = force_commit
        self._report = report
        self.tiers: dict[str, list[Tier]] = {
            topic: [Tier(retry_topic_name(topic, group, d), d) for d in conf.delays]
            for topic in source_topics
        }
        for tiers in self.tiers.values():
            for tier in tiers:
                if len(tier.topic) > MAX_TOPIC_NAME:
                    raise ConfigError(
                        f"Retry.Delays: retry topic {tier.topic!r} is {len(tier.topic)}"
                        f" characters; expected at most {MAX_TOPIC_NAME}, Kafka's limit"
                        " (a shorter Topic or Group)"
                    )
        #: Each retry topic: its source topic and its place among the tiers.
        self.tier_of: dict[str, tuple[str, int]] = {
            tier.topic: (source, index)
            for source, tiers in self.tiers.items()
            for index, tier in enumerate(tiers)
        }
        self._random = random.Random()
        self._core: ProducerCore | None = None
        self._brokers = brokers
        self._source_topics = list(source_topics)
        # Each move waits for its own acknowledgement, at most MoveTimeout.
        self._push_options = dataclasses.replace(
            push_options, sync_push=True, delivery_timeout=conf.move_timeout
        )
        self._core_lock = threading.Lock()
        self._limit_lock = threading.Lock()
        self._source_limit: int | None = None
        self._source_limit_read = False

    # -- the topics ------------------------------------------------------------------

    @property
    def retry_topics(self) -> list[str]:
        """Every retry topic the Queue consumes besides its own."""
        return list(self.tier_of)

    @property
    def retry_waits(self) -> dict[str, float]:
        """Each retry topic and how long its messages wait there."""
        return {tier.topic: tier.delay for tiers in self.tiers.values() for tier in tiers}

    @property
    def may_block(self) -> bool:
        """Whether :meth:`failed` may wait for a move to be acknowledged (:attr:`longest_move`)."""
        return self.conf.moves_messages

    @property
    def longest_move(self) -> float:
        """The longest a move waits for its acknowledgement before it counts as failed."""
        return self.conf.move_timeout + _REPORT_GRACE

    @property
    def headroom(self) -> int:
        """Bytes a move may add to a message: the retry headers, at most."""
        return MOVE_HEADROOM + len(self.group.encode())

    def source_size_limit(self) -> int | None:
        """The largest message the source topics accept (their max.message.bytes), if known.

        Asked of the cluster once. Tansu, and a cluster that does not let this
        client read topic configurations, do not say: None.
        """
        with self._limit_lock:
            if not self._source_limit_read:
                limits = [self._read_limit(topic) for topic in self._source_topics]
                known = [limit for limit in limits if limit is not None]
                self._source_limit = max(known) if known else None
                self._source_limit_read = True
            return self._source_limit

    def _read_limit(self, topic: str) -> int | None:
        options = self._push_options
        security = Security(
            username=options.username,
            password=options.password,
            sasl_mechanism=options.sasl_mechanism,
            ca_file=options.ca_file,
        )
        extra = {k: v for k, v in (options.kafka_config or {}).items() if k not in _PRODUCER_ONLY}
        try:
            return admin.max_message_bytes(
                self._brokers,
                topic,
                timeout=_LIMIT_LOOKUP_TIMEOUT,
                kafka_config=security.librdkafka() | extra,
            )
        except ZeroQueueError as exc:
            _log.info("could not read the size limit of topic %r: %s", topic, exc)
            return None

    def retry_topic_config(self) -> dict[str, str]:
        """Topic settings for the retry and dead-letter topics a Queue creates.

        ``max.message.bytes`` of the largest source topic plus :attr:`headroom`,
        so that every message the source topics accept can move with its
        headers; nothing when the source topics' limit is unknown.
        """
        limit = self.source_size_limit()
        return {} if limit is None else {"max.message.bytes": str(limit + self.headroom)}

    def move_size_limit(self) -> int:
        """The retry producer's max_message_bytes: the source topics' limit, plus headroom."""
        limit = self.source_size_limit()
        return (limit or self._push_options.max_message_bytes) + self.headroom

    # -- FailurePolicyLike ---------------------------------------------------------------

    def failed(self, message: Message, error: BaseException, attempt: int) -> float | None:
        """Decide a failed attempt's fate; return the pause before trying in place, or None.

        A move (to a retry or dead-letter topic) waits here for its
        acknowledgement: None only once it is acknowledged.
        """
        decision = self._decide(message, error, attempt)
        if not isinstance(decision, _Move):
            return decision
        try:
            self._push(decision.topic, message, decision.headers)
        except PushError as exc:
            return self._move_failed(message, error, decision, exc)
        self._report(message, error, decision.outcome)
        return None

    async def failed_async(
        self, message: Message, error: BaseException, attempt: int
    ) -> float | None:
        """:meth:`failed` for an event loop: a move's acknowledgement is awaited, not waited for."""
        decision = self._decide(message, error, attempt)
        if not isinstance(decision, _Move):
            return decision
        try:
            await self._push_async(decision.topic, message, decision.headers)
        except PushError as exc:
            return self._move_failed(message, error, decision, exc)
        self._report(message, error, decision.outcome)
        return None

    # -- deciding --------------------------------------------------------------------------

    def _decide(self, message: Message, error: BaseException, attempt: int) -> float | _Move | None:
        """The pause before a try in place, None (counted handled), or a move to make."""
        attempts = (h.decode_int(h.last(message.headers, h.ATTEMPTS)) or 0) + attempt
        if isinstance(error, (DecodeError, DeadLetter)):
            return self._dead_letter(message, error, attempts, attempt)
        if isinstance(error, RetryLater) and self.conf.delays:
            return self._to_tier(message, error, attempts, attempt, wanted=error.delay)
        in_place = self.conf.attempts if message.topic not in self.tier_of else 1
        if attempt < in_place:
            self._report(message, error, "retrying")
            return error.delay if isinstance(error, RetryLater) else self._pause(attempt)
        return self._to_tier(message, error, attempts, attempt)

    def _pause(self, attempt: int) -> float:
        conf = self.conf
        doublings = min(attempt - 1, 1000)
        base = min(conf.backoff * 2.0**doublings, conf.max_backoff)
        return base * (1 + conf.jitter * (2 * self._random.random() - 1))

    def _to_tier(
        self,
        message: Message,
        error: BaseException,
        attempts: int,
        attempt: int,
        wanted: float | None = None,
    ) -> float | _Move | None:
        source, position = self.tier_of.get(message.topic, (message.topic, -1))
        following = self.tiers.get(source, [])[position + 1 :]
        if wanted is not None and following:
            fitting = [tier for tier in following if tier.delay >= wanted]
            following = fitting or following[-1:]
        if following:
            tier = following[0]
            due = time.time() + tier.delay
            headers = moved_headers(message, error, attempts, self.group, due)
            return _Move(tier.topic, headers, "retry-topic")
        return self._dead_letter(message, error, attempts, attempt)

    def _dead_letter(
        self, message: Message, error: BaseException, attempts: int, attempt: int
    ) -> float | _Move | None:
        if self.conf.dead_letter_topic:
            headers = moved_headers(message, error, attempts, self.group, None)
            return _Move(self.conf.dead_letter_topic, headers, "dead-lettered")
        if self._force_commit:
            self._report(message, error, "skipped")
            return None
        # ForceCommit false never moves past a message, whatever failed: it is tried
        # again in place, as a Queue without a Retry section does.
        self._report(message, error, "retrying")
        if isinstance(error, RetryLater):
            return error.delay
        if isinstance(error, (DecodeError, DeadLetter)):
            return self._pause(attempt)  # its tries in place were skipped: back off from Backoff
        return self.conf.max_backoff

    def _move_failed(
        self, message: Message, error: BaseException, move: _Move, exc: PushError
    ) -> float:
        # Nothing is committed: the message stays, and is tried again after a pause.
        _log.error(
            "could not move %s[%d]@%d to %s: %s; it stays and is tried again in %gs",
            message.topic,
            message.partition,
            message.offset,
            move.topic,
            exc,
            self.conf.max_backoff,
        )
        self._report(message, error, "move-failed")
        return self.conf.max_backoff

    # -- moving a message ------------------------------------------------------------------

    def _push(self, topic: str, message: Message, headers: list[tuple[str, bytes]]) -> None:
        """Push and wait for the acknowledgement (acks=all): only then may it be committed."""
        with forwarding(topic, message.key, headers) as traced:
            self._push_and_wait(topic, message, traced)  # type: ignore[arg-type]

    def _push_and_wait(
        self, topic: str, message: Message, headers: list[tuple[str, bytes]]
    ) -> None:
        core = self._producer()
        done = threading.Event()
        reports: list[tuple[KafkaError | None, KafkaMessage]] = []

        def on_delivery(error: KafkaError | None, record: KafkaMessage) -> None:
            reports.append((error, record))
            done.set()

        deadline = core.room_deadline()
        while not self._try_produce(core, topic, message, headers, on_delivery):
            if time.monotonic() >= deadline:
                raise core.buffer_full_error(topic)
            core.wait_for_room()
        if not done.wait(self.longest_move):
            raise self._unacknowledged(topic)
        error, _ = reports[0]
        if error is not None:
            limit = (
                core.topic_size_limit(topic)
                if error.code() == KafkaError.MSG_SIZE_TOO_LARGE
                else None
            )
            raise self._refused(error, topic, message, headers, limit)

    async def _push_async(
        self, topic: str, message: Message, headers: list[tuple[str, bytes]]
    ) -> None:
        """:meth:`_push` without blocking the event loop."""
        with forwarding(topic, message.key, headers) as traced:
            await self._push_and_await(topic, message, traced)  # type: ignore[arg-type]

    async def _push_and_await(
        self, topic: str, message: Message, headers: list[tuple[str, bytes]]
    ) -> None:
        core = self._core
        if core is None:
            # Making it may ask the cluster for the source topics' size limit.
            core = await asyncio.to_thread(self._producer)
        loop = asyncio.get_running_loop()
        acked: asyncio.Future[KafkaError | None] = loop.create_future()

        def on_delivery(error: KafkaError | None, record: KafkaMessage) -> None:
            # On the delivery-report thread. A closed loop has nobody left to tell.
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(_settle, acked, error)

        deadline = core.room_deadline()
        while not self._try_produce(core, topic, message, headers, on_delivery):
            if time.monotonic() >= deadline:
                raise core.buffer_full_error(topic)
            await asyncio.sleep(_ROOM_POLL)
        try:
            error = await asyncio.wait_for(acked, self.longest_move)
        except asyncio.TimeoutError:
            raise self._unacknowledged(topic) from None
        if error is not None:
            limit = (
                await asyncio.to_thread(core.topic_size_limit, topic)
                if error.code() == KafkaError.MSG_SIZE_TOO_LARGE
                else None
            )
            raise self._refused(error, topic, message, headers, limit)

    def _try_produce(
        self,
        core: ProducerCore,
        topic: str,
        message: Message,
        headers: list[tuple[str, bytes]],
        on_delivery: Callable[[KafkaError | None, KafkaMessage], None],
    ) -> bool:
        try:
            return core.try_produce(
                topic, message.key, message.value, headers, on_delivery=on_delivery
            )
        except MessageTooLargeError as exc:
            # Name the headers too: the producer's own error counts key and value only.
            raise too_large(
                message, topic, headers, limit=core.options.max_message_bytes, by_broker=False
            ) from exc

    def _unacknowledged(self, topic: str) -> PushError:
        return PushError(
            f"no acknowledgement for a message moved to {topic!r} within {self.longest_move:g}s"
            f" (MoveTimeout={self.conf.move_timeout:g}s): is the topic there, and its"
            " replicas in sync?"
        )

    def _refused(
        self,
        error: KafkaError,
        topic: str,
        message: Message,
        headers: list[tuple[str, bytes]],
        limit: int | None,
    ) -> PushError:
        if error.code() == KafkaError.MSG_SIZE_TOO_LARGE:
            return too_large(message, topic, headers, limit=limit, by_broker=True)
        return PushError(f"moving a message to {topic!r} failed: {error.str()}")

    def _producer(self) -> ProducerCore:
        with self._core_lock:
            if self._core is None:
                options = dataclasses.replace(
                    self._push_options, max_message_bytes=self.move_size_limit()
                )
                self._core = ProducerCore(
                    self._brokers, options, name=f"zeroqueue-retry[{self.group}]"
                )
            return self._core

    def close(self) -> None:
        """Release the producer (every move was acknowledged before its commit)."""
        with self._core_lock:
            core, self._core = self._core, None
        if core is not None:
            core.close(timeout=5.0)


def _settle(future: asyncio.Future[KafkaError | None], error: KafkaError | None) -> None:
    if not future.done():  # not timed out or cancelled meanwhile
        future.set_result(error)
