"""ServiceGroup: start services together, stop them together, as go-zero's ServiceGroup."""

from __future__ import annotations

import asyncio
import inspect
import logging
import threading
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from enum import IntEnum
from typing import Any, Protocol, TypeVar, runtime_checkable

from zeroqueue._signals import install_stop_signals
from zeroqueue.errors import ConfigError, ServiceError

__all__ = ["AsyncService", "Closer", "ExitCode", "Service", "ServiceError", "ServiceGroup"]

_log = logging.getLogger("zeroqueue.service")

S = TypeVar("S")


@runtime_checkable
class Service(Protocol):
    """go-zero's ``service.Service``: ``start()`` runs until ``stop()`` is called."""

    def start(self) -> Any:
        """Run; return once stopped."""

    def stop(self) -> Any:
        """Ask :meth:`start` to return (from another thread)."""


class AsyncService(Protocol):
    """The asyncio shape: ``await start()`` runs until ``await stop()``."""

    def start(self) -> Awaitable[Any]:
        """Run; return once stopped."""

    def stop(self) -> Awaitable[Any]:
        """Ask :meth:`start` to return."""


@runtime_checkable
class Closer(Protocol):
    """A resource to close once every service stopped: a Pusher flushes its messages."""

    def close(self) -> Any:
        """Release the resource, delivering what it holds."""


class ExitCode(IntEnum):
    """How a service group ended; :meth:`ServiceGroup.run` returns it for ``sys.exit``."""

    #: Stopped on request (a signal, stop()); everything stopped within its grace.
    OK = 0
    #: A service failed (raised, or ended by itself); the others were stopped.
    FAILED = 1
    #: Stopped, but a service did not stop within its grace, or a closer raised (a
    #: Pusher's messages not delivered): some work may not have been finished.
    UNCLEAN = 2
    #: A second SIGINT/SIGTERM: left without waiting for the services.
    FORCED = 130


@dataclass
class _Member:
    service: Any
    name: str
    grace: float
    is_async: bool
    done: threading.Event = field(default_factory=threading.Event)
    error: BaseException | None = None


class ServiceGroup:
    """Services started together and stopped together, in reverse order.

    Add anything with ``start()``/``stop()``: a :class:`~zeroqueue.Queue`, an
    :class:`~zeroqueue.service.AsgiServer`, a user's own service, sync (``start()``
    blocks on a thread of its own) or asyncio (``async def start()``, run on one
    event loop the group owns). :meth:`start` blocks until a service fails,
    :meth:`stop` is called, or, on the main thread, SIGINT/SIGTERM arrives; then
    every service is stopped in the reverse order they were added, each within
    its grace period, and then the closers (Pushers) are closed, so messages
    pushed while the services stopped are delivered before the process exits.

    Add an HTTP server last: it is stopped first, so it takes no new request
    while the consumers drain. A second signal leaves at once.

    Args:
        grace: Seconds each service may take to stop (per service, default 30).
        handle_signals: On the main thread, SIGINT/SIGTERM stop the group.
    """

    def __init__(self, *, grace: float = 30.0, handle_signals: bool = True) -> None:
        if not isinstance(grace, (int, float)) or not grace >= 0:
            raise ConfigError(f"grace: got {grace!r}; expected seconds >= 0")
        self.grace = float(grace)
        self.handle_signals = handle_signals
        self._members: list[_Member] = []
        self._closers: list[tuple[Closer, str]] = []
        self._lock = threading.Lock()
        self._wake = threading.Condition(self._lock)
        self._stop_requested = False
        self._state = "new"
        self._loop: asyncio.AbstractEventLoop | None = None
        self._loop_thread: threading.Thread | None = None
        #: How the last run ended (None before it ends).
        self.exit_code: ExitCode | None = None

    # -- building ------------------------------------------------------------------

    def add(self, service: S, *, name: str | None = None, grace: float | None = None) -> S:
        """Add a service (anything with ``start()`` and ``stop()``); return it."""
        start, stop = getattr(service, "start", None), getattr(service, "stop", None)
        if not callable(start) or not callable(stop):
            raise ConfigError(
                f"service: got {service!r}; expected an object with start() and stop()"
                " (sync, or async def)"
            )
        is_async = inspect.iscoroutinefunction(start)
        if is_async != inspect.iscoroutinefunction(stop):
            raise ConfigError(
                f"service: {service!r} has one async and one sync method of start()/stop();"
                " expected both sync or both async def"
            )
        with self._lock:
            if self._state != "new":
                raise RuntimeError("services are added before start()")
            self._members.append(
                _Member(
                    service,
                    name or _name_of(service),
                    self.grace if grace is None else float(grace),
                    is_async,
                )
            )
        return service

    def add_closer(self, resource: S, *, name: str | None = None) -> S:
        """Close ``resource`` (a Pusher: it flushes) after every service stopped; return it."""
        if not callable(getattr(resource, "close", None)):
            raise ConfigError(f"resource: got {resource!r}; expected an object with close()")
        self._closers.append((resource, name or _name_of(resource)))  # type: ignore[arg-type]
        return resource

    # -- running -------------------------------------------------------------------

    def run(self) -> ExitCode:
        """:meth:`start`, then return the exit code instead of raising (for ``sys.exit``)."""
        try:
            self.start()
        except ServiceError:
            pass
        except KeyboardInterrupt:
            self.exit_code = ExitCode.FORCED
        return self.exit_code if self.exit_code is not None else ExitCode.OK

    def start(self) -> None:
        """Start every service and block until the group stops (see the class docstring).

        Raises:
            ServiceError: a service failed; the others were stopped first.
            KeyboardInterrupt: a second signal, before the services stopped.
        """
        with self._lock:
            if self._state != "new":
                raise RuntimeError(f"ServiceGroup.start() called on a group that is {self._state}")
            self._state = "running"
        restore = self._install_signals()
        try:
            for member in self._members:
                self._launch(member)
            failed = self._wait_for_a_reason()
            unclean = self._stop_all()
        finally:
            restore()
            with self._lock:
                self._state = "stopped"
        if failed is not None:
            self.exit_code = ExitCode.FAILED
            raise ServiceError(
                f"service {failed.name} failed: {failed.error!r}; the group stopped"
                if failed.error is not None
                else f"service {failed.name} ended by itself; the group stopped"
            ) from failed.error
        self.exit_code = ExitCode.UNCLEAN if unclean else ExitCode.OK

    @property
    def services(self) -> list[Any]:
        """The services added, in order."""
        return [member.service for member in self._members]

    def stop(self) -> None:
        """Ask :meth:`start` to stop every service and return; safe from any thread."""
        with self._wake:
            self._stop_requested = True
            self._wake.notify_all()

    # -- inside ----------------------------------------------------------------------

    def _launch(self, member: _Member) -> None:
        if member.is_async:
            loop = self._event_loop()
            future = asyncio.run_coroutine_threadsafe(member.service.start(), loop)
            future.add_done_callback(lambda f: self._ended(member, _error_of(f)))
            return

        def run() -> None:
            error: BaseException | None = None
            try:
                member.service.start()
            except BaseException as exc:
                error = exc
            self._ended(member, error)

        threading.Thread(target=run, name=f"service-{member.name}", daemon=True).start()
        _log.info("started %s", member.name)

    def _ended(self, member: _Member, error: BaseException | None) -> None:
        with self._wake:
            member.error = error
            member.done.set()
            self._wake.notify_all()
        if error is not None:
            _log.error("service %s failed: %r", member.name, error, exc_info=error)

    def _wait_for_a_reason(self) -> _Member | None:
        """Block until stop() or a service ended; return that service if it did."""
        with self._wake:
            while True:
                if self._stop_requested:
                    return None
                ended = next((m for m in self._members if m.done.is_set()), None)
                if ended is not None:
                    return ended
                # Woken by stop() or a service ending; the timeout keeps the main
                # thread returning to Python now and then, so signals are handled.
                self._wake.wait(0.5)

    def _stop_all(self) -> bool:
        """Stop services in reverse order, then the closers; True if something was unclean."""
        unclean = False
        for member in reversed(self._members):
            if member.done.is_set():
                continue
            _log.info("stopping %s (grace %.1fs)", member.name, member.grace)
            started = time.monotonic()
            try:
                self._call_stop(member)
            except Exception:
                _log.exception("stopping %s raised", member.name)
                unclean = True
            left = max(0.0, member.grace - (time.monotonic() - started))
            if not member.done.wait(left):
                _log.warning("%s did not stop within %.1fs; going on", member.name, member.grace)
                unclean = True
        for resource, name in reversed(self._closers):
            try:
                closing = resource.close()
                if inspect.isawaitable(closing):  # an AsyncPusher
                    asyncio.run(_awaited(closing))
            except Exception:
                _log.exception("closing %s raised", name)
                unclean = True
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self._loop.stop)
            if self._loop_thread is not None:
                self._loop_thread.join(5.0)
            if not self._loop.is_running():
                self._loop.close()
        return unclean

    def _call_stop(self, member: _Member) -> None:
        if not member.is_async:
            # stop() may block (a Queue drains): bounded by the grace, on a thread.
            stopper = threading.Thread(
                target=member.service.stop, name=f"stop-{member.name}", daemon=True
            )
            stopper.start()
            stopper.join(member.grace)
            return
        assert self._loop is not None
        future = asyncio.run_coroutine_threadsafe(member.service.stop(), self._loop)
        future.result(member.grace)

    def _event_loop(self) -> asyncio.AbstractEventLoop:
        if self._loop is None:
            self._loop = asyncio.new_event_loop()
            self._loop_thread = threading.Thread(
                target=self._loop.run_forever, name="service-group-loop", daemon=True
            )
            self._loop_thread.start()
        return self._loop

    def _install_signals(self) -> Callable[[], None]:
        if not self.handle_signals:
            return lambda: None
        return install_stop_signals(self.stop, "the services", _log)


async def _awaited(closing: Awaitable[Any]) -> None:
    await closing


def _name_of(thing: object) -> str:
    return getattr(thing, "name", None) or repr(thing)


def _error_of(future: Any) -> BaseException | None:
    if future.cancelled():
        return asyncio.CancelledError()
    error: BaseException | None = future.exception()
    return error
