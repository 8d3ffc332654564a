"""The Redis edge: one record per job, so the copies on several nodes are handled once.

A job's record lives under go-queue's key (the MD5 of its body) and says where
the job stands, as ``zq|<state>|<owner>|<failures>``:

* ``processing``: a consumer holds it (owner: its token) for a lease it renews
  while the handler runs; a consumer that crashed lets the lease run out;
* ``idle``: handling failed; the next copy reserved may try again;
* ``done``: handled; every other copy is deleted when reserved;
* ``revoked``: the producer revoked it; copies are deleted when reserved;
* ``buried``: it failed too often; owner names the one copy kept buried, and
  the other copies are deleted. That copy, kicked, is handled afresh.

Each change is one Lua script on one key, so it is atomic, also on a cluster.
A value go-queue's consumer wrote (its lock) counts as handled: go-queue
deletes its copy before handling it.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal, TypeVar

import redis
import redis.cluster
import redis.exceptions

from zeroqueue.dq._conf import RedisConf
from zeroqueue.dq._wire import CopyId
from zeroqueue.errors import DelayQueueError, ServerUnavailableError

__all__ = ["Claim", "Ledger"]

T = TypeVar("T")

_IO_TIMEOUT = 5.0

# -> {verdict, detail, failures}
_CLAIM = """
local v = redis.call('GET', KEYS[1])
local failures = 0
if v then
  local state, owner, n = string.match(v, '^zq|([^|]*)|([^|]*)|(%d+)$')
  if not state then return {'foreign', '', '0'} end
  failures = tonumber(n)
  if state == 'processing' then
    return {'busy', tostring(redis.call('PTTL', KEYS[1])), n}
  elseif state == 'buried' then
    if owner ~= ARGV[2] then return {'buried', owner, n} end
    failures = 0
  elseif state ~= 'idle' then
    return {state, owner, n}
  end
end
redis.call('SET', KEYS[1], 'zq|processing|' .. ARGV[1] .. '|' .. failures, 'PX', ARGV[3])
return {'claimed', '', tostring(failures)}
"""

# -> 1 while the lease is ours
_RENEW = """
if redis.call('GET', KEYS[1]) == 'zq|processing|' .. ARGV[1] .. '|' .. ARGV[2] then
  return redis.call('PEXPIRE', KEYS[1], ARGV[3])
end
return 0
"""

# -> {verdict, failures}: 'retry', 'bury' or 'done' (handled by another meanwhile)
_FAIL = """
local v = redis.call('GET', KEYS[1])
local failures = 0
if v then
  local state, owner, n = string.match(v, '^zq|([^|]*)|([^|]*)|(%d+)$')
  if state == 'done' or state == 'revoked' or not state then return {'done', '0'} end
  failures = tonumber(n)
end
failures = failures + 1
if failures >= tonumber(ARGV[2]) then
  redis.call('SET', KEYS[1], 'zq|buried|' .. ARGV[1] .. '|' .. failures, 'PX', ARGV[3])
  return {'bury', tostring(failures)}
end
redis.call('SET', KEYS[1], 'zq|idle||' .. failures, 'PX', ARGV[3])
return {'retry', tostring(failures)}
"""

# Hands a claim back without counting a failure (a consumer stopping before the due time).
_UNCLAIM = """
local v = redis.call('GET', KEYS[1])
local prefix = 'zq|processing|' .. ARGV[1] .. '|'
if v and string.sub(v, 1, string.len(prefix)) == prefix then
  local n = string.sub(v, string.len(prefix) + 1)
  redis.call('SET', KEYS[1], 'zq|idle||' .. n, 'PX', ARGV[2])
  return 1
end
return 0
"""

Verdict = Literal["claimed", "busy", "done", "revoked", "buried", "foreign"]


@dataclass(frozen=True)
class Claim:
    """What the ledger said about a reserved copy.

    ``verdict`` is ``claimed`` (handle it), ``busy`` (another consumer holds it
    for ``retry_after`` more seconds), or ``done``, ``revoked``, ``buried``
    (another copy is the buried one), ``foreign`` (go-queue took it): delete
    this copy. ``failures`` counts failed handlings so far.
    """

    verdict: Verdict
    failures: int
    retry_after: float = 0.0


class Ledger:
    """The job records in Redis, and the list of jobs buried, per node."""

    def __init__(self, conf: RedisConf) -> None:
        self.conf = conf
        host, port = conf.host_port
        options: dict[str, Any] = {
            "username": conf.user or None,
            "password": conf.pass_ or None,
            "ssl": conf.tls,
            "socket_timeout": _IO_TIMEOUT,
            "socket_connect_timeout": _IO_TIMEOUT,
        }
        client: redis.Redis | redis.cluster.RedisCluster
        if conf.type == "cluster":
            client = redis.cluster.RedisCluster(host=host, port=port, **options)
        else:
            client = redis.Redis(host=host, port=port, health_check_interval=30, **options)
        self._client = client
        self._claim = client.register_script(_CLAIM)
        self._renew = client.register_script(_RENEW)
        self._fail = client.register_script(_FAIL)
        self._unclaim = client.register_script(_UNCLAIM)

    def claim(self, key: str, token: str, copy: CopyId, lease: float) -> Claim:
        """Take a job for handling, unless another copy was (or is being) handled."""
        args: list[str | int] = [token, str(copy), _ms(lease)]
        raw = self._call(lambda: self._claim(keys=[key], args=args))
        verdict, detail, failures = (_text(part) for part in raw)
        retry_after = (
            int(detail) / 1000 if verdict == "busy" and detail.lstrip("-").isdigit() else 0
        )
        return Claim(verdict, int(failures), max(retry_after, 0.0))  # type: ignore[arg-type]

    def renew(self, key: str, token: str, failures: int, lease: float) -> bool:
        """Extend a claim's lease while its handler runs; False if the claim was lost."""
        args: list[str | int] = [token, str(failures), _ms(lease)]
        return bool(self._call(lambda: self._renew(keys=[key], args=args)))

    def finish(self, key: str, window: float) -> None:
        """Record a job as handled, for ``window`` seconds."""
        self._call(lambda: self._client.set(key, "zq|done||0", px=_ms(window)))

    def fail(self, key: str, copy: CopyId, max_failures: int, window: float) -> tuple[str, int]:
        """Count a failed handling: ``("retry" | "bury" | "done", failures so far)``."""
        args: list[str | int] = [str(copy), max_failures, _ms(window)]
        verdict, failures = (_text(part) for part in self._call(lambda: self._fail([key], args)))
        return verdict, int(failures)

    def unclaim(self, key: str, token: str, window: float) -> None:
        """Give a claim back without counting a failure."""
        self._call(lambda: self._unclaim(keys=[key], args=[token, _ms(window)]))

    def revoke(self, key: str, ttl: float) -> None:
        """Mark a job revoked: consumers delete its copies, for ``ttl`` seconds."""
        self._call(lambda: self._client.set(key, "zq|revoked||0", px=_ms(ttl)))

    def state(self, key: str) -> str | None:
        """A job's state (``processing``, ``done``, ...), None without a record."""
        value = self._call(lambda: self._client.get(key))
        if value is None:
            return None
        parts = _text(value).split("|")
        return parts[1] if len(parts) == 4 and parts[0] == "zq" else "foreign"

    # -- the list of buried jobs ----------------------------------------------------

    def record_buried(self, copy: CopyId, reason: str, failures: int, due: float | None) -> None:
        """Remember why a copy was buried, until it is kicked or deleted."""
        entry = {"reason": reason, "failures": failures, "buried_at": time.time(), "due": due}
        self._call(
            lambda: self._client.hset(_buried_key(copy), str(copy.job_id), json.dumps(entry))
        )

    def buried_records(self, endpoint: str, tube: str) -> dict[int, dict[str, Any]]:
        """The buried copies recorded for one node, by job id."""
        raw = self._call(lambda: self._client.hgetall(_buried_key(CopyId(endpoint, tube, 0))))
        records: dict[int, dict[str, Any]] = {}
        for job_id, entry in raw.items():
            try:
                records[int(job_id)] = json.loads(entry)
            except ValueError:
                continue
        return records

    def forget_buried(self, copy: CopyId) -> None:
        """Drop a copy from the list of buried jobs (kicked, or deleted)."""
        self._call(lambda: self._client.hdel(_buried_key(copy), str(copy.job_id)))

    def close(self) -> None:
        """Close the connections."""
        self._client.close()

    def _call(self, command: Callable[[], T]) -> T:
        try:
            return command()
        except (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError) as exc:
            raise ServerUnavailableError(
                f"Redis at {self.conf.host}: {exc}", endpoint=self.conf.host
            ) from exc
        except redis.exceptions.RedisError as exc:
            raise DelayQueueError(f"Redis at {self.conf.host} answered: {exc}") from exc


def _ms(seconds: float) -> int:
    return max(1, round(seconds * 1000))


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _buried_key(copy: CopyId) -> str:
    # One hash per node; the braces keep it in one cluster slot.
    return f"zeroqueue:dq:buried:{{{copy.endpoint}/{copy.tube}}}"
