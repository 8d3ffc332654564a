"""RetryConf: how a Queue retries a failed message, set in code or in KqConf's ``Retry:``."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any, ClassVar

from pydantic import Field, model_validator

from zeroqueue._kafka.names import MAX_TOPIC_NAME, name_part
from zeroqueue.conf import Conf, Duration
from zeroqueue.conf._keys import canonical, near_miss

__all__ = ["RetryConf", "retry_topic_name"]

_TOPIC_NAME = re.compile(r"[A-Za-z0-9._-]*")

# Librdkafka's message.timeout.ms is an int32 of milliseconds.
_LONGEST_MOVE_TIMEOUT = (2**31 - 1) / 1000


class RetryConf(Conf):
    """In-place retries, then retry topics (one per delay), then a dead-letter topic.

    Without it (or with neither ``Delays`` nor ``DeadLetterTopic``) a Queue keeps
    its ForceCommit behaviour once the in-place attempts are spent.

    In a go-zero file::

        KqConsumerConf:
          Topic: orders
          Group: billing
          Retry:
            Attempts: 3          # tries in place, the key waiting, before moving on
            Backoff: 500ms       # first pause; doubles, up to MaxBackoff, with Jitter
            Delays: [10s, 1m, 10m]   # retry topics: orders.billing.retry-10s, ...
            DeadLetterTopic: orders.dlt

    Only zeroqueue reads this section, so unlike go-zero's sections it refuses a
    key it does not declare (a misspelt ``DeadLetter`` would otherwise leave no
    dead-letter topic, and failed messages skipped). Raises ConfigError.
    """

    # zeroqueue.conf's loader leaves this section's keys to _go_zero_keys below.
    __zeroqueue_matches_own_keys__: ClassVar[bool] = True

    attempts: int = Field(3, ge=1, le=1000, description="tries in place, the key waiting")
    backoff: Duration = Field(0.5, description="the first pause between tries in place")
    max_backoff: Duration = Field(30.0, description="the longest pause between tries in place")
    jitter: float = Field(0.2, ge=0.0, le=1.0, description="a pause varies by up to this share")
    delays: list[Duration] = Field(
        default_factory=list, description="one retry topic per delay, in the order tried"
    )
    dead_letter_topic: str = Field("", description="where a message goes after the last try")
    retry_topic_partitions: int | None = Field(
        None, ge=1, description="partitions of retry and dead-letter topics it creates"
    )
    move_timeout: Duration = Field(
        30.0,
        ge=0.001,
        le=_LONGEST_MOVE_TIMEOUT,
        description="how long a move to a retry or dead-letter topic waits for its"
        " acknowledgement before it counts as failed (and is tried again after MaxBackoff)",
    )

    @model_validator(mode="before")
    @classmethod
    def _go_zero_keys(cls, data: Any) -> Any:
        """Conf's key matching (any case, snake_case), refusing every undeclared key."""
        if not isinstance(data, Mapping):
            return data
        declared = {
            spelling: info.alias or name
            for name, info in cls.model_fields.items()
            for spelling in (canonical(name), canonical(info.alias or name))
        }
        allowed = list(dict.fromkeys(declared.values()))
        matched: dict[str, Any] = {}
        spelled: dict[str, str] = {}
        problems = []
        for key, value in data.items():
            field = declared.get(canonical(key)) if isinstance(key, str) else None
            if field is None:
                close = near_miss(str(key), allowed)
                hint = f"; did you mean {close!r}?" if close is not None else ""
                problems.append(f"{key}: unknown key{hint}")
            elif field in matched:
                problems.append(f"{key}: repeats {spelled[field]!r}")
            else:
                matched[field], spelled[field] = value, str(key)
        if problems:
            raise ValueError("; ".join(problems) + " (Retry takes only " + ", ".join(allowed) + ")")
        return matched

    @model_validator(mode="after")
    def _check(self) -> RetryConf:
        topic = self.dead_letter_topic
        if len(topic) > MAX_TOPIC_NAME or not _TOPIC_NAME.fullmatch(topic):
            raise ValueError(
                f"DeadLetterTopic: got {topic!r}; expected a topic name of letters, digits,"
                f" '.', '_' and '-', {MAX_TOPIC_NAME} characters at most"
            )
        if any(delay <= 0 for delay in self.delays):
            raise ValueError("Delays: every delay must be longer than 0, such as 10s")
        spelled: dict[str, float] = {}
        for delay in self.delays:
            # Each delay names its retry topic, to the millisecond: two delays with one
            # name would share a topic, and the second would never be tried.
            if delay < 0.001:
                raise ValueError(f"Delays: got {delay:g}s; expected 1ms or longer")
            if abs(delay * 1000 - round(delay * 1000)) > 1e-6:
                raise ValueError(
                    f"Delays: got {delay:g}s; expected whole milliseconds (a retry topic is"
                    " named after its delay)"
                )
            name = _spelled(delay)
            if name in spelled:
                raise ValueError(
                    f"Delays: {delay:g}s is there twice (its retry topic is ...retry-{name});"
                    " expected each delay once"
                )
            spelled[name] = delay
        if self.max_backoff < self.backoff:
            raise ValueError(
                f"MaxBackoff={self.max_backoff}s is shorter than Backoff={self.backoff}s;"
                " expected MaxBackoff >= Backoff"
            )
        return self

    @property
    def moves_messages(self) -> bool:
        """Whether failed messages leave their partition (to a retry or dead-letter topic)."""
        return bool(self.delays or self.dead_letter_topic)


def retry_topic_name(topic: str, group: str, delay: float) -> str:
    """The retry topic of ``topic`` for ``group`` and one delay: ``orders.billing.retry-10s``.

    Named after the group too, so two groups never take each other's retries: a
    group name with characters other than letters, digits, '_' and '-' (a dot
    included, so the topic and group parts cannot run into each other) is
    spelled with '_' and followed by a digest of it: ``orders.my_team-1a2b3c4d.retry-10s``.
    """
    return f"{topic}.{name_part(group)}.retry-{_spelled(delay)}"


def _spelled(seconds: float) -> str:
    for unit, size in (("h", 3600), ("m", 60), ("s", 1)):
        if seconds >= size and seconds % size == 0:
            return f"{int(seconds // size)}{unit}"
    return f"{round(seconds * 1000)}ms"
