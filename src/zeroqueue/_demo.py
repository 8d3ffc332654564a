"""``zeroqueue demo``: go-zero's login-log service, end to end, on a real Kafka protocol.

A Pusher publishes login events keyed by user (as the go-zero tutorial's
``PushWithKey(fmt.Sprintf("login_log_%d", u.Id), ...)``), a Queue consumes them
on several processors, and the report checks what a user of the library cares
about: every event handled, each user's events in order, a failing handler
retried rather than skipped, and the group's offsets committed to the end.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field

import click

from zeroqueue import admin
from zeroqueue.embedded import EmbeddedBroker
from zeroqueue.errors import ZeroQueueError
from zeroqueue.kq import KqConf, Pusher, Queue
from zeroqueue.message import Message

__all__ = ["DemoSettings", "run_demo"]

# Tansu holds a JoinGroup for half the session timeout and an empty fetch for
# half of max_wait: short values keep the demo's start-up and tail snappy.
_SESSION_TIMEOUT = 2.0
_MAX_WAIT = 0.2


@dataclass(frozen=True)
class DemoSettings:
    """What the demo pushes and how it consumes."""

    messages: int = 20_000
    users: int = 500
    partitions: int = 8
    processors: int = 8
    fail_every: int = 5_000
    brokers: Sequence[str] = ()
    timeout: float = 120.0


class LoginLogConsumer:
    """The tutorial's ``LoginLogConsumer``, plus the bookkeeping the report needs.

    ``consume`` takes the whole :class:`Message` (it could take ``(key, value)``
    like go-queue's) because the report needs offsets. It runs on several
    processors at once for different users; the Queue promises that one user's
    events arrive one at a time and in push order.
    """

    def __init__(self, fail_every: int) -> None:
        self._fail_every = fail_every
        self._lock = threading.Condition()
        self._next_seq: dict[str, int] = {}
        self._failed_once: set[int] = set()
        self.last_offsets: dict[int, int] = {}
        self.handled = 0
        self.duplicates = 0
        self.out_of_order: list[str] = []

    def consume(self, message: Message) -> None:
        """Handle one login event; the first try of every ``fail_every``-th one fails."""
        key = message.key_str
        event = json.loads(message.value_str)
        seq: int = event["seq"]
        with self._lock:
            failing = event["n"] % self._fail_every == self._fail_every - 1
            if failing and event["n"] not in self._failed_once:
                self._failed_once.add(event["n"])
                raise ConnectionError(f"audit store timed out saving {key} #{seq}")
            expected = self._next_seq.get(key, 0)
            if seq < expected:
                self.duplicates += 1
            elif seq > expected:
                self.out_of_order.append(f"{key}: got #{seq}, expected #{expected}")
            self._next_seq[key] = max(expected, seq + 1)
            last = self.last_offsets.get(message.partition, -1)
            self.last_offsets[message.partition] = max(last, message.offset)
            self.handled += 1
            self._lock.notify_all()

    @property
    def failed_attempts(self) -> int:
        """Attempts the handler failed on purpose."""
        with self._lock:
            return len(self._failed_once)

    def wait_for(self, count: int, timeout: float, on_progress: Callable[[int], None]) -> bool:
        """Wait until ``count`` events were handled, reporting progress as it goes."""
        deadline = time.monotonic() + timeout
        with self._lock:
            while self.handled < count:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._lock.wait(min(remaining, 0.1))
                on_progress(self.handled)
        return True


@dataclass
class DemoReport:
    """What happened, and whether it is what at-least-once and per-key order promise."""

    pushed: int = 0
    push_seconds: float = 0.0
    join_seconds: float = 0.0
    consume_seconds: float = 0.0
    handled: int = 0
    duplicates: int = 0
    out_of_order: list[str] = field(default_factory=list)
    errors_reported: int = 0
    failed_attempts: int = 0
    last_offsets: dict[int, int] = field(default_factory=dict)
    committed: dict[int, int | None] = field(default_factory=dict)

    @property
    def committed_to_end(self) -> list[int]:
        """Partitions whose committed offset is just past the last event handled there."""
        return [
            partition
            for partition, last in self.last_offsets.items()
            if self.committed.get(partition) == last + 1
        ]

    @property
    def ok(self) -> bool:
        """Every event handled once in order, no failure skipped, everything committed."""
        return (
            self.handled - self.duplicates == self.pushed
            and not self.out_of_order
            and self.errors_reported == self.failed_attempts
            and len(self.committed_to_end) == len(self.last_offsets)
        )


def _login_events(settings: DemoSettings) -> Iterator[tuple[str, str]]:
    seq: dict[int, int] = {}
    for n in range(settings.messages):
        user = n * 7919 % settings.users  # scatter users, as real logins are
        seq[user] = seq.get(user, -1) + 1
        event = {
            "n": n,
            "user_id": user,
            "seq": seq[user],
            "ip": f"10.0.{user // 250}.{user % 250}",
        }
        yield f"login_log_{user}", json.dumps(event)


@contextmanager
def _cluster(settings: DemoSettings) -> Iterator[list[str]]:
    if settings.brokers:
        yield list(settings.brokers)
        return
    with EmbeddedBroker() as broker:
        click.echo(f"broker    {broker.bootstrap_servers}  (embedded Tansu, in memory)")
        click.echo(f"          log: {broker.log_path}")
        yield [broker.bootstrap_servers]


def _push(brokers: list[str], topic: str, settings: DemoSettings, report: DemoReport) -> None:
    started = time.perf_counter()
    with (
        Pusher(brokers, topic) as pusher,
        click.progressbar(
            _login_events(settings), length=settings.messages, label="pushing  "
        ) as events,
    ):
        for key, value in events:
            pusher.push_with_key(key, value)
    # close() flushed: every event is acknowledged by the broker (acks=all) by now.
    report.push_seconds = time.perf_counter() - started
    report.pushed = settings.messages


def _consume(brokers: list[str], topic: str, settings: DemoSettings, report: DemoReport) -> str:
    group = f"login-log-demo-{uuid.uuid4().hex[:8]}"
    conf = KqConf(
        Name="log-consumer",
        Brokers=brokers,
        Group=group,
        Topic=topic,
        Offset="first",
        Processors=settings.processors,
        ForceCommit=False,
    )
    consumer = LoginLogConsumer(settings.fail_every)
    failure: list[BaseException] = []
    reported: list[int] = []

    def count_error(message: Message, error: BaseException) -> None:
        reported.append(message.offset)  # list.append is atomic across worker threads
        if not isinstance(error, ConnectionError):  # not one of the planned failures
            failure.append(error)

    queue = Queue(
        conf,
        consumer,
        session_timeout=_SESSION_TIMEOUT,
        max_wait=_MAX_WAIT,
        retry_backoff=0.05,
        error_handler=count_error,
    )

    def run() -> None:
        try:
            queue.start()
        except BaseException as exc:
            failure.append(exc)

    started = time.perf_counter()
    thread = threading.Thread(target=run, name="demo-queue", daemon=True)
    thread.start()
    shown = 0
    with click.progressbar(length=settings.messages, label="consuming") as bar:

        def advance(handled: int) -> None:
            nonlocal shown
            if failure:
                raise failure[0]
            if not report.join_seconds and queue.assignment():
                report.join_seconds = time.perf_counter() - started
            bar.update(handled - shown)
            shown = handled

        try:
            finished = consumer.wait_for(settings.messages, settings.timeout, advance)
            report.consume_seconds = time.perf_counter() - started - report.join_seconds
        finally:
            queue.stop()  # drains in-flight messages, commits, leaves the group
            thread.join(settings.timeout)
    if failure:
        raise failure[0]
    if not finished:
        click.echo(f"timed out after {settings.timeout}s", err=True)
    report.handled = consumer.handled
    report.duplicates = consumer.duplicates
    report.out_of_order = consumer.out_of_order
    report.failed_attempts = consumer.failed_attempts
    report.last_offsets = dict(consumer.last_offsets)
    report.errors_reported = len(reported)
    return group


def run_demo(settings: DemoSettings) -> DemoReport:
    """Push login events, consume them with a Queue, and report what happened."""
    report = DemoReport()
    click.echo("zeroqueue demo: go-zero's login-log service on Kafka")
    with _cluster(settings) as brokers:
        topic = "login-log" if not settings.brokers else f"login-log-{uuid.uuid4().hex[:8]}"
        admin.create_topic(brokers, topic, partitions=settings.partitions)
        click.echo(f"topic     {topic}  ({settings.partitions} partitions)")
        _push(brokers, topic, settings, report)
        group = _consume(brokers, topic, settings, report)
        report.committed = admin.committed_offsets(brokers, group, topic)
        if settings.brokers:
            _clean_up(brokers, topic, group)
    _print_report(settings, report)
    return report


def _clean_up(brokers: list[str], topic: str, group: str) -> None:
    """Remove the demo's own topic and group from the user's cluster."""
    try:
        admin.delete_group(brokers, group)
        admin.delete_topic(brokers, topic)
    except ZeroQueueError as exc:
        click.echo(f"cleanup   could not remove topic {topic} and group {group}: {exc}", err=True)
        return
    click.echo(f"cleanup   removed topic {topic} and group {group} from your cluster")


def _rate(count: int, seconds: float) -> str:
    return f"{count / seconds:,.0f} msg/s" if seconds > 0 else "-"


def _print_report(settings: DemoSettings, report: DemoReport) -> None:
    users = min(settings.users, settings.messages)
    unique = report.handled - report.duplicates
    lines = [
        "",
        f"pushed    {report.pushed:,} login events for {users:,} users with "
        f"Pusher.push_with_key in {report.push_seconds:.2f}s, connecting included "
        f"({_rate(report.pushed, report.push_seconds)})",
        f"consumed  {unique:,} of {report.pushed:,} with Queue "
        f"(Processors={settings.processors}) in {report.consume_seconds:.2f}s "
        f"({_rate(unique, report.consume_seconds)}) after joining the group in "
        f"{report.join_seconds:.2f}s",
        f"order     {'intact for every user' if not report.out_of_order else 'BROKEN'}: "
        f"{len(report.out_of_order)} events out of per-user order",
        f"failures  {report.failed_attempts} handler calls failed on purpose; "
        f"{report.errors_reported} reported to error_handler"
        + (
            ", each retried until it succeeded (ForceCommit=false), none skipped"
            if report.ok
            else ""
        ),
        f"repeats   {report.duplicates} events handled twice",
        f"committed {len(report.committed_to_end)}/{len(report.last_offsets)} partitions: "
        "the group's offset sits just past the last event handled there",
        "",
        "OK: nothing lost, per-user order kept" if report.ok else "FAILED: see above",
    ]
    lines.extend(f"  {problem}" for problem in report.out_of_order[:10])
    for line in lines:
        click.echo(line)
