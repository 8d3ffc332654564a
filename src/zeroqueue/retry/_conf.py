"""RetryConf: how a Queue retries a failed message, set in code or in KqConf's ``Retry:``."""

from __future__ import annotations

import re

from pydantic import Field, model_validator

from zeroqueue.conf import Conf, Duration

__all__ = ["RetryConf", "retry_topic_name"]


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
    """

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

    @model_validator(mode="after")
    def _check(self) -> RetryConf:
        if any(delay <= 0 for delay in self.delays):
            raise ValueError("Delays: every delay must be longer than 0, such as 10s")
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

    Named after the group too, so two groups never take each other's retries.
    """
    return f"{topic}.{_safe(group)}.retry-{_spelled(delay)}"


def _safe(name: str) -> str:
    # Kafka topic names take letters, digits, '.', '_' and '-'.
    return re.sub(r"[^A-Za-z0-9._-]", "_", name)


def _spelled(seconds: float) -> str:
    for unit, size in (("h", 3600), ("m", 60), ("s", 1)):
        if seconds >= size and seconds % size == 0:
            return f"{int(seconds // size)}{unit}"
    return f"{round(seconds * 1000)}ms"
