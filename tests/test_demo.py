"""``zeroqueue demo``: the login-log service end to end over HTTP, and the checks it reports."""

from __future__ import annotations

import subprocess
import sys

from confluent_kafka.admin import AdminClient

from zeroqueue._demo import DemoReport, DemoSettings, run_demo
from zeroqueue.service import ExitCode


def test_demo_command_runs_on_its_own_embedded_broker() -> None:
    # when a new user runs the demo (from the repository's root, as README says)
    result = subprocess.run(
        [sys.executable, "-m", "zeroqueue", "demo", "--logins", "1000", "--fail-every", "250"],
        capture_output=True,
        text=True,
        timeout=110,
        check=False,
    )
    # then it ends with a summary that says nothing was lost
    assert result.returncode == 0, result.stdout + result.stderr
    assert "stored    1,000 of 1,000" in result.stdout
    assert "every login there, in the order it was posted" in result.stdout
    assert "4 stores failed on purpose, each retried" in result.stdout
    assert "committed 8/8 partitions" in result.stdout
    assert "exit code 0" in result.stdout
    assert result.stdout.rstrip().endswith("OK: nothing lost, per-user order kept")


def test_demo_on_an_existing_cluster_cleans_up_after_itself(brokers: list[str]) -> None:
    before = set(AdminClient({"bootstrap.servers": brokers[0]}).list_topics(timeout=10).topics)
    report = run_demo(DemoSettings(logins=300, users=30, clients=4, partitions=3, brokers=brokers))
    assert report.ok
    assert report.stored == 300
    assert sorted(report.committed) == [0, 1, 2]
    # and its topic is gone again
    client = AdminClient({"bootstrap.servers": brokers[0]})
    assert set(client.list_topics(timeout=10).topics) == before


def test_a_report_with_an_uncommitted_partition_is_not_ok() -> None:
    report = DemoReport(
        posted=2, stored=2, last_offsets={0: 0, 1: 0}, committed={0: 1, 1: 0}, exit_code=ExitCode.OK
    )
    assert report.committed_to_end == [0]
    assert not report.ok


def test_a_report_of_a_group_that_did_not_stop_cleanly_is_not_ok() -> None:
    report = DemoReport(
        posted=1, stored=1, last_offsets={0: 0}, committed={0: 1}, exit_code=ExitCode.UNCLEAN
    )
    assert not report.ok
