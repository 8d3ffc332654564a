"""go-queue's own delay queue (Go's ``dq``) beside zeroqueue.dq on real beanstalkd and Redis.

The Go program in ``goqueue/`` runs go-queue v1.2.2's ``dq.Producer`` and
``dq.Consumer``. These tests check that the two share nodes both ways: the body
format (``<due time in Unix nanoseconds>/<payload>``), the job id
(``endpoint/tube/number``, joined by commas) and the Redis key that keeps a job
from running once per copy (the MD5 of the whole body).

What go-queue's consumer does differently, so a mixed fleet knows: it handles a
job as soon as beanstalkd makes it ready, and beanstalkd counts whole seconds (a
1.5 s delay runs after 1 s); it drops, unhandled, a job more than 30 minutes
overdue (both pinned here); and it deletes a copy *before* it handles it, so a
crash mid-handler loses the job (read from its source, not tested here).
"""

from __future__ import annotations

import hashlib
import json
import math
import subprocess
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import greenstalk
import pytest
import redis

from tests.dq.conftest import BeanstalkdNode
from tests.dq.recorder import Recorder
from tests.interop.conftest import GO_TIMEOUT, TEST_TIMEOUT, run_go
from tests.kafka_helpers import eventually
from zeroqueue.dq import Consumer, DqConf, Producer
from zeroqueue.dq._beanstalk import BeanstalkConnection
from zeroqueue.dq._wire import CopyId, split_ids

# The first test builds the Go program (go-zero and all: minutes on a cold cache).
pytestmark = pytest.mark.timeout(TEST_TIMEOUT)

MakeConf = Callable[[int], tuple[DqConf, list[BeanstalkdNode]]]

# go-queue's consumer takes its Redis lock for this long (dq's expiration, plus
# go-zero's RedisLock tolerance of 500 ms).
GO_LOCK_SECONDS = 3600.5
# go-queue's consumer drops a job whose due time is further back than this.
GO_TOLERANCE = 30 * 60.0


# -- the Go side ----------------------------------------------------------------


def node_flags(conf: DqConf) -> list[str]:
    """``-beanstalks`` and ``-tube`` for the Go program: the nodes of ``conf``."""
    [tube] = {node.tube for node in conf.beanstalks}
    return ["-beanstalks", ",".join(node.endpoint for node in conf.beanstalks), "-tube", tube]


def go_push(
    binary: Path, conf: DqConf, body: str, *, count: int = 1, delay: str = "1s", at: bool = False
) -> list[dict[str, Any]]:
    """Schedule ``<body>#<i>`` with go-queue's Producer; one ``{id, body, called_ns, ...}`` each."""
    flags = ["-body", body, "-count", str(count), "-delay", delay, *(["-at"] if at else [])]
    lines = run_go(binary, "dq-push", *node_flags(conf), *flags)
    assert [line["body"] for line in lines] == [f"{body}#{i}" for i in range(count)]
    return lines


def go_consume_args(conf: DqConf, count: int) -> list[str]:
    assert conf.redis is not None
    return ["dq-consume", *node_flags(conf), "-redis", conf.redis.host, "-count", str(count)]


def go_consume(binary: Path, conf: DqConf, count: int) -> list[dict[str, Any]]:
    """Run go-queue's consumer until it handled ``count`` bodies and no node holds a job."""
    return run_go(binary, *go_consume_args(conf, count))


# -- the nodes and Redis, read directly ------------------------------------------


def peek(conf: DqConf, copy: CopyId) -> bytes | None:
    """The body of one copy as its node holds it; None when the node has no such job."""
    [node] = [n for n in conf.beanstalks if (n.endpoint, n.tube) == (copy.endpoint, copy.tube)]
    connection = BeanstalkConnection(node)
    try:
        return connection.peek(copy.job_id)
    finally:
        connection.close()


def wrapped_body(conf: DqConf, job_id: str) -> bytes:
    """The body every copy of a job holds (they must agree)."""
    bodies = {peek(conf, copy) for copy in split_ids(job_id)}
    assert len(bodies) == 1, f"{job_id}: copies differ: {bodies}"
    [body] = bodies
    assert body is not None, f"{job_id}: a copy is missing"
    return body


def put_raw(conf: DqConf, body: bytes) -> None:
    """Put ``body`` as it is, ready now, on every node: as a producer would have."""
    for node in conf.beanstalks:
        connection = BeanstalkConnection(node)
        try:
            connection.put(body, priority=2, delay=0, ttr=5)
        finally:
            connection.close()


def waiting_jobs(conf: DqConf) -> int:
    """Jobs of the tube still on the nodes (ready, delayed or reserved)."""
    total = 0
    for node in conf.beanstalks:
        with greenstalk.Client(node.host_port, use=node.tube) as client:
            try:
                stats = client.stats_tube(node.tube)
            except greenstalk.NotFoundError:
                continue
            total += sum(
                int(stats[name])
                for name in ("current-jobs-ready", "current-jobs-delayed", "current-jobs-reserved")
            )
    return total


def md5(body: bytes) -> str:
    return hashlib.md5(body, usedforsecurity=False).hexdigest()


def redis_client(conf: DqConf) -> redis.Redis:
    assert conf.redis is not None
    host, port = conf.redis.host_port
    return redis.Redis(host=host, port=port)


def due_ns(wrapped: bytes) -> int:
    """The due time a body starts with, parsed here rather than by zeroqueue."""
    digits, slash, _ = wrapped.partition(b"/")
    assert slash, f"no '/' in {wrapped!r}"
    assert digits.isdigit(), f"not <due ns>/<payload>: {wrapped!r}"
    return int(digits)


# -- Go producer, zeroqueue consumer ---------------------------------------------


def test_jobs_go_queue_scheduled_are_handled_once_by_zeroqueue_no_earlier_than_due(
    goqueue: Path, dq_conf: MakeConf
) -> None:
    # given jobs scheduled by go-queue's Producer on two nodes: with Delay (1.5 s,
    # which beanstalkd, counting whole seconds, makes ready after 1 s) and with At
    conf, _ = dq_conf(2)
    pushed = go_push(goqueue, conf, "delay", count=4, delay="1500ms")
    pushed += go_push(goqueue, conf, "at", count=2, delay="1s", at=True)
    delays = {"delay": 1.5, "at": 1.0}
    # each on both nodes, its id naming both copies, each copy holding go-queue's body
    wrapped: dict[bytes, bytes] = {}
    for line in pushed:
        copies = split_ids(line["id"])
        assert line["id"] == ",".join(str(copy) for copy in copies)
        assert {(copy.endpoint, copy.tube) for copy in copies} == {
            (node.endpoint, node.tube) for node in conf.beanstalks
        }
        body = wrapped_body(conf, line["id"])
        due = due_ns(body)
        delay_ns = int(delays[line["body"].split("#")[0]] * 1e9)
        assert line["called_ns"] + delay_ns <= due <= line["returned_ns"] + delay_ns
        assert body == b"%d/%s" % (due, line["body"].encode())
        wrapped[line["body"].encode()] = body

    # when a zeroqueue Consumer reads the nodes
    recorder = Recorder()
    with Consumer(conf, recorder).running():
        assert recorder.wait_for(len(pushed), timeout=10), f"handled {recorder.counts}"
        # and the second copy of each is deleted, not handled
        assert eventually(lambda: waiting_jobs(conf) == 0, timeout=10)

    # then each job was handled once, with go-queue's payload, never before its due time
    assert recorder.counts == dict.fromkeys(wrapped, 1)
    ids = {line["body"].encode(): line["id"].split(",") for line in pushed}
    for body, at, job in recorder.calls:
        assert job.due == due_ns(wrapped[body]) / 1e9
        assert job.due <= at < job.due + 1.0, f"{body!r} handled {at - job.due:+.3f}s from due"
        assert job.id in ids[body]
    # and zeroqueue recorded it handled under go-queue's key, so go-queue's consumer skips it
    with redis_client(conf) as client:
        assert {client.get(md5(body)) for body in wrapped.values()} == {b"zq|done||0"}


def test_a_job_go_queue_scheduled_is_revoked_by_zeroqueue(goqueue: Path, dq_conf: MakeConf) -> None:
    # given two jobs go-queue's Producer scheduled on two nodes
    conf, _ = dq_conf(2)
    [revoked] = go_push(goqueue, conf, "revoked", delay="1s")
    [kept] = go_push(goqueue, conf, "kept", delay="1500ms")
    body = wrapped_body(conf, revoked["id"])
    # when zeroqueue's Producer revokes one with the id go-queue returned
    with Producer.from_conf(conf) as producer:
        producer.revoke(revoked["id"])
    # then both its copies are gone, and Redis says revoked under go-queue's key
    assert [peek(conf, copy) for copy in split_ids(revoked["id"])] == [None, None]
    with redis_client(conf) as client:
        assert client.get(md5(body)) == b"zq|revoked||0"
    # and a zeroqueue Consumer handles only the other one
    recorder = Recorder()
    with Consumer(conf, recorder).running():
        # kept is due after revoked: once it ran, revoked had its turn
        assert recorder.wait_for(1, timeout=10)
        assert eventually(lambda: waiting_jobs(conf) == 0, timeout=10)
    assert recorder.counts == {kept["body"].encode(): 1}


# -- zeroqueue producer, Go consumer ---------------------------------------------


def test_jobs_zeroqueue_scheduled_are_handled_once_by_go_queue(
    goqueue: Path, dq_conf: MakeConf
) -> None:
    # given 12 jobs zeroqueue's Producer scheduled on three nodes, 1, 1.5 and 2 s ahead
    conf, _ = dq_conf(3)
    delays = {f"zq#{i}-é": 1.0 + (i % 3) * 0.5 for i in range(12)}
    wrapped: dict[str, bytes] = {}
    with Producer.from_conf(conf) as producer:
        for body, delay in delays.items():
            job_id = producer.delay(body, delay)
            assert len(split_ids(job_id)) == 3
            wrapped[body] = wrapped_body(conf, job_id)
    # when go-queue's consumer reads the nodes until it handled 12 and none holds a job
    lines = go_consume(goqueue, conf, 12)
    # then each job was handled once (three copies each), with zeroqueue's payload
    assert Counter(line["body"] for line in lines) == dict.fromkeys(wrapped, 1)
    # go-queue handles a job as soon as beanstalkd makes it ready, and beanstalkd counts
    # whole seconds: on time for a whole-second delay, half a second early for 1.5 s,
    # as with go-queue's own Producer (zeroqueue's Consumer waits out the rest)
    for line in lines:
        due, delay = due_ns(wrapped[line["body"]]) / 1e9, delays[line["body"]]
        ready = due - (delay - math.floor(delay))
        at = line["at_ns"] / 1e9
        assert ready - 0.1 <= at < ready + 0.5, f"{line['body']}: {at - due:+.3f}s from due"
    # and go-queue's Redis lock sits under the key zeroqueue computes for the job
    with redis_client(conf) as client:
        for job in wrapped.values():
            lock, ttl = client.get(md5(job)), client.pttl(md5(job)) / 1000
            assert lock is not None, f"no go-queue lock under md5({job!r})"
            # go-zero's RedisLock: 16 random characters, not a zeroqueue record
            assert len(lock) == 16, lock
            assert not lock.startswith(b"zq|"), lock
            assert GO_LOCK_SECONDS - 60 < ttl <= GO_LOCK_SECONDS


def test_a_job_zeroqueue_scheduled_is_revoked_by_go_queue(goqueue: Path, dq_conf: MakeConf) -> None:
    # given two jobs zeroqueue's Producer scheduled on three nodes
    conf, _ = dq_conf(3)
    with Producer.from_conf(conf) as producer:
        revoked = producer.delay(b"revoked", 1)
        producer.delay(b"kept", 1.5)
    # when go-queue's Producer revokes one with the id zeroqueue returned
    assert run_go(goqueue, "dq-revoke", *node_flags(conf), "-id", revoked) == [{"revoked": revoked}]
    # then every copy of it is gone
    assert [peek(conf, copy) for copy in split_ids(revoked)] == [None, None, None]
    # and a zeroqueue Consumer handles only the other one
    recorder = Recorder()
    with Consumer(conf, recorder).running():
        assert recorder.wait_for(1, timeout=10)
        assert eventually(lambda: waiting_jobs(conf) == 0, timeout=10)
    assert recorder.counts == {b"kept": 1}


def test_a_copy_zeroqueue_revoked_while_its_node_was_down_is_not_handled_by_go_queue(
    goqueue: Path, dq_conf: MakeConf
) -> None:
    # given a job zeroqueue scheduled on two nodes, revoked while one node was down:
    # that copy survives (beanstalkd's binlog), the revoke is recorded in Redis
    conf, nodes = dq_conf(2)
    with Producer.from_conf(conf) as producer:
        revoked = producer.delay(b"revoked", 1)
        nodes[1].kill()
        producer.revoke(revoked)
        nodes[1].start()
        producer.delay(b"kept", 1.5)
    [survivor] = [copy for copy in split_ids(revoked) if copy.endpoint == nodes[1].endpoint]
    body = peek(conf, survivor)
    assert body is not None
    # when go-queue's consumer reads both nodes until it handled one job and none holds any
    lines = go_consume(goqueue, conf, 1)
    # then it took the surviving copy but did not handle it: its Redis lock found the record
    assert [line["body"] for line in lines] == ["kept"]
    assert peek(conf, survivor) is None
    with redis_client(conf) as client:
        assert client.get(md5(body)) == b"zq|revoked||0"


# -- both consumers at once --------------------------------------------------------


def test_go_queue_and_zeroqueue_consumers_on_the_same_nodes_handle_each_job_once(
    goqueue: Path, dq_conf: MakeConf
) -> None:
    # given 30 jobs due in a second, half scheduled by go-queue's Producer and half by
    # zeroqueue's, each on all three nodes
    conf, _ = dq_conf(3)
    ids = {line["body"]: line["id"] for line in go_push(goqueue, conf, "go", count=15)}
    with Producer.from_conf(conf) as producer:
        ids |= {f"zq#{i}": producer.delay(f"zq#{i}", 1) for i in range(15)}
    wrapped = {body: wrapped_body(conf, job_id) for body, job_id in ids.items()}
    # when go-queue's consumer and a zeroqueue Consumer read the same nodes at once,
    # until no node holds a job
    recorder = Recorder()
    with Consumer(conf, recorder, processors=1).running():
        go = subprocess.Popen(
            [str(goqueue), *go_consume_args(conf, 0), "-timeout", f"{GO_TIMEOUT:.0f}s"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            out, err = go.communicate(timeout=GO_TIMEOUT + 30)
        finally:
            go.kill()
        assert go.returncode == 0, err
        go_handled = [json.loads(line)["body"] for line in out.splitlines()]
        # go-queue waited for empty tubes: zeroqueue deleted its last copy after its handler
        assert eventually(lambda: len(recorder.calls) >= len(ids) - len(go_handled), 5)
    # then between them every job was handled once
    zq_handled = [body.decode() for body, _, _ in recorder.calls]
    assert Counter(go_handled + zq_handled) == dict.fromkeys(ids, 1)
    # and each job's Redis record names the kind of consumer that handled it
    with redis_client(conf) as client:
        records = {body: client.get(md5(job)) for body, job in wrapped.items()}
    assert {body for body, record in records.items() if record == b"zq|done||0"} == set(zq_handled)
    assert all(len(records[body] or b"") == 16 for body in go_handled), records


# -- jobs long overdue -------------------------------------------------------------


def test_a_job_overdue_by_more_than_30_minutes_is_dropped_by_go_queue(
    goqueue: Path, dq_conf: MakeConf
) -> None:
    # given a job due 31 minutes ago on both nodes (say they were down, or no consumer
    # ran), and one due now
    conf, _ = dq_conf(2)
    overdue = b"%d/overdue" % int((time.time() - GO_TOLERANCE - 60) * 1e9)
    put_raw(conf, overdue)
    put_raw(conf, b"%d/fresh" % time.time_ns())
    # when go-queue's consumer reads both nodes until it handled one job and none holds any
    lines = go_consume(goqueue, conf, 1)
    # then it handled the fresh job only, and deleted the overdue one's copies unhandled
    # (its tolerance): the job is lost, no lock was taken for it
    assert [line["body"] for line in lines] == ["fresh"]
    assert waiting_jobs(conf) == 0
    with redis_client(conf) as client:
        assert client.get(md5(overdue)) is None


def test_a_job_overdue_by_more_than_30_minutes_is_handled_by_zeroqueue(
    dq_conf: MakeConf,
) -> None:
    # given the same overdue job on both nodes
    conf, _ = dq_conf(2)
    due = time.time() - GO_TOLERANCE - 60
    put_raw(conf, b"%d/overdue" % int(due * 1e9))
    # when a zeroqueue Consumer reads them
    recorder = Recorder()
    with Consumer(conf, recorder).running():
        assert recorder.wait_for(1, timeout=10)
        assert eventually(lambda: waiting_jobs(conf) == 0, timeout=10)
    # then it is handled, once: zeroqueue keeps a late job (its record outlives it by
    # Consumer's window, an hour by default, as go-queue's lock does)
    assert recorder.counts == {b"overdue": 1}
    assert recorder.calls[0][2].due == pytest.approx(due, abs=1e-3)
