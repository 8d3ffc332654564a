"""The login-log service: config, service context, HTTP API, consumer, and setup().

As in go-zero's tutorial: a Config embedding RestConf with KqPusherConf and
KqConsumerConf sections; a ServiceContext holding the clients; a login endpoint
that pushes a JSON login log keyed ``login_log_<user id>`` (one user's logs keep
their order); a consumer in the same ServiceGroup that stores them (here in
SQLite); and an endpoint that serves them back.
"""

from __future__ import annotations

import json
import logging
import sqlite3
import threading
import time
from typing import Any

from fastapi import FastAPI, HTTPException
from pydantic import BaseModel

from zeroqueue import AsyncPusher, KqConf, Message, PusherConf, Queue
from zeroqueue.conf import RestConf
from zeroqueue.service import AsgiServer, ServiceGroup


class Config(RestConf):
    """etc/config.yaml: RestConf's keys at the top level, then the service's own."""

    kq_pusher_conf: PusherConf
    kq_consumer_conf: KqConf
    database: str = ":memory:"
    fail_every: int = 0


class Store:
    """Login logs in SQLite, one row per (user, sequence number): a redelivery is a no-op."""

    def __init__(self, path: str) -> None:
        self._lock = threading.Lock()
        self._db = sqlite3.connect(path, check_same_thread=False)
        # Write-ahead log, synced at checkpoints: a commit per login log stays cheap.
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.execute(
            "CREATE TABLE IF NOT EXISTS login_log (user_id INTEGER, seq INTEGER, ip TEXT,"
            " device TEXT, at TEXT, topic_offset TEXT, PRIMARY KEY (user_id, seq))"
        )
        self.saved = 0
        self.repeats = 0

    def save(self, event: dict[str, Any], where: str) -> None:
        """Store one login log (once: a redelivered one is counted as a repeat)."""
        with self._lock:
            cursor = self._db.execute(
                "INSERT OR IGNORE INTO login_log VALUES (?, ?, ?, ?, ?, ?)",
                (event["user_id"], event["seq"], event["ip"], event["device"], event["at"], where),
            )
            self._db.commit()
            if cursor.rowcount:
                self.saved += 1
            else:
                self.repeats += 1

    def logins(self, user_id: int) -> list[dict[str, Any]]:
        """A user's login logs, in the order they were stored."""
        with self._lock:
            rows = self._db.execute(
                "SELECT seq, ip, device, at FROM login_log WHERE user_id = ? ORDER BY rowid",
                (user_id,),
            ).fetchall()
        return [{"seq": s, "ip": ip, "device": d, "at": at} for s, ip, d, at in rows]

    def last_offsets(self) -> dict[int, int]:
        """Per partition, the offset of the last login log stored (for the demo's report)."""
        with self._lock:
            rows = self._db.execute("SELECT topic_offset FROM login_log").fetchall()
        last: dict[int, int] = {}
        for (where,) in rows:
            partition, offset = map(int, where.split(":"))
            last[partition] = max(last.get(partition, -1), offset)
        return last

    def count(self) -> int:
        """How many login logs are stored."""
        with self._lock:
            (count,) = self._db.execute("SELECT COUNT(*) FROM login_log").fetchone()
        return int(count)

    def close(self) -> None:
        """Close the database."""
        with self._lock:
            self._db.close()


class ServiceContext:
    """What the handlers share: go-zero's svc.ServiceContext."""

    def __init__(self, conf: Config) -> None:
        self.config = conf
        self.pusher = AsyncPusher.from_conf(conf.kq_pusher_conf)
        self.store = Store(conf.database)
        self.next_seq: dict[int, int] = {}
        self.consumer = LoginLogConsumer(self)


_log = logging.getLogger("login_log")


class LoginLogConsumer:
    """go-queue's ConsumeHandler: stores each login log, in push order for each user."""

    def __init__(self, ctx: ServiceContext) -> None:
        self._ctx = ctx
        self._fail_every = ctx.config.fail_every
        self._failed_once: set[str] = set()
        self._lock = threading.Lock()
        self.failed_on_purpose = 0

    def report_failure(self, message: Message, error: BaseException) -> None:
        """The Queue's error_handler: a failed store is retried (ForceCommit: false)."""
        _log.warning("storing %s@%d failed, will retry: %s", message.key, message.offset, error)

    def consume(self, message: Message) -> None:
        """Store one login log; with FailEvery, the first try of every N-th one fails."""
        event = json.loads(message.value_str)
        where = f"{message.partition}:{message.offset}"
        if self._fail_every and event["n"] % self._fail_every == self._fail_every - 1:
            with self._lock:
                first_try = where not in self._failed_once
                self._failed_once.add(where)
                if first_try:
                    self.failed_on_purpose += 1
            if first_try:
                raise ConnectionError(f"store timed out saving {message.key_str} #{event['seq']}")
        self._ctx.store.save(event, where)


class Login(BaseModel):
    """A login, as the client reports it."""

    user_id: int
    ip: str
    device: str = "pc"
    n: int = 0


def make_app(ctx: ServiceContext) -> FastAPI:
    """The HTTP API: POST /login pushes a login log; GET reads them back."""
    app = FastAPI(title="login-log")
    seq_lock = threading.Lock()

    @app.post("/login")
    async def login(body: Login) -> dict[str, Any]:
        with seq_lock:
            seq = ctx.next_seq.get(body.user_id, 0)
            ctx.next_seq[body.user_id] = seq + 1
        event = {
            "user_id": body.user_id,
            "seq": seq,
            "ip": body.ip,
            "device": body.device,
            "n": body.n,
            "at": time.strftime("%Y-%m-%d %H:%M:%S"),
        }
        # One key per user: the user's login logs land on one partition, in order. (No
        # await between taking the sequence number and queueing the log: a push that
        # finds room is queued before the coroutine first yields.)
        await ctx.pusher.push_with_key(f"login_log_{body.user_id}", json.dumps(event))
        return {"user_id": body.user_id, "seq": seq}

    @app.get("/users/{user_id}/logins")
    async def logins(user_id: int) -> list[dict[str, Any]]:
        return ctx.store.logins(user_id)

    @app.get("/stats")
    async def stats() -> dict[str, int]:
        return {"stored": ctx.store.count(), "repeats": ctx.store.repeats}

    @app.get("/users/{user_id}/last")
    async def last(user_id: int) -> dict[str, Any]:
        rows = ctx.store.logins(user_id)
        if not rows:
            raise HTTPException(404, f"no login of user {user_id}")
        return rows[-1]

    return app


def setup(conf: Config, group: ServiceGroup) -> ServiceContext:
    """Add the service's parts to ``group``: what ``zeroqueue run`` calls."""
    ctx = ServiceContext(conf)
    queue = Queue(
        conf.kq_consumer_conf,
        ctx.consumer,
        error_handler=ctx.consumer.report_failure,
        handle_signals=False,  # the group owns the signals
    )
    group.add(queue, name="consumer")
    # Added last, stopped first: no login is accepted while the consumer drains.
    group.add(AsgiServer.from_conf(make_app(ctx), conf), name="http")
    group.add_closer(ctx.pusher, name="pusher")  # flushed after the HTTP server stopped
    group.add_closer(ctx.store, name="store")
    return ctx
