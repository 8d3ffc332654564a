"""A Queue's error_handler and metrics hooks, told what became of each failure.

Both hooks keep go-queue's shapes, ``error_handler(message, error)`` and
``metrics(topic, partition, seconds, error)``; one with a parameter more
(``outcome``) also hears whether a failure was retried in place, moved to a
retry topic, dead-lettered or skipped.

The metrics hook runs once per message, when it is done with: its outcome is
the message's fate, ``"handled"``, ``"retry-topic"``, ``"dead-lettered"`` or
``"skipped"`` (counted handled with its error: ForceCommit's skip, with or
without a Retry section). ``"retrying"`` and ``"move-failed"`` are never a
message's fate, only an attempt's, which error_handler hears.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any

from zeroqueue.engine.handlers import (
    ConsumeErrorHandler,
    MetricsHook,
    ObserveHook,
    positional_count,
)
from zeroqueue.message import Message
from zeroqueue.retry import RetryLater

__all__ = ["FailureHooks"]

_log = logging.getLogger("zeroqueue.engine")

#: ``observer(topic, partition, seconds, error, outcome)``: zeroqueue's own metrics.
Observer = Callable[[str, int, float, "BaseException | None", str], None]


class FailureHooks:
    """Calls the user's hooks (or logs) for each failed attempt and handled message."""

    def __init__(
        self,
        error_handler: ConsumeErrorHandler | None,
        metrics: MetricsHook | None,
        observer: Observer | None = None,
    ):
        self._error_handler = error_handler
        # zeroqueue.metrics' counts, heard before the user's hook (given only while on).
        self._observer = observer
        self._error_outcome = error_handler is not None and positional_count(error_handler) >= 3
        self._metrics = metrics
        self._metrics_outcome = metrics is not None and positional_count(metrics) >= 5
        # The last failure's outcome on this thread: the metrics call for the same
        # message follows it on the same thread.
        self._last = threading.local()

    def report(self, message: Message, error: BaseException, outcome: str) -> None:
        """A failed attempt and what became of it (a RetryRouter's report)."""
        self._last.outcome = outcome
        handler = self._error_handler
        if handler is None:
            self._log(message, error, outcome)
            return
        try:
            if self._error_outcome:
                handler(message, error, outcome)  # type: ignore[call-arg]
            else:
                handler(message, error)  # type: ignore[call-arg]
        except Exception:
            _log.exception(
                "error_handler raised while reporting %s[%d]@%d",
                message.topic,
                message.partition,
                message.offset,
            )

    def metrics_hook(self) -> ObserveHook | None:
        """The hook to give the engine: the user's, with the outcome if it asks for it."""
        metrics, observer = self._metrics, self._observer
        if observer is None and (metrics is None or not self._metrics_outcome):
            return metrics  # type: ignore[return-value]  # the four-parameter form
        last, user_outcome = self._last, self._metrics_outcome

        def with_outcome(topic: str, partition: int, seconds: float, error: Any) -> object:
            # A message done with an error was counted handled with it. A RetryRouter
            # said how just before (on this thread); without one, ForceCommit skipped it.
            outcome = "handled" if error is None else getattr(last, "outcome", "skipped")
            last.outcome = "skipped"
            if observer is not None:
                observer(topic, partition, seconds, error, outcome)
            if metrics is None:
                return None
            if user_outcome:
                return metrics(topic, partition, seconds, error, outcome)  # type: ignore[call-arg]
            return metrics(topic, partition, seconds, error)  # type: ignore[call-arg]

        return with_outcome

    @staticmethod
    def _log(message: Message, error: BaseException, outcome: str) -> None:
        where = f"{message.topic}[{message.partition}]@{message.offset}"
        if isinstance(error, RetryLater):
            # Asked for by the handler: not an error.
            _log.info("%s (key %r): %s; %s", where, message.key, error, outcome)
            return
        level = logging.WARNING if outcome in ("retry-topic", "dead-lettered") else logging.ERROR
        _log.log(
            level,
            "handling %s (key %r) failed on attempt %d, %s: %s",
            where,
            message.key,
            message.attempt,
            outcome,
            error,
            exc_info=error if level == logging.ERROR else None,
        )
