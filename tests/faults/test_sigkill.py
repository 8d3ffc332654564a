"""A consumer SIGKILLed at random points, five times in 50,000 messages, restarted each time.

Some messages fail once in every process that tries them (ForceCommit: false), so
they are retried in place: a build that skips a failed message loses them. The
same scenario, smaller, runs on builds broken on purpose to show the oracle
catches a commit before handling and a skipped failure.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.faults.harness import CommitSampler, Progress, Run, push_all
from tests.faults.oracle import CommitSample, Handled, Pushed, check, violations
from zeroqueue.embedded import BrokerProcess

TOTAL = 50_000
KILLS = 5
KEYS = 1_000
# Seconds one run may take to reach its kill point (a restart waits out the killed
# member's 2 s session first).
STEP_TIMEOUT = 60.0


@dataclass
class History:
    pushed: list[Pushed]
    handled: list[Handled]
    samples: list[CommitSample]


def kill_and_restart(
    broker: BrokerProcess,
    new_topic: Callable[[int], str],
    group: str,
    seed: int,
    log_dir: Path,
    *,
    total: int,
    kills: int,
    env: dict[str, str] | None = None,
    handle_seconds: float = 0.0005,
) -> History:
    """Push ``total`` messages; kill ``kills`` runs at seeded points, then run one to the end."""
    rng = random.Random(seed)
    partitions = rng.randint(4, 8)
    topic = new_topic(partitions)
    pushed = push_all(broker.bootstrap_servers, topic, rng, total, KEYS)
    # Kill points: how many distinct messages have been handled (by all runs so far).
    kill_at = sorted(rng.sample(range(1, total * 9 // 10), kills))
    args = ["--handle-seconds", str(handle_seconds), "--fail-every", "97", "--fail-seed", str(seed)]
    progress = Progress(seed)
    sampler = CommitSampler(broker.bootstrap_servers, group, topic, partitions)
    try:
        for number, point in enumerate(kill_at, 1):
            run = progress.add(
                Run(
                    f"run-{number}",
                    broker.bootstrap_servers,
                    topic,
                    group,
                    log_dir,
                    args=args,
                    env=env,
                )
            )
            progress.wait_for(progress.handled(point), STEP_TIMEOUT, f"{point:,} handled")
            run.kill()
            sampler.sample(f"after kill {number}")
        last = progress.add(
            Run("last-run", broker.bootstrap_servers, topic, group, log_dir, args=args, env=env)
        )
        # Short of every message, the oracle names what is missing: a broken build
        # stops handling once it lost some, so it is given up on after 3 quiet seconds.
        progress.wait_for(
            progress.handled(total),
            STEP_TIMEOUT,
            f"all {total:,} handled",
            quiet=3.0 if env else None,
            must=False,
        )
        status = last.terminate()
        assert status == 0, f"the last run exited with {status}:\n{last.stderr_tail()}"
        sampler.sample("the end")
    finally:
        sampler.close()
        for run in progress.runs:
            run.ensure_gone()
    return History(pushed, progress.records(), sampler.samples)


@pytest.mark.slow
def test_sigkill_five_times_in_50k_messages_loses_nothing(
    kafka: BrokerProcess,
    new_topic: Callable[[int], str],
    group: str,
    seed: int,
    tmp_path: Path,
) -> None:
    history = kill_and_restart(kafka, new_topic, group, seed, tmp_path, total=TOTAL, kills=KILLS)
    check(history.pushed, history.handled, history.samples, seed=seed)


@pytest.mark.slow
@pytest.mark.parametrize(
    ("broken", "caught"),
    # Committing early shows as a commit past an unhandled message when a reading of the
    # committed offsets caught it there, and always as the messages it lost.
    [("commit-early", ("gap: ", "lost: ")), ("skip-failed", ("lost: ",))],
)
def test_a_broken_build_fails_the_oracle(  # noqa: PLR0917 - fixtures
    kafka: BrokerProcess,
    new_topic: Callable[[int], str],
    group: str,
    seed: int,
    tmp_path: Path,
    broken: str,
    caught: tuple[str, ...],
) -> None:
    # given zeroqueue broken on purpose in the consumer processes
    env = {"ZEROQUEUE_FAULT_BREAK": broken}
    # when the scenario runs, smaller, with a handler slow enough to run on worker lanes
    # (messages the fetch thread handles itself are never committed early)
    history = kill_and_restart(
        kafka, new_topic, group, seed, tmp_path, total=5_000, kills=2, env=env, handle_seconds=0.005
    )
    # then the oracle names the broken promise
    found = violations(history.pushed, history.handled, history.samples)
    assert any(line.startswith(caught) for line in found), (
        f"{broken} was not caught (seed {seed}); the oracle found: {found[:5]}"
    )
