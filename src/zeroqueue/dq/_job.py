"""A delayed job as a handler sees it, and the handler shapes the consumer accepts."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeAlias

from zeroqueue.engine.handlers import is_async_callable, positional_count
from zeroqueue.errors import ConfigError

__all__ = ["DqHandler", "Job", "JobRunner"]


@dataclass(frozen=True)
class Job:
    """One delayed job, handled once across the nodes holding its copies.

    Attributes:
        id: This copy's id, ``endpoint/tube/number`` (one part of the producer's id).
        body: The payload the producer scheduled.
        due: When it was due, as a Unix time (``time.time()`` seconds).
        failures: How many times handling it failed before (on any node).
    """

    id: str
    body: bytes
    due: float
    failures: int


#: ``handler(body)`` like go-queue's ``Consume(body []byte)``, or ``handler(body, job)``;
#: either may be ``async def``. It reports failure by raising.
DqHandler: TypeAlias = (
    Callable[[bytes], object]
    | Callable[[bytes, Job], object]
    | Callable[[bytes], Awaitable[object]]
    | Callable[[bytes, Job], Awaitable[object]]
)


class JobRunner:
    """Calls the user's handler on a worker thread; an async one on a loop of its own."""

    def __init__(self, handler: DqHandler, name: str) -> None:
        if not callable(handler):
            raise ConfigError(
                f"handler: got {handler!r}; expected a callable (body) or (body, job)"
            )
        count = positional_count(handler)
        if count not in (1, 2, 99):
            raise ConfigError(
                f"handler: {handler!r} takes {count} positional parameters;"
                " expected (body) or (body, job)"
            )
        self._handler: Callable[..., Any] = handler
        self._takes_job = count >= 2
        self.is_async = is_async_callable(handler)
        self._name = name
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        """Start the event loop an async handler runs on."""
        if self.is_async and self._loop is None:
            self._loop = asyncio.new_event_loop()
            self._thread = threading.Thread(
                target=self._loop.run_forever, name=f"{self._name}-loop", daemon=True
            )
            self._thread.start()

    def __call__(self, job: Job) -> None:
        """Handle one job, raising what the handler raised."""
        args = (job.body, job) if self._takes_job else (job.body,)
        if self._loop is None:
            result = self._handler(*args)
            if asyncio.iscoroutine(result):
                result.close()
                raise ConfigError(
                    f"handler: {self._handler!r} returned a coroutine but does not look like"
                    " async def; declare it async def"
                )
            return
        asyncio.run_coroutine_threadsafe(_awaited(self._handler(*args)), self._loop).result()

    def stop(self) -> None:
        """Stop the loop (once no handler runs on it)."""
        loop, self._loop = self._loop, None
        if loop is not None:
            loop.call_soon_threadsafe(loop.stop)
            if self._thread is not None:
                self._thread.join(5.0)
            if not loop.is_running():
                loop.close()


async def _awaited(result: Any) -> None:
    if isinstance(result, Awaitable):
        await result
