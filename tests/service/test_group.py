"""ServiceGroup starts services together and stops them together, in reverse order."""

from __future__ import annotations

import asyncio
import threading
import time

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


def test_things_that_are_not_services_are_refused() -> None:
    group = ServiceGroup()
    with pytest.raises(ConfigError, match=r"expected an object with start\(\) and stop\(\)"):
        group.add(object())
    with pytest.raises(ConfigError, match=r"expected an object with close\(\)"):
        group.add_closer(object())
    with pytest.raises(ConfigError, match="grace: got -1"):
        ServiceGroup(grace=-1)
