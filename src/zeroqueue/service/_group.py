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
from typing import TYPE_CHECKING, Any, Protocol, TypeVar, runtime_checkable

from zeroqueue._signals import install_stop_signals
from zeroqueue.errors import ConfigError, ServiceError

if TYPE_CHECKING:
    from zeroqueue.conf import ServiceConf
    from zeroqueue.metrics import MetricsServer

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
    #: What start() raised (None: it returned, or has not ended yet).
    error: BaseException | None = None
    #: True once the group asked it to stop.
    stopping: bool = False
    #: What stop() raised.
    stop_error: BaseException | None = None


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
        conf: The service's ``ServiceConf``: see :meth:`set_up`.
    """

    def __init__(
        self,
        *,
        grace: float = 30.0,
        handle_signals: bool = True,
        conf: ServiceConf | None = None,
    ) -> None:
        if not isinstance(grace, (int, float)) or not grace >= 0:
            raise ConfigError(f"grace: got {grace!r}; expected seconds >= 0")
        self.grace = float(grace)
        self.handle_signals = handle_signals
        self._members: list[_Member] = []
        self._closers: list[tuple[Closer, str]] = []
        # Reentrant: stop() runs from the signal handler, on the main thread, which
        # may be holding this lock in _wait_for_a_reason when the signal arrives.
        self._lock = threading.RLock()
        self._wake = threading.Condition(self._lock)
        self._stop_requested = False
        self._state = "new"
        self._loop: asyncio.AbstractEventLoop | None = None
        self._loop_thread: threading.Thread | None = None
        #: How the last run ended (None before it ends).
        self.exit_code: ExitCode | None = None
        #: The Prometheus endpoint :meth:`set_up` started (None: not served by the group).
        self.metrics_server: MetricsServer | None = None
        if conf is not None:
            self.set_up(conf)

    def set_up(self, conf: ServiceConf) -> None:
        """Apply ``conf``'s service-wide sections, as go-zero's ``ServiceConf.SetUp``.

        With ``Prometheus.Host`` set, metrics are turned on and served at
        ``Host:Port/Path`` (:func:`zeroqueue.metrics.serve`) from now until the group
        stops: call it before building the Queues and Pushers to watch. It needs
        the ``metrics`` extra (a ConfigError says so).
        """
        if conf.prometheus.host and self.metrics_server is None:
            from zeroqueue import metrics  # noqa: PLC0415 - only a service that serves them

            self.metrics_server = metrics.serve(conf.prometheus)
            _log.info("serving metrics at %s", self.metrics_server.url)

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
            ServiceError: a service failed (its start() raised or returned before it
                was asked to stop, it raised while stopping, or its stop() raised);
                the others were stopped first.
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
            if self.metrics_server is not None:
                # Last: scrapes see the services' final figures until they stopped.
                self.metrics_server.close()
        failures = self._failures(failed)
        if failures:
            self.exit_code = ExitCode.FAILED
            problems = [problem for problem, _ in failures]
            also = f"; also {'; '.join(problems[1:])}" if len(problems) > 1 else ""
            raise ServiceError(f"{problems[0]}; the group stopped{also}") from failures[0][1]
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
        if member.stopping and isinstance(error, asyncio.CancelledError):
            error = None  # an async service cancelled as it was asked to stop: a stop
        with self._wake:
            member.error = error
            member.done.set()
            self._wake.notify_all()
        if error is not None:
            how = " while stopping" if member.stopping else ""
            _log.error("service %s failed%s: %r", member.name, how, error, exc_info=error)

    def _failures(self, failed: _Member | None) -> list[tuple[str, BaseException | None]]:
        """What went wrong, the reason the group stopped first: (problem, its exception)."""
        found: list[tuple[str, BaseException | None]] = []
        if failed is not None:
            found.append(
                (f"service {failed.name} failed: {failed.error!r}", failed.error)
                if failed.error is not None
                else (f"service {failed.name} ended by itself", None)
            )
        for member in self._members:
            if member.error is not None and member is not failed:
                how = " while stopping" if member.stopping else ""
                found.append((f"service {member.name} failed{how}: {member.error!r}", member.error))
            if member.stop_error is not None:
                problem = f"service {member.name}'s stop() raised {member.stop_error!r}"
                found.append((problem, member.stop_error))
        return found

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
            member.stopping = True
            returned = self._call_stop(member)
            left = max(0.0, member.grace - (time.monotonic() - started))
            if not member.done.wait(left) or not returned:
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

    def _call_stop(self, member: _Member) -> bool:
        """Call the service's stop() within its grace; False if it has not returned.

        What stop() raises is logged and noted on the member, as a failure.
        """
        if not member.is_async:
            # stop() may block (a Queue drains): bounded by the grace, on a thread.
            def stop() -> None:
                try:
                    member.service.stop()
                except BaseException as exc:
                    self._stop_failed(member, exc)

            stopper = threading.Thread(target=stop, name=f"stop-{member.name}", daemon=True)
            stopper.start()
            stopper.join(member.grace)
            return not stopper.is_alive()
        assert self._loop is not None
        future = asyncio.run_coroutine_threadsafe(member.service.stop(), self._loop)
        try:
            future.result(member.grace)
        except Exception as exc:
            if not future.done():
                return False  # still running after its grace (the caller says so)
            self._stop_failed(member, exc)
        return True

    def _stop_failed(self, member: _Member, error: BaseException) -> None:
        # Logged when it happens, even after the grace, when the group has gone on.
        _log.error("stopping %s raised: %r", member.name, error, exc_info=error)
        member.stop_error = error

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
