"""Shared fixtures: one embedded Kafka broker per session, fresh topics per test,
and real redis-server / beanstalkd processes on free ports for tests that need them."""

from __future__ import annotations

import itertools
import os
import re
import shutil
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.kafka_helpers import SHORT_SESSION_TIMEOUT
from zeroqueue._process import ManagedProcess, free_port, wait_for_port
from zeroqueue.embedded import EmbeddedBroker

# CI sets this so a missing server binary fails the run instead of skipping tests.
REQUIRE_SERVERS = os.environ.get("ZEROQUEUE_REQUIRE_SERVERS") == "1"

_counter = itertools.count()

__all__ = ["SHORT_SESSION_TIMEOUT"]


@pytest.fixture(scope="session")
def kafka(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedBroker]:
    """The embedded Tansu broker, started once for the whole test session."""
    log = tmp_path_factory.mktemp("tansu") / "tansu.log"
    with EmbeddedBroker(log_path=log) as broker:
        yield broker


@pytest.fixture
def brokers(kafka: EmbeddedBroker) -> list[str]:
    """``Brokers`` for the session broker."""
    return [kafka.bootstrap_servers]


def _unique(request: pytest.FixtureRequest, kind: str) -> str:
    slug = re.sub(r"[^a-zA-Z0-9]+", "-", request.node.name).strip("-")[:40]
    return f"{kind}-{slug}-{next(_counter)}-{uuid.uuid4().hex[:6]}"


@pytest.fixture
def new_topic(kafka: EmbeddedBroker, request: pytest.FixtureRequest) -> Callable[[int], str]:
    """Create a topic no other test uses: ``new_topic(partitions)`` returns its name."""

    def make(partitions: int = 1) -> str:
        name = _unique(request, "t")
        kafka.create_topic(name, partitions)
        return name

    return make


@pytest.fixture
def group(request: pytest.FixtureRequest) -> str:
    """A consumer group id no other test uses."""
    return _unique(request, "g")


def _server(name: str, package: str, args: Callable[[int], list[str]], tmp: Path) -> Iterator[int]:
    binary = shutil.which(name)
    if binary is None:
        message = f"{name} is not installed (apt-get install -y {package})"
        if REQUIRE_SERVERS:
            pytest.fail(message)
        pytest.skip(message)
    port = free_port()
    process = ManagedProcess([binary, *args(port)], tmp / f"{name}.log")
    process.start()
    try:
        if not wait_for_port("127.0.0.1", port, 15.0, alive=process.is_running):
            pytest.fail(f"{name} did not start on port {port}:\n{process.log_tail()}")
        yield port
    finally:
        process.stop()


@pytest.fixture
def redis_port(tmp_path: Path) -> Iterator[int]:
    """A real redis-server on a free port of 127.0.0.1, keeping nothing on disk."""
    yield from _server(
        "redis-server",
        "redis-server",
        lambda port: [
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            str(tmp_path),
        ],
        tmp_path,
    )


@pytest.fixture
def beanstalkd_port(tmp_path: Path) -> Iterator[int]:
    """A real beanstalkd on a free port of 127.0.0.1."""
    yield from _server(
        "beanstalkd", "beanstalkd", lambda port: ["-l", "127.0.0.1", "-p", str(port)], tmp_path
    )
