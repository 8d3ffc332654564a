"""What a new user meets: no broker, a misspelled config key, --help; and ``bench``."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.cli.helpers import COMMAND_TIMEOUT, ok, zeroqueue
from tests.kafka_helpers import unique_name
from zeroqueue._process import free_port
from zeroqueue.cli._inspect import topic_partitions
from zeroqueue.embedded import EmbeddedBroker

COMMANDS = [
    ("push", "t", "x"),
    ("tail", "t"),
    ("topics",),
    ("topics", "describe", "t"),
    ("groups",),
    ("groups", "describe", "g"),
    ("bench",),
]


@pytest.mark.parametrize("command", COMMANDS, ids=" ".join)
def test_no_broker_running_is_said_within_the_timeout(command: tuple[str, ...]) -> None:
    # given an address nothing listens on
    address = f"127.0.0.1:{free_port()}"
    started = time.monotonic()
    done = zeroqueue(*command, "--brokers", address, "--timeout", "1")
    # then the command says which address did not answer and what to do, soon
    assert time.monotonic() - started < 15
    assert done.returncode == 1
    assert done.stderr.startswith(f"Error: no Kafka broker answered at {address} within 1s.")
    assert "`zeroqueue dev`" in done.stderr
    # and librdkafka's retries do not bury that line
    assert len(done.stderr.splitlines()) == 1, done.stderr


@pytest.mark.parametrize(
    "start", ["99999999999999999999", "-99999999999999999999", "--5", "\u00b2", "@inf", "@1e30"]
)
def test_tail_refuses_a_start_beyond_what_kafka_holds_in_one_line(start: str) -> None:
    # --from is read before any broker is asked
    done = zeroqueue("tail", "t", "--from", start, "--brokers", "127.0.0.1:1")
    assert done.returncode == 2, done.stderr
    assert "Invalid value for --from" in done.stderr
    assert "Traceback" not in done.stderr


def test_a_misspelled_config_key_is_named_with_the_right_one(tmp_path: Path) -> None:
    config = tmp_path / "config.yaml"
    config.write_text(
        "KqConsumerConf:\n  Brokres:\n    - 127.0.0.1:9092\n  Group: g\n  Topic: orders\n"
    )
    done = zeroqueue("topics", "-f", str(config))
    assert done.returncode == 1
    assert "KqConsumerConf: unknown key 'Brokres'; did you mean 'Brokers'?" in done.stderr


def test_no_cluster_named_says_how_to_name_one() -> None:
    done = zeroqueue("topics")
    assert done.returncode == 2
    assert "name the cluster: --brokers host:port, or -f config.yaml" in done.stderr


def test_a_pusher_section_names_the_cluster(
    brokers: list[str], tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    # given go-zero's KqPusherConf section, which has no Group
    topic = unique_name(request, "t")
    config = tmp_path / "config.yaml"
    config.write_text(f"KqPusherConf:\n  Brokers:\n    - {brokers[0]}\n  Topic: {topic}\n")
    ok("topics", "create", topic, "-f", str(config), "--section", "KqPusherConf")
    out = ok("push", topic, "hi", "-f", str(config), "--section", "KqPusherConf")
    assert out.strip() == f"pushed 1 message to {topic}, 1 acknowledged"


@pytest.mark.parametrize(
    ("command", "mentions"),
    [
        (("push",), ["--key-separator", "--header", "--codec", "--json", "-f, --file"]),
        (("tail",), ["--from", "--partition", "--count", "--no-follow", "--json"]),
        (("topics",), ["create", "describe", "--json", "--brokers"]),
        (("topics", "create"), ["--partitions", "--replicas", "--config"]),
        (("groups",), ["describe", "--json"]),
        (("groups", "describe"), ["GROUP", "lag"]),
        (("bench",), ["--messages", "--json", "--section"]),
    ],
    ids=lambda v: " ".join(v) if isinstance(v, tuple) else "",
)
def test_help(command: tuple[str, ...], mentions: list[str]) -> None:
    out = ok(*command, "--help")
    for word in mentions:
        assert word in out, word


def test_bench_times_both_clients_and_cleans_up(brokers: list[str]) -> None:
    out = ok("bench", "--messages", "2000", "--size", "50", "--json", "--brokers", brokers[0])
    report = json.loads(out)
    assert [(r["what"], r["client"], r["messages"]) for r in report["runs"]] == [
        ("push", "zeroqueue Pusher", 2000),
        ("push", "confluent-kafka Producer", 2000),
        # every message on the topic: both clients' pushes and their untimed warm-ups
        ("read", "zeroqueue Queue", 4002),
        ("read", "confluent-kafka Consumer", 4002),
    ]
    assert all(r["seconds"] > 0 and r["per_second"] > 0 for r in report["runs"])
    assert report["runs"][0]["bytes"] == 2000 * 50
    # and its topic is gone
    assert not [t for t in topic_partitions(brokers, {}, 10.0) if t.startswith("zeroqueue-bench")]


def test_bench_fails_in_bounded_time_when_the_broker_stops_mid_run() -> None:
    # given a broker of its own, and a bench pushing more than it pushes in a few seconds
    with EmbeddedBroker() as broker:
        address = broker.bootstrap_servers
        bench = subprocess.Popen(
            [sys.executable, "-m", "zeroqueue", "bench", "-n", "5000000", "--timeout", "2",
             "--brokers", address],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )  # fmt: skip
        # when the broker stops once the bench made its topic (so while it pushes)
        deadline = time.monotonic() + 30
        while not any(
            name.startswith("zeroqueue-bench-") for name in topic_partitions([address], {}, 5.0)
        ):
            assert bench.poll() is None, bench.communicate()
            assert time.monotonic() < deadline, "bench made no topic in 30s"
        stopped = time.monotonic()
    # then the bench says so in one line and exits 1, instead of waiting on it for ever
    try:
        out, err = bench.communicate(timeout=COMMAND_TIMEOUT)
    finally:
        bench.kill()
    assert time.monotonic() - stopped < 45
    assert bench.returncode == 1, (out, err)
    assert err.startswith("Error: "), err
    assert len(err.splitlines()) == 1, err
