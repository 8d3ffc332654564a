"""The beanstalkd edge: one connection to one node and tube, on greenstalk.

It reconnects on the next call after a connection error, and turns greenstalk's
and the socket's errors into zeroqueue's (naming the node), so the producer and
consumer logic above it never sees a client library exception.
"""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TypeVar

import greenstalk

from zeroqueue.dq._conf import Beanstalk
from zeroqueue.errors import DelayQueueError, ServerUnavailableError

__all__ = ["BeanstalkConnection", "JobStats", "Reserved"]

T = TypeVar("T")

# Seconds to wait for beanstalkd to accept a connection or answer a command; a
# reserve waits its own timeout on top.
_IO_TIMEOUT = 5.0


@dataclass(frozen=True)
class Reserved:
    """A job this connection reserved: its id on the node and its body."""

    job_id: int
    body: bytes


@dataclass(frozen=True)
class JobStats:
    """What beanstalkd knows about one job (``stats-job``)."""

    job_id: int
    state: str
    priority: int
    age: int
    delay: int
    time_left: int
    releases: int
    buries: int
    kicks: int


class BeanstalkConnection:
    """One connection to one beanstalkd tube, made on first use, safe between threads."""

    def __init__(self, node: Beanstalk) -> None:
        self.node = node
        self.name = f"{node.endpoint}/{node.tube}"
        self._client: greenstalk.Client[bytes] | None = None
        self._lock = threading.RLock()

    # -- the commands the delay queue uses ------------------------------------------

    def put(self, body: bytes, *, priority: int, delay: int, ttr: int) -> int:
        """Put a job; its id on this node."""

        def put(client: greenstalk.Client[bytes]) -> int:
            try:
                return client.put(body, priority=priority, delay=delay, ttr=ttr)
            except greenstalk.JobTooBigError:
                raise DelayQueueError(
                    f"beanstalkd at {self.node.endpoint} refused a job of {len(body)} bytes:"
                    " larger than its max job size (beanstalkd -z, 65535 bytes by default)"
                ) from None

        return self._call(put)

    def reserve(self, timeout: int) -> Reserved | None:
        """Reserve the next ready job, waiting up to ``timeout`` seconds; None if none came."""

        def reserve(client: greenstalk.Client[bytes]) -> Reserved | None:
            try:
                job = client.reserve(timeout)
            except greenstalk.TimedOutError:
                return None
            except greenstalk.DeadlineSoonError:
                # Only a connection holding a reserved job hears it; ours does not.
                return None
            return Reserved(job.id, job.body)

        return self._call(reserve, extra_timeout=timeout)

    def delete(self, job_id: int) -> bool:
        """Delete a job; False when this node no longer has it (or it is reserved elsewhere)."""
        return self._found(lambda c: c.delete(job_id))

    def release(self, job_id: int, *, priority: int, delay: int) -> bool:
        """Put a reserved job back, ready after ``delay`` seconds; False if it is gone."""
        return self._found(lambda c: c.release(_job(job_id), priority=priority, delay=delay))

    def bury(self, job_id: int, *, priority: int) -> bool:
        """Bury a reserved job; False if it is gone."""
        return self._found(lambda c: c.bury(_job(job_id), priority=priority))

    def touch(self, job_id: int) -> bool:
        """Give a reserved job another time-to-run; False if it is gone."""
        return self._found(lambda c: c.touch(_job(job_id)))

    def peek(self, job_id: int) -> bytes | None:
        """A job's body, in whatever state; None when this node does not have it."""

        def peek(client: greenstalk.Client[bytes]) -> bytes | None:
            try:
                return client.peek(job_id).body
            except greenstalk.NotFoundError:
                return None

        return self._call(peek)

    def stats(self, job_id: int) -> JobStats | None:
        """``stats-job``; None when this node does not have the job."""

        def stats(client: greenstalk.Client[bytes]) -> JobStats | None:
            try:
                raw = client.stats_job(job_id)
            except greenstalk.NotFoundError:
                return None
            return JobStats(
                job_id=int(raw["id"]),
                state=str(raw["state"]),
                priority=int(raw["pri"]),
                age=int(raw["age"]),
                delay=int(raw["delay"]),
                time_left=int(raw["time-left"]),
                releases=int(raw["releases"]),
                buries=int(raw["buries"]),
                kicks=int(raw["kicks"]),
            )

        return self._call(stats)

    def buried_count(self) -> int:
        """How many buried jobs the tube holds (0 when the tube does not exist)."""

        def count(client: greenstalk.Client[bytes]) -> int:
            try:
                return int(client.stats_tube(self.node.tube)["current-jobs-buried"])
            except greenstalk.NotFoundError:
                return 0

        return self._call(count)

    def first_buried(self) -> tuple[int, bytes] | None:
        """The id and body of the tube's first buried job (``peek-buried``), if any."""

        def peek(client: greenstalk.Client[bytes]) -> tuple[int, bytes] | None:
            try:
                job = client.peek_buried()
            except greenstalk.NotFoundError:
                return None
            return job.id, job.body

        return self._call(peek)

    def kick(self, job_id: int) -> bool:
        """Make a buried (or delayed) job ready; False if it is not buried or delayed."""
        return self._found(lambda c: c.kick_job(job_id))

    def close(self) -> None:
        """Close the connection; the next call opens a new one."""
        with self._lock:
            client, self._client = self._client, None
        if client is not None:
            with contextlib.suppress(OSError):
                client.close()

    # -- plumbing -------------------------------------------------------------------

    @contextmanager
    def locked(self) -> Iterator[None]:
        """Hold the connection for several commands in a row."""
        with self._lock:
            yield

    def _connect(self) -> greenstalk.Client[bytes]:
        host, port = self.node.host_port
        sock = socket.create_connection((host, port), timeout=_IO_TIMEOUT)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
        try:
            return greenstalk.Client(sock, encoding=None, use=self.node.tube, watch=self.node.tube)
        except BaseException:
            sock.close()
            raise

    def _call(
        self, command: Callable[[greenstalk.Client[bytes]], T], extra_timeout: float = 0
    ) -> T:
        with self._lock:
            try:
                if self._client is None:
                    self._client = self._connect()
                client = self._client
                client._sock.settimeout(_IO_TIMEOUT + extra_timeout)
                return command(client)
            except (OSError, greenstalk.UnknownResponseError) as exc:
                # The stream may be mid-reply: only a new connection is in a known state.
                self.close()
                raise ServerUnavailableError(
                    f"beanstalkd at {self.node.endpoint} (tube {self.node.tube!r}): {exc!r}",
                    endpoint=self.node.endpoint,
                ) from exc
            except greenstalk.Error as exc:
                raise DelayQueueError(
                    f"beanstalkd at {self.node.endpoint} (tube {self.node.tube!r}) answered"
                    f" {type(exc).__name__}"
                ) from exc

    def _found(self, command: Callable[[greenstalk.Client[bytes]], object]) -> bool:
        def call(client: greenstalk.Client[bytes]) -> bool:
            try:
                command(client)
            except greenstalk.NotFoundError:
                return False
            return True

        return self._call(call)

    def __repr__(self) -> str:
        return f"<BeanstalkConnection {self.name}>"


def _job(job_id: int) -> greenstalk.Job[bytes]:
    return greenstalk.Job(job_id, b"")
