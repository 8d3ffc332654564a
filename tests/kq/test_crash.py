"""At-least-once under a crash: a consumer killed with SIGKILL loses nothing."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path

from tests.kafka_helpers import committed_offsets
from zeroqueue import Pusher
from zeroqueue.embedded import BrokerProcess

ROOT = Path(__file__).resolve().parents[2]
TOTAL = 20_000


def start_consumer(broker: str, topic: str, group: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "tests.kq.consumer_process", broker, topic, group, "0.0005"],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )


def parse(line: str) -> tuple[int, int, str, int]:
    partition, offset, key, value = line.split()
    return int(partition), int(offset), key, int(value)


def test_sigkill_mid_stream_loses_nothing(
    kafka: BrokerProcess, new_topic: Callable[[int], str], group: str
) -> None:
    # given 20,000 keyed messages on 4 partitions
    topic = new_topic(4)
    with Pusher([kafka.bootstrap_servers], topic) as pusher:
        for i in range(TOTAL):
            pusher.push_with_key(f"user-{i % 100}", f"{i}")

    # when a consumer process is killed with SIGKILL after handling ~a quarter
    first = start_consumer(kafka.bootstrap_servers, topic, group)
    assert first.stdout is not None
    handled_first: list[tuple[int, int, str, int]] = []
    for line in first.stdout:
        handled_first.append(parse(line))
        if len(handled_first) == TOTAL // 4:
            first.send_signal(signal.SIGKILL)
            break
    handled_first.extend(parse(line) for line in first.stdout)  # what it wrote before dying
    first.stdout.close()
    first.wait(10)
    assert first.returncode == -signal.SIGKILL
    assert len(handled_first) < TOTAL
    committed = committed_offsets([kafka.bootstrap_servers], group, topic)

    # then every committed offset was earned: all messages below it were handled
    done_first: dict[int, set[int]] = defaultdict(set)
    for partition, offset, _, _ in handled_first:
        done_first[partition].add(offset)
    for partition, offset in committed.items():
        assert set(range(max(offset, 0))) <= done_first[partition]

    # when a new consumer process of the same group runs until everything is handled
    second = start_consumer(kafka.bootstrap_servers, topic, group)
    assert second.stdout is not None
    handled_second: list[tuple[int, int, str, int]] = []
    seen = {value for _, _, _, value in handled_first}
    for line in second.stdout:
        record = parse(line)
        handled_second.append(record)
        seen.add(record[3])
        if len(seen) == TOTAL:
            break
    second.send_signal(signal.SIGTERM)
    second.communicate(timeout=30)
    assert second.returncode == 0

    # then no message was lost...
    assert seen == set(range(TOTAL))
    # ...the restart began exactly at the committed offsets, so duplicates come only
    # from the window the killed process had handled but not yet committed
    lowest: dict[int, int] = {}
    for partition, offset, _, _ in handled_second:
        lowest[partition] = min(offset, lowest.get(partition, offset))
    for partition, offset in lowest.items():
        assert offset == max(committed[partition], 0)
    duplicates = {(p, o) for p, o, _, _ in handled_first} & {
        (p, o) for p, o, _, _ in handled_second
    }
    assert all(o >= committed[p] for p, o in duplicates)
    # ...and each process saw every key's messages in order
    for run in (handled_first, handled_second):
        per_key: dict[str, list[int]] = defaultdict(list)
        for _, _, key, value in run:
            per_key[key].append(value)
        assert all(values == sorted(values) for values in per_key.values())
