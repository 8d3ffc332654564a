"""Apache Kafka killed (SIGKILL) and restarted on the same port, its data kept, under load.

Only on Apache Kafka: the embedded broker keeps nothing across a restart. A Pusher
with its defaults pushes all along (``delivery_timeout``, 120 s, outlasts the
outage) and a consumer process is left alone: every acknowledged message must be
handled once the broker is back, the group's committed offsets having survived.
"""

from __future__ import annotations

import os
import random
import signal
import time
from pathlib import Path

import pytest

from tests.faults.harness import CommitSampler, Progress, Run, SteadyPusher, own_broker
from tests.faults.oracle import check
from tests.kafka_helpers import eventually

PARTITIONS = 4
KEYS = 200
RATE = 2_000  # pushes a second
# How long, after the broker is back, the consumer may take to handle every
# acknowledged message (it joins the group again first: its session lapsed).
RESTART_BOUND = 30.0


@pytest.mark.slow
@pytest.mark.kafka_only
def test_kafka_killed_and_restarted_on_its_port_loses_nothing(
    broker_kind: str, seed: int, tmp_path: Path
) -> None:
    rng = random.Random(seed)
    with own_broker(broker_kind, tmp_path, data_dir=tmp_path / "data") as broker:
        brokers, topic, group = broker.bootstrap_servers, "restarted", "restarted-group"
        broker.create_topic(topic, PARTITIONS)
        port = broker.port
        progress = Progress(seed)
        sampler = CommitSampler(brokers, group, topic, PARTITIONS)
        consumer = progress.add(Run("consumer", brokers, topic, group, tmp_path))
        pusher = SteadyPusher(brokers, topic, rng.randrange(2**32), KEYS, RATE)
        try:
            # given push and consume under way (caught up, then a seeded number more)
            caught_up = pusher.count + rng.randint(500, 3_000)
            progress.wait_for(progress.handled(caught_up), 30.0, f"{caught_up:,} handled")
            # when the broker is killed, stays down a seeded while, and is started again
            pid = broker.pid
            assert pid is not None
            os.kill(pid, signal.SIGKILL)
            broker.stop()  # reaps it; its data directory stays
            time.sleep(rng.uniform(0.5, 3.0))  # the outage itself
            broker.start()
            restarted = time.monotonic()
            assert broker.port == port
            # and pushing goes on for a second after it is back
            goal = pusher.count + RATE
            assert eventually(lambda: pusher.count >= goal, 10.0)
            pushed = pusher.finish()
            # then every acknowledged message is handled, the consumer left alone
            acknowledged = [message.value for message in pushed if message.acknowledged]
            progress.wait_for(
                progress.all_of(acknowledged), RESTART_BOUND, "every acknowledged message handled"
            )
            print(f"all acknowledged messages handled {time.monotonic() - restarted:.1f}s after")
            status = consumer.terminate()
            assert status == 0, f"the consumer exited with {status}:\n{consumer.stderr_tail()}"
            sampler.sample("the end")
        finally:
            sampler.close()
            consumer.ensure_gone()
            pusher.finish()
    # and the Pusher lost nothing: each failure (none expected) was raised
    failed = len(pusher.failed)
    raised = pusher.delivery_error.count if pusher.delivery_error is not None else 0
    assert raised == failed, f"close() raised {raised}, error_handler heard {failed}"
    assert (failed, len(pusher.raised)) == (0, 0), f"seed {seed}: {pusher.delivery_error}"
    check(pushed, progress.records(), sampler.samples, seed=seed)
