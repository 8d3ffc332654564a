"""A crash at a chosen point: the kit delivers again exactly what a real broker does.

Both runs: a Queue handles and commits 6 messages and stops; 6 more are pushed;
a consumer dies after handling 3 of those, before its next commit (a process
that exits at once on the broker, ``MemoryBroker.crash`` in the kit); a new
Queue of the group then gets, on both, every message after the last commit.
"""

from __future__ import annotations

import subprocess
import sys
import threading
import uuid

from tests.testing.conftest import Seen, Target
from zeroqueue import KqConf, Message, Pusher, Queue
from zeroqueue.embedded import BrokerProcess
from zeroqueue.testing import MemoryBroker

Record = tuple[int, int, str]  # partition, offset, value
CRASH_AFTER = 3


def push(brokers: list[str], topic: str, values: list[str]) -> None:
    with Pusher(brokers, topic) as pusher:
        for value in values:
            pusher.push_with_key(value, value)


def handle_all(target: Target, conf: KqConf, count: int) -> list[Record]:
    """Run a Queue of the group until it handled ``count`` messages; stop it (it commits)."""
    seen = Seen()
    with target.queue(conf, seen.add, commit_interval=0.05).running():
        assert seen.wait_for(count), f"handled {len(seen.messages)} of {count}"
    return sorted((m.partition, m.offset, m.value_str) for m in seen.messages)


def crash_in_kit(target: Target, conf: KqConf) -> list[Record]:
    memory = target.memory
    assert memory is not None
    handled: list[Record] = []
    queue: Queue | None = None
    crashed = threading.Event()

    def handle(message: Message) -> None:
        handled.append((message.partition, message.offset, message.value_str))
        if len(handled) == CRASH_AFTER:
            assert queue is not None
            memory.crash(queue)
            crashed.set()

    queue = target.queue(conf, handle, commit_interval=60.0, ordering="partition", adaptive=False)
    with queue.running():
        assert crashed.wait(10)
    return handled[:CRASH_AFTER]


def crash_on_broker(target: Target, conf: KqConf) -> list[Record]:
    process = subprocess.run(
        [
            sys.executable,
            "-m",
            "tests.testing.crashing_consumer",
            target.brokers[0],
            str(conf.topic),
            conf.group,
            str(CRASH_AFTER),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert process.returncode == 3, process.stderr[-2000:]
    lines = [line.split(" ", 2) for line in process.stdout.splitlines()]
    return [(int(p), int(o), v) for p, o, v in lines]


def crash_scenario(target: Target, group: str) -> tuple[dict[int, int | None], list[Record]]:
    """Run the scenario; return the committed offsets after the crash and what came again."""
    topic = target.new_topic(2)
    conf = KqConf(Brokers=target.brokers, Group=group, Topic=topic, Offset="first")
    first = [f"m{n}" for n in range(6)]
    push(target.brokers, topic, first)
    assert [v for *_, v in handle_all(target, conf, 6)] != []
    push(target.brokers, topic, [f"m{n}" for n in range(6, 12)])

    crashed = (crash_in_kit if target.kind == "kit" else crash_on_broker)(target, conf)
    assert len(crashed) == CRASH_AFTER
    committed = target.committed(group, topic)

    again = handle_all(target, conf, 6)
    # every message handled before the crash is among those delivered again
    assert set(crashed) <= set(again)
    return committed, again


def test_a_crash_redelivers_every_message_after_the_last_commit(target: Target, group: str) -> None:
    # when a consumer crashes after handling 3 of 6 uncommitted messages
    committed, again = crash_scenario(target, group)

    # then its handling committed nothing, and a new Queue gets exactly those 6 again
    assert sum(offset or 0 for offset in committed.values()) == 6
    assert sorted(v for *_, v in again) == sorted(f"m{n}" for n in range(6, 12))
    assert all(offset >= (committed[p] or 0) for p, offset, _ in again)


def test_the_kit_redelivers_the_same_messages_as_the_broker(
    kafka: BrokerProcess,
) -> None:
    # given the same scenario on the kit and on the broker under test
    outcomes = {}
    suffix = uuid.uuid4().hex[:8]
    for kind in ("kit", "broker"):
        memory = MemoryBroker()
        brokers = memory.brokers if kind == "kit" else [kafka.bootstrap_servers]

        def make(partitions: int, kind: str = kind, memory: MemoryBroker = memory) -> str:
            # the same topic name on both, so the same keys land on the same partitions
            name = f"crash-compare-{suffix}"
            if kind == "kit":
                memory.create_topic(name, partitions)
            else:
                kafka.create_topic(name, partitions)
            return name

        target = Target(
            kind,
            brokers,
            make,
            memory if kind == "kit" else None,
            {} if kind == "kit" else {"session_timeout": 2.0, "max_wait": 0.1},
        )
        outcomes[kind] = crash_scenario(target, f"g-crash-compare-{suffix}")
        memory.close()

    # then both committed the same offsets and delivered the same records again
    assert outcomes["kit"] == outcomes["broker"]
