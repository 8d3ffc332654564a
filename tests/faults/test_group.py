"""A group of 3 consumer processes, members leaving (SIGTERM) and joining while they consume.

On Apache Kafka a change may come while the previous rebalance is still going on.
The embedded broker (Tansu 0.6) gets stuck there: once a member leaves during a
rebalance, the next generation may name a member that has left as its leader, and
every member that joins later loops between JoinGroup and a SyncGroup that answers
"rebalance in progress", for good. And it ends a rebalance after half a session,
without a member still draining its partitions on the way out, then refuses that
member's final commit (Apache Kafka waits for it). So on Tansu each change waits for
a stable group of every live member, and the members stop one at a time.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from confluent_kafka import ConsumerGroupState
from confluent_kafka.admin import AdminClient

from tests.faults.harness import CommitSampler, Progress, Run, push_all, stop_all
from tests.faults.oracle import check
from tests.kafka_helpers import eventually
from zeroqueue.embedded import BrokerProcess

TOTAL = 30_000
PARTITIONS = 6
MEMBERS = 3
CHANGES = 4
KEYS = 1_000
STEP_TIMEOUT = 60.0


@pytest.mark.slow
def test_members_joining_and_leaving_lose_nothing(  # noqa: PLR0917 - fixtures
    kafka: BrokerProcess,
    broker_kind: str,
    new_topic: Callable[[int], str],
    group: str,
    seed: int,
    tmp_path: Path,
) -> None:
    rng = random.Random(seed)
    topic = new_topic(PARTITIONS)
    brokers = kafka.bootstrap_servers
    pushed = push_all(brokers, topic, rng, TOTAL, KEYS)
    # About 800 messages a second per member: the changes come while they consume.
    args = ["--handle-seconds", "0.01", "--fail-every", "97", "--fail-seed", str(seed)]
    # Change points: how many distinct messages have been handled; at each, one member
    # leaves and a new one joins, in an order the seed picks.
    change_at = sorted(rng.sample(range(TOTAL // 20, TOTAL * 17 // 20), CHANGES))
    progress = Progress(seed)
    sampler = CommitSampler(brokers, group, topic, PARTITIONS)
    names = iter(f"member-{n}" for n in range(1, MEMBERS + CHANGES + 1))

    def join() -> Run:
        return progress.add(Run(next(names), brokers, topic, group, tmp_path, args=args))

    admin = AdminClient({"bootstrap.servers": brokers})

    @contextmanager
    def settling() -> Iterator[None]:
        """On Tansu only (see the module docstring): after the change inside, wait until it settles.

        Settled: the group is stable and every live member was assigned partitions (maybe
        none) since the change began. Stable alone is not enough: until a newcomer's
        JoinGroup arrives, and a leaver's LeaveGroup, the group still looks stable; and
        Tansu's DescribeGroups lists no members to count.
        """
        before = {run.name: run.assignments() for run in progress.runs}
        yield
        if broker_kind != "tansu":
            return
        seen: list[str] = []

        def settled() -> bool:
            waiting = [
                run.name
                for run in progress.runs
                if run.process.poll() is None and run.assignments() <= before.get(run.name, 0)
            ]
            state = admin.describe_consumer_groups([group])[group].result(10).state
            seen[:] = [f"{state.name}, not yet assigned: {waiting}"]
            return state == ConsumerGroupState.STABLE and not waiting

        assert eventually(settled, STEP_TIMEOUT), (
            f"the group never settled (seed {seed}): last seen {seen}"
        )

    members: list[Run] = []
    try:
        with settling():
            members += [join() for _ in range(MEMBERS)]
        for number, point in enumerate(change_at, 1):
            progress.wait_for(progress.handled(point), STEP_TIMEOUT, f"{point:,} handled")
            # Only a member that handles already: before its Queue starts, SIGTERM
            # would kill the process, not stop a consumer.
            progress.wait_for(
                lambda _: any(member.handled for member in members),
                STEP_TIMEOUT,
                "a member handling",
            )
            running = [member for member in members if member.handled]
            leaving = running[rng.randrange(len(running))]
            members.remove(leaving)
            join_first = rng.random() < 0.5
            if join_first:
                with settling():
                    members.append(join())
            with settling():
                status = leaving.terminate()
            assert status == 0, f"{leaving.name} exited with {status}:\n{leaving.stderr_tail()}"
            sampler.sample(f"after {leaving.name} left (change {number})")
            if not join_first:
                with settling():
                    members.append(join())
        progress.wait_for(progress.handled(TOTAL), STEP_TIMEOUT, "all handled", must=False)
        if broker_kind == "tansu":
            # One at a time: all at once, the first to leave starts a rebalance that
            # Tansu may end without a member still draining, and then refuses its
            # final commit (illegal generation).
            for run in members[:-1]:
                with settling():
                    status = run.terminate()
                assert status == 0, f"{run.name} exited with {status}:\n{run.stderr_tail()}"
        stop_all(members)
        sampler.sample("the end")
    finally:
        sampler.close()
        for run in progress.runs:
            run.ensure_gone()
    check(pushed, progress.records(), sampler.samples, seed=seed)
