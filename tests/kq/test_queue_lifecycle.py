"""Queue start/stop edges on a real broker: errors that end start(), signals, odd handlers."""

from __future__ import annotations

import asyncio
import functools
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any

import pytest

from tests.engine.fake_source import FakeSource
from tests.kafka_helpers import Recorder, eventually, fast_queue_options, running
from zeroqueue import ConfigError, ConsumeError, KqConf, Message, Pusher, Queue, admin
from zeroqueue.engine.source import RebalanceListener


def conf(brokers: list[str], topic: str, group: str, **extra: Any) -> KqConf:
    return KqConf(Brokers=brokers, Group=group, Topic=topic, Offset="first", **extra)


def push(brokers: list[str], topic: str, count: int, keys: int = 10) -> None:
    with Pusher(brokers, topic) as pusher:
        for i in range(count):
            pusher.push_with_key(f"k{i % keys}", str(i))


def test_a_topic_that_stays_missing_ends_start_naming_it(brokers: list[str], group: str) -> None:
    # given a Queue subscribed to a topic nobody created
    queue = Queue(
        conf(brokers, "no-such-topic-anywhere", group),
        Recorder(),
        connect_timeout=2.0,
        **fast_queue_options(),
    )
    started = time.monotonic()
    # then start() ends with an error naming the topic, after connect_timeout, not never
    with pytest.raises(ConsumeError, match=r"'no-such-topic-anywhere' still does not exist"):
        queue.start()
    assert time.monotonic() - started < 2.0 + 10.0


@pytest.mark.kafka_only
def test_a_fenced_static_member_ends_start_with_the_cause(
    brokers: list[str], new_topic: Callable[[int], str], group: str
) -> None:
    # given a static member (group.instance.id) consuming a topic
    topic = new_topic(2)
    static = {"group.instance.id": "the-one"}
    first = Queue(
        conf(brokers, topic, group),
        Recorder(),
        kafka_config=static,
        **(fast_queue_options() | {"session_timeout": 6.0}),
    )
    errors: list[BaseException] = []

    def run() -> None:
        try:
            first.start()
        except BaseException as exc:
            errors.append(exc)

    thread = threading.Thread(target=run)
    thread.start()
    try:
        assert eventually(lambda: bool(first.assignment()))
        # when a second member joins with the same group.instance.id, fencing the first
        second = Queue(
            conf(brokers, topic, group),
            Recorder(),
            kafka_config=static,
            **(fast_queue_options() | {"session_timeout": 6.0}),
        )
        with running(second):
            # then the first one's start() ends with a ConsumeError saying why
            thread.join(30)
            assert not thread.is_alive()
    finally:
        first.stop()
        thread.join(30)
    [error] = errors
    assert isinstance(error, ConsumeError)
    assert "fenced" in str(error)


def test_a_queue_stopped_before_it_started_does_not_raise(brokers: list[str], group: str) -> None:
    queue = Queue(conf(brokers, "t", group), Recorder(), **fast_queue_options())
    # stop() may win the race with the thread that runs start()
    queue.stop()
    queue.start()  # returns at once: there is nothing to run
    with Queue(conf(brokers, "t", group), Recorder(), **fast_queue_options()).running():
        pass


def test_an_async_handler_behind_a_functools_wraps_decorator_runs(
    brokers: list[str], new_topic: Callable[[int], str], group: str
) -> None:
    # given an async handler wrapped by a sync decorator (functools.wraps), as tracing or
    # retry decorators do
    topic = new_topic(2)
    push(brokers, topic, 200)
    ran: list[str] = []

    def traced(func: Callable[[str, str], Awaitable[None]]) -> Callable[[str, str], Any]:
        @functools.wraps(func)
        def wrapper(key: str, value: str) -> Awaitable[None]:
            return func(key, value)

        return wrapper

    @traced
    async def handle(key: str, value: str) -> None:
        await asyncio.sleep(0)
        ran.append(value)

    # when a Queue consumes with it
    queue = Queue(conf(brokers, topic, group), handle, **fast_queue_options())
    assert queue.handler.is_async
    with running(queue):
        assert eventually(lambda: len(ran) == 200)
    # then every handler body ran (before, the coroutines were dropped and committed)
    assert sorted(int(v) for v in ran) == list(range(200))


def test_a_sync_handler_returning_a_coroutine_stops_the_queue_committing_nothing(
    brokers: list[str], new_topic: Callable[[int], str], group: str
) -> None:
    # given a plain function that returns a coroutine it never runs, and ForceCommit
    # (which would commit past a failed message)
    topic = new_topic(1)
    push(brokers, topic, 3)

    async def body(key: str, value: str) -> None:
        raise AssertionError("never awaited, never run")

    queue = Queue(
        conf(brokers, topic, group),
        lambda key, value: body(key, value),  # noqa: PLW0108 - a sync function, on purpose
        **fast_queue_options(),
    )
    # then the queue stops with an error that says what is wrong, as for any bug
    with pytest.raises(ConsumeError) as info:
        queue.start()
    assert "returned coroutine instead of running" in str(info.value.__cause__)
    # and nothing was committed: the next consumer of the group gets every message
    assert admin.committed_offsets(brokers, group, topic) == {0: None}


def test_a_handler_with_an_optional_second_argument_is_refused_as_ambiguous() -> None:
    def handle(key: str, value: str | None = None) -> None: ...

    with pytest.raises(ConfigError, match=r"one required argument and more optional ones"):
        Queue(KqConf(Brokers=["127.0.0.1:1"], Group="g", Topic="t"), handle)

    def annotated(message: Message, extra: int = 0) -> None: ...

    assert Queue(KqConf(Brokers=["127.0.0.1:1"], Group="g", Topic="t"), annotated).handler
    assert Queue(
        KqConf(Brokers=["127.0.0.1:1"], Group="g", Topic="t"), annotated
    ).handler.takes_message


def test_a_handler_raising_system_exit_is_a_failed_message_not_a_crash(
    brokers: list[str], new_topic: Callable[[int], str], group: str
) -> None:
    topic = new_topic(1)
    push(brokers, topic, 3, keys=1)
    failures: list[BaseException] = []
    seen: list[str] = []

    def handle(key: str, value: str) -> None:
        if value == "1":
            raise SystemExit(3)
        seen.append(value)

    queue = Queue(
        conf(brokers, topic, group),
        handle,
        error_handler=lambda message, error: failures.append(error),
        **fast_queue_options(),
    )
    with running(queue):  # re-raises what start() raised: nothing, here
        assert eventually(lambda: len(seen) == 2)
    assert seen == ["0", "2"]
    assert [type(error) for error in failures] == [SystemExit]


_SIGNAL_SCRIPT = """
import logging, signal, sys, time
from zeroqueue import KqConf, Queue
logging.basicConfig(stream=sys.stdout, level=logging.INFO, format="%(message)s")
brokers, topic, group, mode = sys.argv[1:5]
seen = []
def app_handler(signum, frame):
    print("app handler ran", flush=True)
signal.signal(signal.SIGTERM, app_handler)
def handle(key, value):
    seen.append(value)
    print("handling", flush=True)
    if mode == "hang":
        time.sleep(3600)
queue = Queue(
    KqConf(Brokers=[brokers], Group=group, Topic=topic, Offset="first"),
    handle,
    session_timeout=2.0,
    max_wait=0.1,
    shutdown_timeout=30.0,
    handle_signals=(mode != "app"),
)
if mode == "app":
    def app_stop(signum, frame):
        print("the app stops the queue", flush=True)
        queue.stop(wait=False)
    signal.signal(signal.SIGUSR1, app_stop)
try:
    queue.start()
except KeyboardInterrupt:
    print("interrupted", flush=True)
    sys.exit(130)
print("stopped", len(seen), flush=True)
"""


def _spawn(tmp_path: Path, *args: str) -> subprocess.Popen[str]:
    script = tmp_path / "signals.py"
    script.write_text(_SIGNAL_SCRIPT)
    env = os.environ | {"PYTHONUNBUFFERED": "1"}
    return subprocess.Popen(
        [sys.executable, str(script), *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        env=env,
    )


def _read_until(process: subprocess.Popen[str], text: str, timeout: float = 30.0) -> None:
    assert process.stdout is not None
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        line = process.stdout.readline()
        if text in line:
            return
        if not line and process.poll() is not None:
            break
    raise AssertionError(f"{text!r} never printed")


def test_sigterm_stops_the_queue_and_still_runs_the_applications_handler(
    brokers: list[str], new_topic: Callable[[int], str], group: str, tmp_path: Path
) -> None:
    topic = new_topic(1)
    push(brokers, topic, 5)
    process = _spawn(tmp_path, brokers[0], topic, group, "plain")
    try:
        _read_until(process, "handling")
        process.send_signal(signal.SIGTERM)
        out, _ = process.communicate(timeout=60)
    finally:
        process.kill()
    assert "app handler ran" in out  # chained after the queue's own
    assert "stopped 5" in out
    assert process.returncode == 0


def test_a_second_sigint_exits_at_once(
    brokers: list[str], new_topic: Callable[[int], str], group: str, tmp_path: Path
) -> None:
    # given a queue whose handler hangs, with a 30 s shutdown_timeout
    topic = new_topic(1)
    push(brokers, topic, 1)
    process = _spawn(tmp_path, brokers[0], topic, group, "hang")
    try:
        _read_until(process, "handling")
        # when Ctrl-C comes twice
        process.send_signal(signal.SIGINT)
        _read_until(process, "received SIGINT, stopping")  # waiting for the handler
        started = time.monotonic()
        process.send_signal(signal.SIGINT)
        out, _ = process.communicate(timeout=20)
    finally:
        process.kill()
    # then the second one leaves start() at once instead of waiting 30 s
    assert "interrupted" in out
    assert process.returncode == 130
    assert time.monotonic() - started < 10


def test_with_handle_signals_off_the_application_keeps_its_signals(
    brokers: list[str], new_topic: Callable[[int], str], group: str, tmp_path: Path
) -> None:
    # given a queue started on the main thread with handle_signals=False
    topic = new_topic(1)
    push(brokers, topic, 1)
    process = _spawn(tmp_path, brokers[0], topic, group, "app")
    try:
        _read_until(process, "handling")
        # when SIGTERM comes: only the application's handler runs, the queue goes on
        process.send_signal(signal.SIGTERM)
        _read_until(process, "app handler ran")
        # and the application stops it its own way
        process.send_signal(signal.SIGUSR1)
        out, _ = process.communicate(timeout=60)
    finally:
        process.kill()
    assert "the app stops the queue" in out
    assert "received SIGTERM" not in out
    assert "stopped 1" in out
    assert process.returncode == 0


def _fake_source_factory(
    values: Sequence[str], made: list[FakeSource] | None = None
) -> Callable[..., FakeSource]:
    """A source_factory of FakeSources of topic "t", holding ``values``; ``made`` gets them."""

    def make_source(
        settings: dict[str, Any],
        topics: Sequence[str],
        listener: RebalanceListener,
        *,
        missing_topic_timeout: float,
    ) -> FakeSource:
        assert list(topics) == ["t"]
        source = FakeSource(listener, [("t", 0)])
        source.add(list(values))
        if made is not None:
            made.append(source)
        return source

    return make_source


@pytest.mark.builds_records
def test_a_queue_runs_on_a_source_it_is_given() -> None:
    # given a source of the test's own (no broker at all), holding three messages
    sources: list[FakeSource] = []
    recorder = Recorder()
    queue = Queue(
        KqConf(Brokers=["memory:0"], Group="g", Topic="t"),
        recorder,
        source_factory=_fake_source_factory(["a", "b", "c"], sources),
    )
    # when the queue runs
    with queue.running():
        assert recorder.wait_for(3, timeout=10)
    # then it handled them and committed through that source
    assert [value for _, value in recorder.seen] == ["a", "b", "c"]
    [source] = sources
    assert source.committed() == 3


@pytest.mark.builds_records
@pytest.mark.parametrize("adaptive", [True, False])
def test_stop_from_a_handler_returns_at_once(adaptive: bool) -> None:
    # given a handler that stops its own queue (on a worker, or on the fetch thread)
    returned: list[float] = []
    queue: Queue

    def handle(key: str, value: str) -> None:
        started = time.monotonic()
        queue.stop()  # waits for nothing it would itself hold up
        returned.append(time.monotonic() - started)

    queue = Queue(
        KqConf(Brokers=["memory:0"], Group="g", Topic="t"),
        handle,
        adaptive=adaptive,
        shutdown_timeout=5.0,
        source_factory=_fake_source_factory(["a"]),
    )
    started = time.monotonic()
    queue.start()
    # then stop() returned at once, and so did start()
    [took] = returned
    assert took < 1.0
    assert time.monotonic() - started < 5.0


def test_stop_while_start_waits_for_the_cluster_returns_quietly() -> None:
    # given a queue whose cluster does not answer, with a long connect_timeout
    queue = Queue(
        KqConf(Brokers=["127.0.0.1:1"], Group="g", Topic="t"),
        Recorder(),
        connect_timeout=30.0,
        shutdown_timeout=1.0,
    )
    outcome: list[BaseException | None] = []

    def run() -> None:
        try:
            queue.start()
            outcome.append(None)
        except BaseException as exc:
            outcome.append(exc)

    thread = threading.Thread(target=run)
    thread.start()
    assert eventually(lambda: queue._state == "starting", timeout=10)
    # when it is stopped while waiting
    started = time.monotonic()
    queue.stop()
    thread.join(10)
    # then start() returns soon, without a BrokerUnavailableError it was not asked for
    assert time.monotonic() - started < 3.0
    assert outcome == [None]
