"""The delay queue against real beanstalkd nodes and a real Redis."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path

import greenstalk
import pytest

from tests.dq.conftest import BeanstalkdNode, RedisNode
from tests.dq.recorder import Recorder
from tests.kafka_helpers import eventually
from zeroqueue.dq import Beanstalk, Consumer, DqConf, Job, Producer, RedisConf, buried, kick
from zeroqueue.dq._beanstalk import BeanstalkConnection
from zeroqueue.dq._wire import split_ids
from zeroqueue.errors import InvalidDelayError, JobWriteError

MakeConf = Callable[[int], tuple[DqConf, list[BeanstalkdNode]]]


def test_a_delayed_job_is_handled_once_no_earlier_than_due(dq_conf: MakeConf) -> None:
    conf, _ = dq_conf(2)
    recorder = Recorder()
    scheduled: dict[bytes, tuple[float, float]] = {}
    with Producer.from_conf(conf) as producer, Consumer(conf, recorder).running():
        for body, delay in ((b"whole", 2.0), (b"fraction", 1.6)):
            before = time.time()
            producer.delay(body, delay)
            scheduled[body] = (before + delay, time.time() + delay)
        assert recorder.wait_for(2, timeout=10)
        # Both nodes held a copy; neither second copy may run.
        copies_gone = eventually(lambda: _ready_or_delayed(conf) == 0, timeout=15)
    assert copies_gone
    assert recorder.counts == {b"whole": 1, b"fraction": 1}
    for body, at, job in recorder.calls:
        earliest, latest = scheduled[body]
        assert earliest <= job.due <= latest
        assert job.due <= at < job.due + 1.0, f"{body!r} handled {at - job.due:+.3f}s from due"


def test_a_whole_second_delay_reaches_beanstalkd_whole(dq_conf: MakeConf) -> None:
    # go-queue's Producer gives beanstalkd the delay asked for, in whole seconds, and
    # go-queue's consumer handles a job as soon as it is ready: a second less would run
    # it a second early there.
    conf, _ = dq_conf(2)
    with Producer.from_conf(conf) as producer:
        whole = producer.delay(b"whole", 2)
        fraction = producer.delay(b"fraction", 2.5)
    assert _beanstalkd_delays(conf, whole) == [2, 2]
    # A fraction is cut off: ready half a second early; zeroqueue's consumer waits it out.
    assert _beanstalkd_delays(conf, fraction) == [2, 2]


def test_at_takes_a_datetime_and_refuses_the_past(dq_conf: MakeConf) -> None:
    conf, _ = dq_conf(2)
    recorder = Recorder()
    with Producer.from_conf(conf) as producer, Consumer(conf, recorder).running():
        when = datetime.now() + timedelta(seconds=1.5)
        producer.at(b"at", when)
        with pytest.raises(InvalidDelayError, match="in the past; expected a time after now"):
            producer.at(b"late", datetime.now() - timedelta(seconds=5))
        with pytest.raises(InvalidDelayError, match="delay: got -1"):
            producer.delay(b"negative", -1)
        # NaN passes every comparison: it used to end in a ValueError from the wire format.
        with pytest.raises(InvalidDelayError, match="at: got nan; expected a datetime"):
            producer.at(b"nan", float("nan"))
        assert recorder.wait_for(1, timeout=10)
    _, at, job = recorder.calls[0]
    assert job.due == pytest.approx(when.timestamp(), abs=0.001)
    assert when.timestamp() <= at < when.timestamp() + 1.0


def test_a_revoked_job_is_never_handled(dq_conf: MakeConf) -> None:
    conf, _ = dq_conf(3)
    recorder = Recorder()
    with Producer.from_conf(conf) as producer:
        revoked = producer.delay(b"revoked", 1)
        producer.delay(b"kept", 1.5)
        producer.revoke(revoked)
        with Consumer(conf, recorder).running():
            # The kept job is due after the revoked one: once it ran, the other had its turn.
            assert recorder.wait_for(1, timeout=10)
            assert eventually(lambda: _ready_or_delayed(conf) == 0, timeout=15)
    assert recorder.counts == {b"kept": 1}


def test_a_copy_on_a_node_revoke_could_not_reach_is_not_handled(dq_conf: MakeConf) -> None:
    conf, nodes = dq_conf(2)
    recorder = Recorder()
    with Producer.from_conf(conf) as producer:
        job_id = producer.delay(b"revoked", 1)
        nodes[1].kill()
        producer.revoke(job_id)  # deletes the reachable copy, records the revoke in Redis
        nodes[1].start()  # its copy comes back from the binlog
        producer.delay(b"kept", 1.5)
        with Consumer(conf, recorder).running():
            assert recorder.wait_for(1, timeout=10)
            assert eventually(lambda: _ready_or_delayed(conf) == 0, timeout=15)
    assert recorder.counts == {b"kept": 1}


def test_with_one_node_killed_the_job_is_still_handled_once(dq_conf: MakeConf) -> None:
    conf, nodes = dq_conf(3)
    recorder = Recorder()
    with Producer.from_conf(conf) as producer:
        before = producer.delay(b"written-before", 1)
        nodes[0].kill()
        # Two of three nodes take it: enough.
        after = producer.delay(b"written-after", 1)
        assert len(split_ids(before)) == 3
        assert len(split_ids(after)) == 2
        with Consumer(conf, recorder).running():
            assert recorder.wait_for(2, timeout=10)
            assert eventually(lambda: _ready_or_delayed(conf, skip=nodes[0]) == 0, timeout=15)
    assert recorder.counts == {b"written-before": 1, b"written-after": 1}


def test_a_write_two_nodes_did_not_take_fails_clearly(dq_conf: MakeConf) -> None:
    conf, nodes = dq_conf(2)
    nodes[1].kill()
    with Producer.from_conf(conf) as producer:
        with pytest.raises(JobWriteError, match="1 of 2 nodes took it, 2 needed") as caught:
            producer.delay(b"lonely", 60)
        assert f"{nodes[1].endpoint}/jobs" in caught.value.failures
        assert "the copy written was deleted" in str(caught.value)
    # The copy that was written is gone: nothing runs for a call that failed.
    assert _ready_or_delayed(conf, skip=nodes[1]) == 0


def test_a_job_failing_every_time_ends_buried_and_can_be_kicked(dq_conf: MakeConf) -> None:
    conf, _ = dq_conf(2)
    outcomes: list[str] = []
    recorder = Recorder(fail=True)
    consumer = Consumer(
        conf,
        recorder,
        max_failures=3,
        retry_delay=0.0,
        error_handler=lambda job, error, outcome: outcomes.append(outcome),
    )
    with Producer.from_conf(conf) as producer, consumer.running():
        job_id = producer.delay(b"poison", 0)
        assert eventually(lambda: len(buried(conf)) == 1, timeout=15)
        # Not looping: the copy on the other node was deleted, nothing is ready.
        assert eventually(lambda: _ready_or_delayed(conf) == 0, timeout=15)
    assert recorder.counts == {b"poison": 3}
    assert outcomes == ["retrying", "retrying", "buried"]
    [job] = buried(conf)
    assert job.id in job_id.split(",")
    assert job.body == b"poison"
    assert job.failures == 3
    assert job.reason == "RuntimeError: cannot handle b'poison'"

    healed = Recorder()
    with Consumer(conf, healed).running():
        assert kick(conf) == 1
        assert healed.wait_for(1, timeout=10)
    assert healed.counts == {b"poison": 1}
    assert healed.calls[0][2].failures == 0
    assert buried(conf) == []


def test_a_handler_raising_systemexit_fails_the_job_and_keeps_its_worker(
    dq_conf: MakeConf,
) -> None:
    # A handler calling sys.exit() used to end its worker thread: the job waited out
    # its lease, and with one worker per node that node was never read again.
    conf, _ = dq_conf(2)
    calls: list[Job] = []
    outcomes: list[tuple[str, str]] = []

    def handle(body: bytes, job: Job) -> None:
        calls.append(job)
        if len(calls) == 1:
            raise SystemExit(3)

    consumer = Consumer(
        conf,
        handle,
        processors=1,
        retry_delay=0.0,
        error_handler=lambda job, error, outcome: outcomes.append((type(error).__name__, outcome)),
    )
    with Producer.from_conf(conf) as producer, consumer.running():
        producer.delay(b"exits", 0)
        assert eventually(lambda: len(calls) == 2, timeout=15)
        assert eventually(lambda: _ready_or_delayed(conf) == 0, timeout=15)
        producer.delay(b"after", 0)
        assert eventually(lambda: len(calls) == 3, timeout=15)
        endpoints = {f"dq-{node.endpoint}-0" for node in conf.beanstalks}
        workers = {thread.name for thread in threading.enumerate() if thread.is_alive()}
    assert outcomes == [("SystemExit", "retrying")]
    # Retried as a failure, counted in Redis, not picked up after the lease ran out.
    assert [job.failures for job in calls[:2]] == [0, 1]
    assert all(calls[0].body == job.body for job in calls[:2])
    assert endpoints <= workers, f"worker threads gone: {endpoints - workers}"


def test_async_handlers_run_on_the_consumers_loop(dq_conf: MakeConf) -> None:
    conf, _ = dq_conf(2)
    seen: list[bytes] = []

    async def handle(body: bytes) -> None:
        await asyncio.sleep(0.01)
        seen.append(body)

    with Producer.from_conf(conf) as producer, Consumer(conf, handle).running():
        for index in range(20):
            producer.delay(f"job-{index}", 0.5)
        assert eventually(lambda: len(seen) == 20, timeout=15)
        assert eventually(lambda: _ready_or_delayed(conf) == 0, timeout=15)
    assert sorted(seen) == sorted(f"job-{index}".encode() for index in range(20))


def test_a_body_not_in_go_queues_format_is_buried_not_dropped(dq_conf: MakeConf) -> None:
    conf, _ = dq_conf(2)
    recorder = Recorder()
    stray = BeanstalkConnection(conf.beanstalks[0])
    stray.put(b"no due time", priority=1, delay=0, ttr=5)
    stray.close()
    with Consumer(conf, recorder).running():
        assert eventually(lambda: len(buried(conf)) == 1, timeout=10)
    [job] = buried(conf)
    assert job.body == b"no due time"
    assert "does not start with '<due time in Unix nanoseconds>/'" in job.reason
    assert recorder.calls == []


def test_a_consumer_killed_mid_flight_loses_no_job(dq_conf: MakeConf, tmp_path: Path) -> None:
    conf, _ = dq_conf(2)
    out = tmp_path / "handled.log"
    bodies = [f"job-{index}" for index in range(12)]
    with Producer(conf.beanstalks, redis=conf.redis, ttr=2) as producer:
        for index, body in enumerate(bodies):
            producer.delay(body, 1 + index % 3)
    conf_json = json.dumps(conf.model_dump(by_alias=True))

    def start(handle_seconds: float) -> subprocess.Popen[bytes]:
        return subprocess.Popen(
            [
                sys.executable,
                "-m",
                "tests.dq.consumer_process",
                conf_json,
                str(out),
                str(handle_seconds),
            ],
            cwd=Path(__file__).parents[2],
            start_new_session=True,
        )

    first = start(30.0)  # handlers that never finish before the kill
    try:
        assert eventually(lambda: _lines(out, "start") >= 2, timeout=15)
    finally:
        os.killpg(first.pid, signal.SIGKILL)
        first.wait()
    interrupted = {line.split()[1] for line in out.read_text().splitlines()}
    second = start(0.0)
    try:
        assert eventually(lambda: set(_done(out)) == set(bodies), timeout=30)
    finally:
        second.terminate()
        second.wait(15)
    done = _done(out)
    # Only what the killed consumer was handling may run twice.
    assert all(done.count(body) == 1 for body in bodies if body not in interrupted)


def _lines(path: Path, kind: str) -> int:
    if not path.exists():
        return 0
    return sum(1 for line in path.read_text().splitlines() if line.startswith(kind))


def _done(path: Path) -> list[str]:
    if not path.exists():
        return []
    return [line.split()[1] for line in path.read_text().splitlines() if line.startswith("done")]


def _beanstalkd_delays(conf: DqConf, job_id: str) -> list[int]:
    """The delay each copy of a job was put with, as beanstalkd's stats-job reports it."""
    delays = []
    for copy in split_ids(job_id):
        [node] = [n for n in conf.beanstalks if n.endpoint == copy.endpoint]
        connection = BeanstalkConnection(node)
        try:
            stats = connection.stats(copy.job_id)
        finally:
            connection.close()
        assert stats is not None, f"{copy} is gone"
        delays.append(stats.delay)
    return delays


def _ready_or_delayed(conf: DqConf, skip: BeanstalkdNode | None = None) -> int:
    """Jobs of the tube still waiting on the nodes (ready, delayed or reserved)."""
    total = 0
    for node in conf.beanstalks:
        if skip is not None and node.endpoint == skip.endpoint:
            continue
        host, port = node.host_port
        with greenstalk.Client((host, port), use=node.tube) as client:
            try:
                stats = client.stats_tube(node.tube)
            except greenstalk.NotFoundError:
                continue
            total += sum(
                int(stats[name])
                for name in ("current-jobs-ready", "current-jobs-delayed", "current-jobs-reserved")
            )
    return total


def test_zeroqueue_dq_lists_and_kicks_buried_jobs(dq_conf: MakeConf, tmp_path: Path) -> None:
    conf, _ = dq_conf(2)
    config = tmp_path / "config.yaml"
    config.write_text(
        "DqConf:\n  Beanstalks:\n"
        + "".join(f"    - Endpoint: {b.endpoint}\n      Tube: {b.tube}\n" for b in conf.beanstalks)
        + f"  Redis:\n    Host: {conf.redis.host if conf.redis else ''}\n"
    )
    recorder = Recorder(fail=True)
    with Producer.from_conf(conf) as producer, Consumer(conf, recorder, max_failures=1).running():
        producer.delay(b"poison", 0)
        assert eventually(lambda: len(buried(conf)) == 1, timeout=15)

    def zeroqueue(*args: str) -> str:
        done = subprocess.run(
            [sys.executable, "-m", "zeroqueue", "dq", *args, "-f", str(config)],
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        )
        return done.stdout

    listed = zeroqueue("buried", "--json")
    [entry] = [json.loads(line) for line in listed.splitlines()]
    assert entry["body"] == "poison"
    assert entry["reason"] == "RuntimeError: cannot handle b'poison'"
    assert "1 buried job(s)" in zeroqueue("buried")
    assert zeroqueue("kick", entry["id"]) == "kicked 1 job(s)\n"
    assert buried(conf) == []


def test_with_redis_down_jobs_wait_and_run_once_it_is_back(
    beanstalkd_nodes: Callable[[int], list[BeanstalkdNode]], redis_node: RedisNode
) -> None:
    nodes = beanstalkd_nodes(2)
    conf = DqConf(
        beanstalks=[Beanstalk(endpoint=node.endpoint, tube="jobs") for node in nodes],
        redis=RedisConf(host=f"127.0.0.1:{redis_node.port}"),
    )
    recorder = Recorder()
    with Producer(conf.beanstalks) as producer, Consumer(conf, recorder).running():
        producer.delay(b"patient", 1)
        # when Redis goes away before the job is due
        redis_node.kill()
        # then the job is not handled without it (it could not be told apart from its copy)
        assert not recorder.wait_for(1, timeout=3)
        # and once Redis is back (empty), it runs, once
        redis_node.start()
        assert recorder.wait_for(1, timeout=15)
        assert eventually(lambda: _ready_or_delayed(conf) == 0, timeout=15)
    assert recorder.counts == {b"patient": 1}
