"""ServiceGroup starts services together and stops them together, in reverse order."""

from __future__ import annotations

import asyncio
import logging
import signal
import threading
import time
from typing import Any

import pytest

from tests.kafka_helpers import eventually
from zeroqueue import ConfigError
from zeroqueue.service import ExitCode, ServiceError, ServiceGroup


class Recording:
    """A service that runs until stopped and notes when it started and stopped."""

    def __init__(self, name: str, log: list[str], *, stop_takes: float = 0.0) -> None:
        self.name = name
        self._log = log
        self._stop_takes = stop_takes
        self._stopped = threading.Event()
        self.running = threading.Event()

    def start(self) -> None:
        self._log.append(f"start {self.name}")
        self.running.set()
        self._stopped.wait(60)

    def stop(self) -> None:
        self._log.append(f"stop {self.name}")
        time.sleep(self._stop_takes)  # a slow drain
        self._stopped.set()


class Failing:
    name = "failing"

    def __init__(self, after: threading.Event) -> None:
        self._after = after

    def start(self) -> None:
        self._after.wait(10)
        raise RuntimeError("lost its database")

    def stop(self) -> None: ...


class AsyncRecording:
    name = "async"

    def __init__(self, log: list[str]) -> None:
        self._log = log
        self._stopped: asyncio.Event | None = None

    async def start(self) -> None:
        self._stopped = asyncio.Event()
        self._log.append("start async")
        await self._stopped.wait()

    async def stop(self) -> None:
        self._log.append("stop async")
        assert self._stopped is not None
        self._stopped.set()


class Closing:
    def __init__(self, log: list[str]) -> None:
        self._log = log

    def close(self) -> None:
        self._log.append("close pusher")


def run_in_thread(group: ServiceGroup) -> tuple[threading.Thread, list[BaseException]]:
    errors: list[BaseException] = []

    def run() -> None:
        try:
            group.start()
        except BaseException as exc:
            errors.append(exc)

    thread = threading.Thread(target=run)
    thread.start()
    return thread, errors


def test_services_stop_in_reverse_order_then_the_closers() -> None:
    # given a consumer, an async service and an HTTP server, added in that order
    log: list[str] = []
    group = ServiceGroup(handle_signals=False)
    consumer = group.add(Recording("consumer", log))
    group.add(AsyncRecording(log))
    http = group.add(Recording("http", log))
    group.add_closer(Closing(log))
    thread, errors = run_in_thread(group)
    assert consumer.running.wait(10)
    assert http.running.wait(10)
    assert eventually(lambda: "start async" in log)
    # when the group is stopped
    group.stop()
    thread.join(30)
    # then the last added stopped first, and the pusher closed after every service
    assert log[-4:] == ["stop http", "stop async", "stop consumer", "close pusher"]
    assert errors == []
    assert group.exit_code is ExitCode.OK


def test_a_failing_service_stops_the_others_and_start_raises() -> None:
    log: list[str] = []
    group = ServiceGroup(handle_signals=False)
    other = group.add(Recording("other", log))
    group.add(Failing(other.running))
    thread, errors = run_in_thread(group)
    thread.join(30)
    [error] = errors
    assert isinstance(error, ServiceError)
    assert "service failing failed: RuntimeError('lost its database')" in str(error)
    assert isinstance(error.__cause__, RuntimeError)
    assert "stop other" in log
    assert group.exit_code is ExitCode.FAILED


def test_a_service_that_does_not_stop_in_its_grace_makes_an_unclean_exit() -> None:
    log: list[str] = []
    group = ServiceGroup(handle_signals=False, grace=0.2)
    slow = group.add(Recording("slow", log, stop_takes=1.0))
    thread, _ = run_in_thread(group)
    assert slow.running.wait(10)
    started = time.monotonic()
    group.stop()
    thread.join(30)
    # the group went on after the grace, and says so
    assert time.monotonic() - started < 1.0
    assert group.exit_code is ExitCode.UNCLEAN


class StopRaises:
    """A service whose stop() stops it, then raises: say, it could not flush."""

    name = "stop-raises"

    def __init__(self) -> None:
        self.stopped = threading.Event()
        self.running = threading.Event()

    def start(self) -> None:
        self.running.set()
        self.stopped.wait(60)

    def stop(self) -> None:
        self.stopped.set()
        raise RuntimeError("stop() failed to flush")


class AsyncStopRaises:
    name = "stop-raises"

    def __init__(self) -> None:
        self.running = threading.Event()
        self._stopped: asyncio.Event | None = None

    async def start(self) -> None:
        self._stopped = asyncio.Event()
        self.running.set()
        await self._stopped.wait()

    async def stop(self) -> None:
        assert self._stopped is not None
        self._stopped.set()
        raise RuntimeError("stop() failed to flush")


class FailsWhileStopping:
    """A service whose start() raises once it is asked to stop: it lost work."""

    name = "fails-while-stopping"

    def __init__(self) -> None:
        self.stopped = threading.Event()
        self.running = threading.Event()

    def start(self) -> None:
        self.running.set()
        self.stopped.wait(60)
        raise RuntimeError("lost work while stopping")

    def stop(self) -> None:
        self.stopped.set()


@pytest.fixture
def thread_errors(monkeypatch: pytest.MonkeyPatch) -> list[BaseException | None]:
    """What reached threading.excepthook: an error the group should have caught."""
    errors: list[BaseException | None] = []
    monkeypatch.setattr(threading, "excepthook", lambda args: errors.append(args.exc_value))
    return errors


@pytest.mark.parametrize("service_class", [StopRaises, AsyncStopRaises])
def test_a_stop_that_raises_fails_the_group_and_is_logged(
    service_class: Any,
    caplog: pytest.LogCaptureFixture,
    thread_errors: list[BaseException | None],
) -> None:
    # given a service whose stop() raises (sync: run on a thread of its own)
    caplog.set_level(logging.ERROR, logger="zeroqueue.service")
    group = ServiceGroup(handle_signals=False, grace=5)
    service = group.add(service_class())
    thread, errors = run_in_thread(group)
    assert service.running.wait(10)
    # when the group is stopped
    group.stop()
    thread.join(30)
    # then start() raises, naming the service and what its stop() raised
    [error] = errors
    assert isinstance(error, ServiceError)
    assert "service stop-raises's stop() raised RuntimeError('stop() failed to flush')" in str(
        error
    )
    assert isinstance(error.__cause__, RuntimeError)
    assert group.exit_code is ExitCode.FAILED
    # and the traceback went to the group's logger, not to threading.excepthook
    [record] = [r for r in caplog.records if "stop-raises" in r.getMessage()]
    assert record.exc_info is not None
    assert record.exc_info[1] is error.__cause__
    assert thread_errors == []


def test_a_service_that_raises_while_stopping_fails_the_group(
    caplog: pytest.LogCaptureFixture, thread_errors: list[BaseException | None]
) -> None:
    caplog.set_level(logging.ERROR, logger="zeroqueue.service")
    log: list[str] = []
    group = ServiceGroup(handle_signals=False, grace=5)
    other = group.add(Recording("other", log))
    failing = group.add(FailsWhileStopping())
    # run() returns the exit code rather than raising
    code: list[ExitCode] = []
    thread = threading.Thread(target=lambda: code.append(group.run()))
    thread.start()
    assert failing.running.wait(10)
    assert other.running.wait(10)
    group.stop()
    thread.join(30)
    assert code == [ExitCode.FAILED]
    # the others were still stopped, and the failure was logged with its traceback
    assert "stop other" in log
    [record] = [r for r in caplog.records if "fails-while-stopping" in r.getMessage()]
    assert "failed while stopping" in record.getMessage()
    assert record.exc_info is not None
    assert thread_errors == []


def test_start_raises_for_a_service_that_raises_while_stopping() -> None:
    group = ServiceGroup(handle_signals=False, grace=5)
    failing = group.add(FailsWhileStopping())
    thread, errors = run_in_thread(group)
    assert failing.running.wait(10)
    group.stop()
    thread.join(30)
    [error] = errors
    assert isinstance(error, ServiceError)
    assert (
        "service fails-while-stopping failed while stopping:"
        " RuntimeError('lost work while stopping'); the group stopped"
    ) in str(error)


@pytest.mark.timeout(10)
def test_a_signal_arriving_while_the_group_holds_its_lock_stops_it() -> None:
    # The signal handler calls stop() on the main thread, which holds the group's
    # lock now and then (between wake-ups in start()). raise_signal runs the handler
    # at once, here with the lock held: stop() must not wait for it (a deadlock).
    group = ServiceGroup(grace=5)
    service = group.add(Recording("service", []))
    restore = group._install_signals()
    try:
        with group._wake:
            signal.raise_signal(signal.SIGTERM)
    finally:
        restore()
    # then the stop took: started now, the group stops at once, cleanly
    group.start()
    assert service.running.is_set()
    assert group.exit_code is ExitCode.OK


def test_things_that_are_not_services_are_refused() -> None:
    group = ServiceGroup()
    with pytest.raises(ConfigError, match=r"expected an object with start\(\) and stop\(\)"):
        group.add(object())
    with pytest.raises(ConfigError, match=r"expected an object with close\(\)"):
        group.add_closer(object())
    with pytest.raises(ConfigError, match="grace: got -1"):
        ServiceGroup(grace=-1)
