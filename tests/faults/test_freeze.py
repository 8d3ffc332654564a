"""The broker frozen (SIGSTOP) for 10 s under push and consume load, then resumed.

A Pusher pushes all along, with its defaults: every push must be acknowledged or
raised (by ``push``, or by ``close`` as a ``DeliveryError`` that ``error_handler``
heard too); with ``delivery_timeout`` (120 s) longer than the freeze, all are
acknowledged. The consumer process is left alone: it must handle every acknowledged
message after the resume, by itself, within a bound. The broker is the test's own,
so freezing it cannot hurt other tests.

Apache Kafka here keeps a frozen broker registered for 30 s instead of 9: a single
KRaft node whose own session lapsed during the freeze fences itself for a moment
after it, and answers Metadata with no broker at all, which librdkafka 2.13 to 2.16
takes for good: it drops every broker and never connects again
(confluentinc/librdkafka#5301; the Queue then idles, and so would any client). A
cluster has other brokers to answer while one is fenced.

Not here: a ``delivery_timeout`` shorter than the freeze. Then librdkafka 2.16's
idempotent producer stored some acknowledged messages twice on Apache Kafka 4.4
(in about half the runs), and failed every later message on the embedded broker.
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

FREEZE = 10.0
# How long the consumer may take, after the resume, to handle every acknowledged message:
# a session (2 s) lapsed during the freeze, so it joins the group again first.
RESUME_BOUND = 30.0
PARTITIONS = 4
KEYS = 200
RATE = 2_000  # pushes a second
# See the module docstring: the node must not fence itself after the freeze.
KAFKA_CONFIG = {"broker.session.timeout.ms": "30000"}


@pytest.mark.slow
def test_a_frozen_broker_loses_no_push_and_the_queue_resumes_by_itself(
    broker_kind: str, seed: int, tmp_path: Path
) -> None:
    rng = random.Random(seed)
    with own_broker(broker_kind, tmp_path, config=KAFKA_CONFIG) as broker:
        brokers, topic, group = broker.bootstrap_servers, "frozen", "frozen-group"
        broker.create_topic(topic, PARTITIONS)
        pid = broker.pid
        assert pid is not None
        progress = Progress(seed)
        sampler = CommitSampler(brokers, group, topic, PARTITIONS)
        consumer = progress.add(Run("consumer", brokers, topic, group, tmp_path))
        pusher = SteadyPusher(brokers, topic, rng.randrange(2**32), KEYS, RATE)
        frozen = False
        try:
            # given push and consume under way: the consumer caught up with what was
            # pushed before it joined, and handled a seeded number more
            caught_up = pusher.count + rng.randint(500, 3_000)
            progress.wait_for(progress.handled(caught_up), 30.0, f"{caught_up:,} handled")
            # when the broker is frozen for 10 s (the freeze is a duration: sleeping is it)
            os.kill(pid, signal.SIGSTOP)
            frozen = True
            time.sleep(FREEZE)
            os.kill(pid, signal.SIGCONT)
            frozen = False
            resumed = time.monotonic()
            # and pushing goes on for a second after the resume
            goal = pusher.count + RATE
            assert eventually(lambda: pusher.count >= goal, 10.0)
            pushed = pusher.finish()
            # then every acknowledged message is handled, the consumer left alone
            acknowledged = [message.value for message in pushed if message.acknowledged]
            progress.wait_for(
                progress.all_of(acknowledged), RESUME_BOUND, "every acknowledged message handled"
            )
            print(f"all acknowledged messages handled {time.monotonic() - resumed:.1f}s after")
            status = consumer.terminate()
            assert status == 0, f"the consumer exited with {status}:\n{consumer.stderr_tail()}"
            sampler.sample("the end")
        finally:
            if frozen:
                os.kill(pid, signal.SIGCONT)
            sampler.close()
            consumer.ensure_gone()
            pusher.finish()
    # and the Pusher lost nothing: each failure (none expected) was raised by push, or
    # by close() after error_handler heard it
    failed = len(pusher.failed)
    raised = pusher.delivery_error.count if pusher.delivery_error is not None else 0
    assert raised == failed, f"close() raised {raised}, error_handler heard {failed}"
    assert (failed, len(pusher.raised)) == (0, 0), f"seed {seed}: {pusher.delivery_error}"
    check(pushed, progress.records(), sampler.samples, seed=seed)
