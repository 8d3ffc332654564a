"""A slow-then-fast handler under a backlog of 1,000,000 messages: memory stays bounded.

The handler sleeps 5 ms for its first 5,000 messages, so the Queue's buffer fills
and fetching pauses, then runs flat out through the rest. The consumer process's
peak resident memory (``VmHWM``) must stay within a bound that does not grow with
the backlog (see ``rss_bound``), and the oracle checks the run as any other.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.faults.consumer_process import rss_kib
from tests.faults.harness import CommitSampler, Progress, Run, push_all
from tests.faults.oracle import check
from zeroqueue import admin
from zeroqueue.embedded import BrokerProcess

TOTAL = 1_000_000
PARTITIONS = 4
KEYS = 1_000
QUEUE_CAPACITY = 1_000  # the Queue's default
SLOW_FIRST = 5_000
SLOW_SECONDS = 0.005
MIB = 1024  # KiB in a MiB: /proc reports KiB


def rss_bound(baseline_kib: int) -> int:
    """The most the consumer may hold (KiB): its memory at start plus what it may buffer.

    Two buffers, both bounded whatever the backlog: the Queue's, at most
    ``queue_capacity`` fetched messages (Python objects, well under 1 KiB each here),
    and librdkafka's prefetch, which fills each partition up to ``queued.min.messages``
    (100,000) unless ``queued.max.messages.kbytes`` (64 MiB of payload) stops it
    first. For messages this small the count binds: 4 x 100,000 messages at about
    300 bytes of librdkafka's own bookkeeping each. The slack covers the allocator
    and thread stacks. Holding the backlog instead would take a million records at
    those 300 bytes, some 290 MiB more, before any Python object: measured, a Queue
    let to buffer it all (queue_capacity 1,000,000) peaked at 419 MiB from 48.
    """
    queue_buffer = QUEUE_CAPACITY * 1  # KiB
    prefetch = PARTITIONS * 100_000 * 300 // 1024
    slack = 40 * MIB
    return baseline_kib + queue_buffer + prefetch + slack


@pytest.mark.slow
def test_a_slow_then_fast_handler_under_a_million_message_backlog_keeps_memory_bounded(
    kafka: BrokerProcess,
    new_topic: Callable[[int], str],
    group: str,
    seed: int,
    tmp_path: Path,
) -> None:
    rng = random.Random(seed)
    topic = new_topic(PARTITIONS)
    brokers = kafka.bootstrap_servers
    pushed = push_all(brokers, topic, rng, TOTAL, KEYS)
    progress = Progress(seed)
    sampler = CommitSampler(brokers, group, topic, PARTITIONS, interval=1.0)
    args = [
        "--handle-seconds",
        str(SLOW_SECONDS),
        "--slow-first",
        str(SLOW_FIRST),
        "--queue-capacity",
        str(QUEUE_CAPACITY),
    ]
    consumer = progress.add(Run("consumer", brokers, topic, group, tmp_path, args=args))
    try:
        progress.wait_for(progress.handled(TOTAL), 120.0, "all handled")
        peak = rss_kib(consumer.pid, "VmHWM")
        status = consumer.terminate()
        assert status == 0, f"the consumer exited with {status}:\n{consumer.stderr_tail()}"
        sampler.sample("the end")
    finally:
        sampler.close()
        consumer.ensure_gone()
        # A million messages: the session's broker need not keep them.
        admin.delete_topic([brokers], topic)
    baseline = int(consumer.log.with_name(f"{consumer.log.name}.ready").read_text())
    print(f"consumer memory: {baseline // MIB} MiB at start, {peak // MIB} MiB at its peak")
    assert peak <= rss_bound(baseline), (
        f"the consumer peaked at {peak // MIB} MiB, above {rss_bound(baseline) // MIB} MiB"
        f" ({baseline // MIB} MiB at start; seed {seed})"
    )
    check(pushed, progress.records(), sampler.samples, seed=seed)
