"""go-queue's dq wire format, so Go and Python producers and consumers share tubes.

A job body is ``<due time in Unix nanoseconds>/<payload>``; a job id names every
copy as ``endpoint/tube/job-id``, joined by commas; and the Redis key that
de-duplicates the copies is the MD5 of the whole body, as go-queue's consumer
takes it.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

__all__ = ["CopyId", "dedup_key", "join_ids", "split_ids", "unwrap", "wrap"]

_ID_SEPARATOR = ","
_TIME_SEPARATOR = b"/"
# go-queue looks for the separator within the digits of a nanosecond time and two more.
_MAX_PREFIX = len(str(2**63)) + 2


@dataclass(frozen=True)
class CopyId:
    """One copy of a job: the node (endpoint and tube) and beanstalkd's job id there."""

    endpoint: str
    tube: str
    job_id: int

    def __str__(self) -> str:
        return f"{self.endpoint}/{self.tube}/{self.job_id}"


def wrap(payload: bytes, due_ns: int) -> bytes:
    """The job body go-queue writes: the due time, a slash, the payload."""
    return b"%d" % due_ns + _TIME_SEPARATOR + payload


def unwrap(body: bytes) -> tuple[int, bytes] | None:
    """``(due_ns, payload)`` from a job body; None when it is not in go-queue's format."""
    slash = body.find(_TIME_SEPARATOR, 0, _MAX_PREFIX)
    if slash <= 0:
        return None
    digits = body[:slash]
    if not digits.isdigit():
        return None
    return int(digits), body[slash + 1 :]


def dedup_key(body: bytes) -> str:
    """The Redis key of a job: every copy has the same body, so the same key."""
    return hashlib.md5(body, usedforsecurity=False).hexdigest()


def join_ids(copies: list[CopyId]) -> str:
    """The id a producer returns for a job: its copies' ids joined by commas."""
    return _ID_SEPARATOR.join(map(str, copies))


def split_ids(ids: str) -> list[CopyId]:
    """The copies an id names; parts that are not ``endpoint/tube/number`` are skipped.

    A tube name may hold a slash and an endpoint may not, so the endpoint ends at
    the first slash and the job id starts after the last.
    """
    copies = []
    for part in ids.split(_ID_SEPARATOR):
        endpoint, _, rest = part.strip().partition("/")
        tube, _, number = rest.rpartition("/")
        if endpoint and tube and number.isdigit():
            copies.append(CopyId(endpoint, tube, int(number)))
    return copies
