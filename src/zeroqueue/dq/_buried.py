"""Jobs that failed too often: listed with why, and kicked back to be handled again."""

from __future__ import annotations

from dataclasses import dataclass

from zeroqueue.dq._beanstalk import BeanstalkConnection
from zeroqueue.dq._conf import DqConf
from zeroqueue.dq._ledger import Ledger
from zeroqueue.dq._wire import CopyId, split_ids, unwrap
from zeroqueue.errors import ConfigError

__all__ = ["BuriedJob", "buried", "kick"]


@dataclass(frozen=True)
class BuriedJob:
    """A buried job: the copy kept, its payload and why it was buried.

    ``reason`` and ``failures`` come from the consumer that buried it; a job
    buried by another tool (or while Redis was down) is listed with reason "".
    """

    id: str
    body: bytes
    due: float | None
    failures: int
    reason: str
    buried_at: float | None


def buried(conf: DqConf, *, limit: int = 1000) -> list[BuriedJob]:
    """The buried jobs of every node, oldest first (up to ``limit``).

    A listed job that is no longer buried (kicked or deleted by another tool)
    is dropped from the list as it is found.
    """
    ledger = _ledger(conf)
    found: list[BuriedJob] = []
    try:
        for node in conf.beanstalks:
            connection = BeanstalkConnection(node)
            try:
                records = ledger.buried_records(node.endpoint, node.tube)
                for job_id, record in sorted(records.items()):
                    copy = CopyId(node.endpoint, node.tube, job_id)
                    stats = connection.stats(job_id)
                    body = connection.peek(job_id) if stats and stats.state == "buried" else None
                    if body is None:
                        ledger.forget_buried(copy)
                        continue
                    found.append(_entry(copy, body, record))
                unlisted = connection.buried_count() - sum(
                    1 for job in found if job.id.startswith(f"{node.endpoint}/{node.tube}/")
                )
                if unlisted > 0:
                    found.extend(_unlisted(connection, node.endpoint, node.tube, found))
            finally:
                connection.close()
    finally:
        ledger.close()
    found.sort(key=lambda job: job.buried_at or 0.0)
    return found[:limit]


def kick(conf: DqConf, ids: str | None = None) -> int:
    """Make buried jobs ready again (those ``ids`` names, or all listed); how many were.

    A kicked job is handled afresh: its failures count from zero.
    """
    ledger = _ledger(conf)
    kicked = 0
    try:
        copies = split_ids(ids) if ids else [CopyId(*_parts(job.id)) for job in buried(conf)]
        if ids and not copies:
            raise ConfigError(f"ids: got {ids!r}; expected endpoint/tube/number, comma-separated")
        nodes = {(node.endpoint, node.tube): node for node in conf.beanstalks}
        for copy in copies:
            node = nodes.get((copy.endpoint, copy.tube))
            if node is None:
                raise ConfigError(
                    f"ids: {copy} names node {copy.endpoint} tube {copy.tube!r}, which is not"
                    " in Beanstalks"
                )
            connection = BeanstalkConnection(node)
            try:
                if connection.kick(copy.job_id):
                    kicked += 1
                ledger.forget_buried(copy)
            finally:
                connection.close()
    finally:
        ledger.close()
    return kicked


def _ledger(conf: DqConf) -> Ledger:
    if conf.redis is None:
        raise ConfigError("Redis: missing; buried jobs are listed in the consumers' Redis")
    return Ledger(conf.redis)


def _entry(copy: CopyId, body: bytes, record: dict[str, object]) -> BuriedJob:
    parsed = unwrap(body)
    failures = record.get("failures", 0)
    buried_at = record.get("buried_at")
    return BuriedJob(
        id=str(copy),
        body=parsed[1] if parsed else body,
        due=parsed[0] / 1e9 if parsed else None,
        failures=failures if isinstance(failures, int) else 0,
        reason=str(record.get("reason", "")),
        buried_at=float(buried_at) if isinstance(buried_at, (int, float)) else None,
    )


def _unlisted(
    connection: BeanstalkConnection, endpoint: str, tube: str, found: list[BuriedJob]
) -> list[BuriedJob]:
    """The first buried job beanstalkd shows, when it is not listed (the protocol shows one)."""
    head = connection.first_buried()
    if head is None:
        return []
    copy = CopyId(endpoint, tube, head[0])
    if any(job.id == str(copy) for job in found):
        return []
    return [_entry(copy, head[1], {})]


def _parts(copy_id: str) -> tuple[str, str, int]:
    copy = split_ids(copy_id)[0]
    return copy.endpoint, copy.tube, copy.job_id
