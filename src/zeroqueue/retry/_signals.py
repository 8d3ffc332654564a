"""Exceptions a handler raises to steer its message: retry later, or dead-letter now."""

from __future__ import annotations

from zeroqueue.errors import ConsumeError

__all__ = ["DeadLetter", "RetryLater"]


class RetryLater(ConsumeError):  # noqa: N818 - a request, named for what it asks
    """Raised by a handler: try this message again after ``delay`` seconds.

    Not logged as an error, but counted as an attempt. With retry topics it goes
    to the first following one whose delay is at least ``delay`` (the longest if
    none is), leaving the key's order, or from the last one to the dead-letter
    topic; without, it waits in place that long, its key waiting too, up to
    ``Attempts`` tries, then goes to the dead-letter topic (or follows ForceCommit).
    """

    def __init__(self, delay: float, reason: str = "") -> None:
        super().__init__(reason or f"retry in {delay}s")
        self.delay = float(delay)


class DeadLetter(ConsumeError):  # noqa: N818 - a request, named for what it asks
    """Raised by a handler: this message will never succeed; dead-letter it now.

    Without a dead-letter topic it follows ForceCommit: true skips it (logged,
    counted handled), false tries it again in place, as every failure.
    """
