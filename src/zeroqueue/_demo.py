"""``zeroqueue demo``: go-zero's login-log service, run and driven over HTTP.

It starts the example service (``examples/login_log``: a FastAPI app whose login
endpoint pushes with an AsyncPusher, and a Queue that stores the login logs in
SQLite, in one ServiceGroup) on the embedded broker, posts logins from
concurrent HTTP clients, reads every user's logins back over HTTP, stops the
group as a SIGTERM would, and reports what a user of the library cares about:
nothing lost, each user's logins in order, failing stores retried rather than
skipped, the group's offsets committed to the end.
"""

from __future__ import annotations

import asyncio
import os
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import click

from zeroqueue import admin
from zeroqueue.conf import load, setup_logging
from zeroqueue.embedded import EmbeddedBroker
from zeroqueue.errors import ConfigError, ZeroQueueError
from zeroqueue.service import AsgiServer, ExitCode, ServiceGroup, import_service

__all__ = ["DemoSettings", "run_demo"]


@dataclass(frozen=True)
class DemoSettings:
    """What the demo drives and how."""

    logins: int = 3_000
    users: int = 200
    clients: int = 8
    partitions: int = 8
    fail_every: int = 1_000
    brokers: Sequence[str] = ()
    service: str = "examples/login_log"
    timeout: float = 120.0


@dataclass
class DemoReport:
    """What happened, and whether it is what at-least-once and per-key order promise."""

    posted: int = 0
    post_seconds: float = 0.0
    store_seconds: float = 0.0
    stored: int = 0
    users_checked: int = 0
    missing: list[str] = field(default_factory=list)
    out_of_order: list[str] = field(default_factory=list)
    failed_on_purpose: int = 0
    repeats: int = 0
    last_offsets: dict[int, int] = field(default_factory=dict)
    committed: dict[int, int | None] = field(default_factory=dict)
    exit_code: ExitCode | None = None

    @property
    def committed_to_end(self) -> list[int]:
        """Partitions whose committed offset is just past the last login stored there."""
        return [p for p, last in self.last_offsets.items() if self.committed.get(p) == last + 1]

    @property
    def ok(self) -> bool:
        """Every login stored and read back in order, nothing skipped, all committed."""
        return (
            self.stored == self.posted
            and not self.missing
            and not self.out_of_order
            and len(self.committed_to_end) == len(self.last_offsets)
            and self.exit_code == ExitCode.OK
        )


def _service_dir(settings: DemoSettings) -> Path:
    path = Path(settings.service)
    if not (path / "etc" / "config.yaml").is_file():
        raise ConfigError(
            f"the demo drives the example service in {settings.service!r}, which is not here:"
            " run it from a clone of the zeroqueue repository, or pass --service"
        )
    return path


@contextmanager
def _cluster(settings: DemoSettings) -> Iterator[list[str]]:
    if settings.brokers:
        yield list(settings.brokers)
        return
    with EmbeddedBroker() as broker:
        click.echo(f"broker    {broker.bootstrap_servers}  (embedded Tansu, in memory)")
        yield [broker.bootstrap_servers]


def run_demo(settings: DemoSettings) -> DemoReport:
    """Run the login-log service, drive it over HTTP, stop it, and report what happened."""
    service = _service_dir(settings)
    module = import_service(str(service))
    report = DemoReport()
    click.echo("zeroqueue demo: go-zero's login-log service (HTTP API + Queue) on Kafka")
    with _cluster(settings) as brokers, tempfile.TemporaryDirectory() as tmp:
        os.environ.update(
            KAFKA_BROKERS=",".join(brokers),
            LOGIN_LOG_PORT="0",
            LOGIN_LOG_DATABASE=str(Path(tmp) / "login_log.db"),
        )
        group = ServiceGroup(handle_signals=False, grace=settings.timeout)
        conf = _for_this_run(load(service / "etc" / "config.yaml", module.Config), settings)
        ctx = module.setup(conf, group)
        topic, group_id = conf.kq_consumer_conf.topic, conf.kq_consumer_conf.group
        admin.create_topic(brokers, topic, partitions=settings.partitions)
        click.echo(f"topic     {topic}  ({settings.partitions} partitions), group {group_id}")
        runner = threading.Thread(target=group.run, name="demo-services", daemon=True)
        runner.start()
        try:
            http = next(s for s in group.services if isinstance(s, AsgiServer))
            if not http.wait_started(30):
                raise ZeroQueueError("the HTTP server did not start within 30s")
            base = f"http://127.0.0.1:{http.port}"
            click.echo(f"service   {base}  (POST /login, GET /users/{{id}}/logins)")
            asyncio.run(_drive(base, settings, report, ctx))
            report.last_offsets = ctx.store.last_offsets()
        finally:
            group.stop()  # as SIGTERM: HTTP server first, then the consumer, then the pusher
            runner.join(settings.timeout + 30)
        report.exit_code = group.exit_code
        report.failed_on_purpose = ctx.consumer.failed_on_purpose
        report.repeats = ctx.store.repeats
        report.committed = admin.committed_offsets(brokers, group_id, topic)
        if settings.brokers:
            _clean_up(brokers, topic, group_id)
    _print_report(settings, report)
    return report


def _for_this_run(conf: Any, settings: DemoSettings) -> Any:
    """The example's config with the demo's knobs.

    Failures on purpose, quiet logs (the report is the output), and on a cluster
    of the user's own, a topic and group of its own.
    """
    update: dict[str, Any] = {
        "fail_every": settings.fail_every,
        "log": conf.log.model_copy(update={"level": "error"}),
    }
    if settings.brokers:
        suffix = uuid.uuid4().hex[:8]
        topic, group = f"login-log-{suffix}", f"login-log-demo-{suffix}"
        update["kq_pusher_conf"] = conf.kq_pusher_conf.model_copy(update={"topic": topic})
        update["kq_consumer_conf"] = conf.kq_consumer_conf.model_copy(
            update={"topic": topic, "group": group}
        )
    conf = conf.model_copy(update=update)
    setup_logging(conf)
    return conf


async def _drive(base: str, settings: DemoSettings, report: DemoReport, ctx: Any) -> None:
    import httpx  # noqa: PLC0415 - the demo extra

    users = min(settings.users, settings.logins)
    per_user: dict[int, int] = {}
    plan: list[list[tuple[int, int]]] = [[] for _ in range(settings.clients)]
    for n in range(settings.logins):
        user = n * 7919 % users  # scatter users, as real logins are
        per_user[user] = per_user.get(user, 0) + 1
        # One client per user, posting in order: the order to keep is the posting order.
        plan[user % settings.clients].append((user, n))
    limits = httpx.Limits(max_connections=settings.clients)
    async with httpx.AsyncClient(base_url=base, limits=limits, timeout=30) as client:
        with click.progressbar(length=settings.logins, label="posting  ") as bar:
            started = time.perf_counter()

            async def post(logins: list[tuple[int, int]]) -> None:
                for user, n in logins:
                    reply = await client.post(
                        "/login", json={"user_id": user, "ip": f"10.0.0.{user % 250}", "n": n}
                    )
                    reply.raise_for_status()
                    bar.update(1)

            await asyncio.gather(*(post(logins) for logins in plan))
            report.post_seconds = time.perf_counter() - started
            report.posted = settings.logins
        with click.progressbar(length=settings.logins, label="storing  ") as bar:
            stored, deadline = 0, time.monotonic() + settings.timeout
            while stored < settings.logins and time.monotonic() < deadline:
                now = (await client.get("/stats")).json()["stored"]
                bar.update(now - stored)
                stored = now
                await asyncio.sleep(0.05)
            report.store_seconds = time.perf_counter() - started - report.post_seconds
            report.stored = stored
        for user, count in sorted(per_user.items()):
            rows = (await client.get(f"/users/{user}/logins")).json()
            seqs = [row["seq"] for row in rows]
            if sorted(seqs) != list(range(count)):
                report.missing.append(f"user {user}: {len(seqs)} of {count} logins")
            elif seqs != list(range(count)):
                report.out_of_order.append(f"user {user}: stored as {seqs[:10]}...")
            report.users_checked += 1


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
    return f"{count / seconds:,.0f}/s" if seconds > 0 else "-"


def _print_report(settings: DemoSettings, report: DemoReport) -> None:
    users = min(settings.users, settings.logins)
    lines = [
        "",
        f"posted    {report.posted:,} logins of {users:,} users from {settings.clients} HTTP"
        f" clients in {report.post_seconds:.2f}s ({_rate(report.posted, report.post_seconds)});"
        " each pushed with AsyncPusher.push_with_key",
        f"stored    {report.stored:,} of {report.posted:,} by the Queue into SQLite, the last"
        f" {report.store_seconds:.2f}s after the last post",
        f"read back {report.users_checked:,} users over GET /users/{{id}}/logins: "
        + (
            "every login there, in the order it was posted"
            if not (report.missing or report.out_of_order)
            else f"{len(report.missing)} users missing logins, "
            f"{len(report.out_of_order)} out of order"
        ),
        f"failures  {report.failed_on_purpose} stores failed on purpose, each retried until it"
        " succeeded (ForceCommit: false), none skipped",
        f"repeats   {report.repeats} logins handled twice",
        f"committed {len(report.committed_to_end)}/{len(report.last_offsets)} partitions: the"
        " group's offset sits just past the last login stored there",
        f"stopped   HTTP server first, then the consumer, then the pusher flushed: exit code"
        f" {int(report.exit_code) if report.exit_code is not None else '-'}",
        "",
        "OK: nothing lost, per-user order kept" if report.ok else "FAILED: see above",
    ]
    lines.extend(f"  {problem}" for problem in (report.missing + report.out_of_order)[:10])
    for line in lines:
        click.echo(line)
