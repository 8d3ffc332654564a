"""RetryRouter: a Queue's failure policy with retry topics and a dead-letter topic.

A failed message is tried again in place (``Attempts``, with backoff and jitter:
its key waits), then pushed to the next retry topic (``Delays``), which the same
Queue consumes once the message is due, then to the dead-letter topic. A move
is acknowledged by every in-sync replica before the source offset may be
committed: if the push fails, nothing is committed and the message is tried
again after a pause. A message that cannot be decoded, or whose handler raises
:class:`DeadLetter`, goes to the dead-letter topic at once; :class:`RetryLater`
skips the rest of the tries in place.
"""

from __future__ import annotations

import logging
import random
import threading
import time
import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from confluent_kafka import KafkaError
from confluent_kafka import Message as KafkaMessage

from zeroqueue.errors import DecodeError, PushError
from zeroqueue.message import Message
from zeroqueue.producer.core import ProducerCore
from zeroqueue.producer.options import PushOptions
from zeroqueue.retry import _headers as h
from zeroqueue.retry._conf import RetryConf, retry_topic_name
from zeroqueue.retry._signals import DeadLetter, RetryLater

__all__ = ["Outcome", "RetryRouter", "Tier"]

_log = logging.getLogger("zeroqueue.retry")

# Longest a stack trace header may be: a few kilobytes is plenty to find the bug.
_STACKTRACE_LIMIT = 8_000
# How long a move may wait for the broker's acknowledgement before it counts as failed.
_MOVE_GRACE = 5.0

#: What became of a failed attempt (given to error_handler and metrics hooks that ask):
#: "retrying" in place, "retry-topic" (moved to one), "dead-lettered", "skipped"
#: (ForceCommit, nothing configured), "move-failed" (will be tried again).
Outcome = str


@dataclass(frozen=True)
class Tier:
    """One retry topic: its name and how long a message waits there."""

    topic: str
    delay: float


#: Reports a failure and what became of it: ``(message, error, outcome)``.
FailureReport = Callable[[Message, BaseException, Outcome], None]


class RetryRouter:
    """Implements the engine's FailurePolicyLike for a Queue with a RetryConf."""

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
        #: Each retry topic: its source topic and its place among the tiers.
        self.tier_of: dict[str, tuple[str, int]] = {
            tier.topic: (source, index)
            for source, tiers in self.tiers.items()
            for index, tier in enumerate(tiers)
        }
        self._random = random.Random()
        self._core: ProducerCore | None = None
        self._brokers = brokers
        self._push_options = push_options
        self._core_lock = threading.Lock()

    # -- the topics ------------------------------------------------------------------

    @property
    def retry_topics(self) -> list[str]:
        """Every retry topic the Queue consumes besides its own."""
        return list(self.tier_of)

    # -- FailurePolicyLike ---------------------------------------------------------------

    def failed(self, message: Message, error: BaseException, attempt: int) -> float | None:
        """Decide a failed attempt's fate; return the pause before trying in place, or None."""
        tried_before = h.decode_int(h.last(message.headers, h.ATTEMPTS)) or 0
        in_place = self.conf.attempts if message.topic not in self.tier_of else 1
        if isinstance(error, (DecodeError, DeadLetter)):
            return self._dead_letter(message, error, tried_before + attempt)
        if isinstance(error, RetryLater):
            if not self.conf.delays:
                self._report(message, error, "retrying")
                return error.delay
            return self._to_tier(message, error, tried_before + attempt, wanted=error.delay)
        if attempt < in_place:
            self._report(message, error, "retrying")
            return self._pause(attempt)
        return self._to_tier(message, error, tried_before + attempt)

    def _pause(self, attempt: int) -> float:
        conf = self.conf
        doublings = min(attempt - 1, 1000)
        base = min(conf.backoff * 2.0**doublings, conf.max_backoff)
        return base * (1 + conf.jitter * (2 * self._random.random() - 1))

    def _to_tier(
        self, message: Message, error: BaseException, attempts: int, wanted: float | None = None
    ) -> float | None:
        source, position = self._source_of(message)
        tiers = self.tiers.get(source, [])
        following = tiers[position + 1 :]
        if wanted is not None and following:
            fitting = [tier for tier in following if tier.delay >= wanted]
            following = fitting or following[-1:]
        if following:
            tier = following[0]
            due = time.time() + tier.delay
            return self._move(message, error, attempts, tier.topic, "retry-topic", due=due)
        return self._dead_letter(message, error, attempts)

    def _dead_letter(self, message: Message, error: BaseException, attempts: int) -> float | None:
        if self.conf.dead_letter_topic:
            topic = self.conf.dead_letter_topic
            return self._move(message, error, attempts, topic, "dead-lettered", due=None)
        if self._force_commit or isinstance(error, (DecodeError, DeadLetter)):
            self._report(message, error, "skipped")
            return None
        self._report(message, error, "retrying")
        return self.conf.max_backoff

    def _source_of(self, message: Message) -> tuple[str, int]:
        """The source topic of a message, and the index of the tier it came from (-1: none)."""
        return self.tier_of.get(message.topic, (message.topic, -1))

    # -- moving a message ------------------------------------------------------------------

    def _move(
        self,
        message: Message,
        error: BaseException,
        attempts: int,
        topic: str,
        outcome: Outcome,
        *,
        due: float | None,
    ) -> float | None:
        headers = _moved_headers(message, error, attempts, self.group, due)
        try:
            self._push(topic, message, headers)
        except PushError as exc:
            # Nothing is committed: the message stays, and is tried again after a pause.
            _log.error(
                "could not move %s[%d]@%d to %s: %s; it stays and is tried again",
                message.topic,
                message.partition,
                message.offset,
                topic,
                exc,
            )
            self._report(message, error, "move-failed")
            return self.conf.max_backoff
        self._report(message, error, outcome)
        return None

    def _push(self, topic: str, message: Message, headers: list[tuple[str, bytes]]) -> None:
        """Push and wait for the acknowledgement (acks=all): only then may it be committed."""
        core = self._producer()
        done = threading.Event()
        outcome: list[KafkaError | None] = []

        def on_delivery(error: KafkaError | None, record: KafkaMessage) -> None:
            outcome.append(error)
            done.set()

        deadline = core.room_deadline()
        while not core.try_produce(topic, message.key, message.value, headers, on_delivery):
            if time.monotonic() >= deadline:
                raise core.buffer_full_error(topic)
            core.wait_for_room()
        if not done.wait(core.options.delivery_timeout + _MOVE_GRACE):
            raise PushError(f"no acknowledgement for a message moved to {topic!r}")
        if outcome[0] is not None:
            raise PushError(f"moving a message to {topic!r} failed: {outcome[0].str()}")

    def _producer(self) -> ProducerCore:
        with self._core_lock:
            if self._core is None:
                self._core = ProducerCore(
                    self._brokers, self._push_options, name=f"zeroqueue-retry[{self.group}]"
                )
            return self._core

    def close(self) -> None:
        """Release the producer (every move was acknowledged before its commit)."""
        with self._core_lock:
            core, self._core = self._core, None
        if core is not None:
            core.close(timeout=5.0)


def _moved_headers(
    message: Message, error: BaseException, attempts: int, group: str, due: float | None
) -> list[tuple[str, bytes]]:
    """The message's own headers, then Spring Kafka's retry and dead-letter headers."""
    kept = [(name, value or b"") for name, value in message.headers if name not in h.OWN_HEADERS]
    original = h.last(message.headers, h.ORIGINAL_TOPIC)
    if original is None:  # its first move: where it came from
        where = [
            (h.ORIGINAL_TOPIC, message.topic.encode()),
            (h.ORIGINAL_PARTITION, h.encode_int(message.partition)),
            (h.ORIGINAL_OFFSET, h.encode_long(message.offset)),
            (h.ORIGINAL_TIMESTAMP, h.encode_long(int((message.timestamp or 0) * 1000))),
        ]
        first_failure = h.encode_long(int(time.time() * 1000))
    else:  # it moved before: keep where it came from first
        where = [
            (name, h.last(message.headers, name) or b"")
            for name in (h.ORIGINAL_TOPIC, h.ORIGINAL_PARTITION, h.ORIGINAL_OFFSET)
        ] + [(h.ORIGINAL_TIMESTAMP, h.last(message.headers, h.ORIGINAL_TIMESTAMP) or b"")]
        first_failure = h.last(message.headers, h.FIRST_FAILURE_TIMESTAMP) or h.encode_long(
            int(time.time() * 1000)
        )
    cause = error.__cause__ or error.__context__
    stack = "".join(traceback.format_exception(type(error), error, error.__traceback__))
    headers = [
        *kept,
        *where,
        (h.ORIGINAL_CONSUMER_GROUP, group.encode()),
        (h.EXCEPTION_FQCN, _qualified(type(error)).encode()),
        (h.EXCEPTION_MESSAGE, str(error).encode(errors="replace")),
        (h.EXCEPTION_STACKTRACE, stack[-_STACKTRACE_LIMIT:].encode(errors="replace")),
        (h.ATTEMPTS, h.encode_int(attempts)),
        (h.FIRST_FAILURE_TIMESTAMP, first_failure),
    ]
    if cause is not None:
        headers.append((h.EXCEPTION_CAUSE_FQCN, _qualified(type(cause)).encode()))
    if due is not None:
        headers.append((h.BACKOFF_TIMESTAMP, h.encode_long(int(due * 1000))))
    return headers


def _qualified(kind: type[Any]) -> str:
    return f"{kind.__module__}.{kind.__qualname__}"
