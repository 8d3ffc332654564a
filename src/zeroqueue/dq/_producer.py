"""The delay queue's producer: go-queue's ``dq.Producer``, writing each job to 2-3 nodes."""

from __future__ import annotations

import concurrent.futures
import logging
import math
import random
import time
from collections.abc import Callable, Sequence
from datetime import datetime
from types import TracebackType
from typing import TypeVar

from zeroqueue.dq._beanstalk import BeanstalkConnection
from zeroqueue.dq._conf import Beanstalk, DqConf, RedisConf
from zeroqueue.dq._ledger import Ledger
from zeroqueue.dq._wire import CopyId, dedup_key, join_ids, split_ids, unwrap, wrap
from zeroqueue.errors import ConfigError, DelayQueueError, InvalidDelayError, JobWriteError

__all__ = ["Producer"]

_log = logging.getLogger("zeroqueue.dq")

T = TypeVar("T")
R = TypeVar("R")

# As go-queue: each job goes to three nodes at most and counts once two took it.
_REPLICAS = 3
_MIN_WRITTEN = 2
# beanstalkd takes a delay as a 32-bit count of seconds.
_MAX_DELAY = 2**32 - 1
# How long a revoked job's record outlives its due time.
_REVOKE_WINDOW = 3600.0
# How late (seconds) a job may become ready rather than a whole second early.
_PUT_SLACK = 0.05


class Producer:
    """Schedules jobs on beanstalkd the way go-queue's ``dq`` does, so Go consumers read them.

    Each job is written to up to three nodes (all of them when there are two or
    three) and the call succeeds once at least two took it; otherwise the copies
    written are deleted and it raises :class:`~zeroqueue.errors.JobWriteError`.
    Its id names every copy, so :meth:`revoke` can delete them. Safe to share
    between threads.

    Args:
        beanstalks: The nodes (a :class:`DqConf`'s ``Beanstalks``), two or more.
        redis: The consumers' Redis: :meth:`revoke` records the job there too, so
            a copy on a node it could not reach is not handled either.
        priority: beanstalkd priority, lower first (go-queue's ``PriNormal``: 2).
        ttr: beanstalkd time-to-run in seconds: how soon a job a crashed consumer
            held is ready again. Consumers renew it while a handler runs.
    """

    def __init__(
        self,
        beanstalks: Sequence[Beanstalk],
        *,
        redis: RedisConf | None = None,
        priority: int = 2,
        ttr: float = 5.0,
    ) -> None:
        if len(beanstalks) < _MIN_WRITTEN:
            raise ConfigError(
                f"Beanstalks: got {len(beanstalks)} node(s); expected at least {_MIN_WRITTEN}"
                " (each job is written to two or three nodes)"
            )
        endpoints = [node.endpoint for node in beanstalks]
        if len(set(endpoints)) != len(endpoints):
            raise ConfigError(
                f"Beanstalks: got endpoints {endpoints}; expected every node on its own endpoint"
            )
        if not 0 <= priority < 2**32:
            raise ConfigError(f"priority: got {priority!r}; expected 0 to 4294967295")
        if not 1 <= ttr < 2**32:
            raise ConfigError(f"ttr: got {ttr!r}; expected seconds >= 1")
        self._nodes = [BeanstalkConnection(node) for node in beanstalks]
        self._by_name = {(node.node.endpoint, node.node.tube): node for node in self._nodes}
        self._ledger = Ledger(redis) if redis is not None else None
        self.priority = priority
        self.ttr = math.ceil(ttr)
        self._pool = concurrent.futures.ThreadPoolExecutor(
            max_workers=min(_REPLICAS, len(self._nodes)), thread_name_prefix="dq-producer"
        )
        self._closed = False

    @classmethod
    def from_conf(cls, conf: DqConf, **options: object) -> Producer:
        """A producer for ``conf``'s nodes, revoking through its Redis."""
        return cls(conf.beanstalks, redis=conf.redis, **options)  # type: ignore[arg-type]

    def delay(self, body: bytes | str, seconds: float) -> str:
        """Schedule ``body`` to be handled ``seconds`` from now; returns the job's id.

        Raises:
            InvalidDelayError: ``seconds`` is below 0 or beyond beanstalkd's limit.
            JobWriteError: fewer than two nodes took the job (none keeps it).
        """
        if not isinstance(seconds, (int, float)) or not 0 <= seconds <= _MAX_DELAY:
            raise InvalidDelayError(
                f"delay: got {seconds!r}; expected seconds from 0 to {_MAX_DELAY}"
            )
        return self._put(body, time.time() + seconds)

    def at(self, body: bytes | str, when: datetime | float) -> str:
        """Schedule ``body`` to be handled at ``when`` (a datetime, or a Unix time).

        A naive datetime is local time. Raises like :meth:`delay`, and
        InvalidDelayError when ``when`` is in the past (as go-queue does).
        """
        if isinstance(when, bool) or not isinstance(when, (datetime, int, float)):
            raise InvalidDelayError(f"at: got {when!r}; expected a datetime or a Unix time")
        due = when.timestamp() if isinstance(when, datetime) else float(when)
        if math.isnan(due):
            # NaN passes every comparison below: it failed later with a ValueError.
            raise InvalidDelayError(f"at: got {when!r}; expected a datetime or a Unix time")
        now = time.time()
        if due < now:
            raise InvalidDelayError(
                f"at: got {when!r}, {now - due:.3f}s in the past; expected a time after now"
            )
        if due - now > _MAX_DELAY:
            raise InvalidDelayError(f"at: got {when!r}; expected at most {_MAX_DELAY}s from now")
        return self._put(body, due)

    def revoke(self, ids: str) -> None:
        """Delete every copy of a job, so it is not handled.

        A copy a consumer is handling right now cannot be deleted. With ``redis``
        the job is also recorded as revoked, so consumers delete copies this call
        could not reach when they become ready.

        Raises:
            DelayQueueError: a copy could not be deleted and no Redis record was
                made; the error names each node and why.
        """
        self._check_open()
        copies = split_ids(ids)
        if not copies:
            raise DelayQueueError(
                f"revoke: got {ids!r}; expected the id delay() or at() returned"
                " (endpoint/tube/number, joined by commas)"
            )
        results = self._each(copies, self._delete_copy)
        failures = {str(copy): str(error) for copy, (body, error) in results.items() if error}
        bodies = [body for body, _ in results.values() if body is not None]
        recorded = False
        if self._ledger is not None and bodies:
            due = unwrap(bodies[0])
            ttl = max((due[0] / 1e9 if due else 0) - time.time(), 0) + _REVOKE_WINDOW
            try:
                self._ledger.revoke(dedup_key(bodies[0]), ttl)
                recorded = True
            except DelayQueueError as exc:
                failures["redis"] = str(exc)
        if failures and not recorded:
            raise DelayQueueError(
                f"revoke {ids!r}: not every copy was deleted: "
                + "; ".join(f"{where}: {why}" for where, why in failures.items())
            )
        if failures:
            _log.warning("revoke %r: recorded in Redis; not deleted: %s", ids, failures)

    def close(self) -> None:
        """Close the connections to the nodes (and Redis)."""
        if self._closed:
            return
        self._closed = True
        self._pool.shutdown(wait=True)
        for node in self._nodes:
            node.close()
        if self._ledger is not None:
            self._ledger.close()

    def __enter__(self) -> Producer:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<dq.Producer {[node.name for node in self._nodes]}>"

    # -- writing --------------------------------------------------------------------

    def _put(self, body: bytes | str, due: float) -> str:
        self._check_open()
        payload = body.encode() if isinstance(body, str) else body
        if not isinstance(payload, bytes):
            raise InvalidDelayError(f"body: got {type(body).__name__}; expected bytes or str")
        wrapped = wrap(payload, round(due * 1e9))
        nodes = self._nodes
        if len(nodes) > _REPLICAS:
            nodes = random.sample(nodes, _REPLICAS)

        def put(node: BeanstalkConnection) -> int:
            # beanstalkd counts whole seconds: it makes the job ready up to a second
            # early and the consumer waits out the rest, so no job runs before it is due.
            # The slack keeps delay(body, 2) a delay of 2, as go-queue's Producer puts
            # it, not 1 because microseconds passed since: go-queue's consumer does not
            # wait, it would run the job a second early.
            delay = max(0, math.floor(due - time.time() + _PUT_SLACK))
            return node.put(wrapped, priority=self.priority, delay=delay, ttr=self.ttr)

        results = list(zip(nodes, self._pool.map(_attempt(put), nodes), strict=True))
        written = [
            CopyId(node.node.endpoint, node.node.tube, job_id)
            for node, (job_id, _) in results
            if job_id is not None
        ]
        if len(written) >= _MIN_WRITTEN:
            return join_ids(written)
        failures = {node.name: str(error) for node, (_, error) in results if error is not None}
        undone = self._undo(written)
        raise JobWriteError(
            f"job not scheduled: {len(written)} of {len(nodes)} nodes took it, {_MIN_WRITTEN}"
            f" needed{undone}; " + "; ".join(f"{where}: {why}" for where, why in failures.items()),
            failures=failures,
        )

    def _undo(self, written: list[CopyId]) -> str:
        if not written:
            return ""
        left = [
            copy for copy, (_, error) in self._each(written, self._delete_copy).items() if error
        ]
        if left:
            _log.error("a job that failed to schedule kept copies %s: they will run", left)
            return f" (copies {', '.join(map(str, left))} could not be deleted and will run)"
        return " (the copy written was deleted)"

    def _delete_copy(self, copy: CopyId) -> bytes | None:
        node = self._by_name.get((copy.endpoint, copy.tube))
        if node is None:
            raise DelayQueueError(f"no node {copy.endpoint} tube {copy.tube!r} in Beanstalks")
        with node.locked():
            body = node.peek(copy.job_id)
            node.delete(copy.job_id)
        return body

    def _each(
        self, copies: list[CopyId], action: Callable[[CopyId], bytes | None]
    ) -> dict[CopyId, tuple[bytes | None, BaseException | None]]:
        return dict(zip(copies, self._pool.map(_attempt(action), copies), strict=True))

    def _check_open(self) -> None:
        if self._closed:
            raise DelayQueueError("the producer is closed")


def _attempt(
    action: Callable[[T], R],
) -> Callable[[T], tuple[R | None, DelayQueueError | None]]:
    def attempt(item: T) -> tuple[R | None, DelayQueueError | None]:
        try:
            return action(item), None
        except DelayQueueError as exc:
            return None, exc

    return attempt
