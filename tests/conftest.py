"""Shared fixtures: one embedded Kafka broker per session, fresh topics per test,
real redis-server / beanstalkd processes on free ports for tests that need them,
and a TLS-only Kafka cluster (stunnel in front of Tansu) for the TLS tests."""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import trustme

from tests.kafka_helpers import SHORT_SESSION_TIMEOUT, TlsKafka, unique_name
from zeroqueue import admin
from zeroqueue._process import ManagedProcess, free_port, wait_for_port
from zeroqueue.embedded import EmbeddedBroker
from zeroqueue.embedded._binary import find_tansu_binary

# CI sets this so a missing server binary fails the run instead of skipping tests.
REQUIRE_SERVERS = os.environ.get("ZEROQUEUE_REQUIRE_SERVERS") == "1"

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


@pytest.fixture
def new_topic(kafka: EmbeddedBroker, request: pytest.FixtureRequest) -> Callable[[int], str]:
    """Create a topic no other test uses: ``new_topic(partitions)`` returns its name."""

    def make(partitions: int = 1) -> str:
        name = unique_name(request, "t")
        kafka.create_topic(name, partitions)
        return name

    return make


@pytest.fixture
def group(request: pytest.FixtureRequest) -> str:
    """A consumer group id no other test uses."""
    return unique_name(request, "g")


def _require(name: str, package: str) -> str:
    """The path of server binary ``name``; skip (or fail under CI) when it is missing."""
    binary = shutil.which(name)
    if binary is None:
        message = f"{name} is not installed (apt-get install -y {package})"
        if REQUIRE_SERVERS:
            pytest.fail(message)
        pytest.skip(message)
    return binary


def _start(name: str, argv: list[str], port: int, log: Path) -> ManagedProcess:
    """Start ``argv`` and wait until it listens on ``port``; fail the test if it does not."""
    process = ManagedProcess(argv, log)
    process.start()
    if not wait_for_port("127.0.0.1", port, 15.0, alive=process.is_running):
        process.stop()
        pytest.fail(f"{name} did not start on port {port}:\n{process.log_tail()}")
    return process


def _server(name: str, package: str, args: Callable[[int], list[str]], tmp: Path) -> Iterator[int]:
    binary = _require(name, package)
    port = free_port()
    process = _start(name, [binary, *args(port)], port, tmp / f"{name}.log")
    try:
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


@pytest.fixture(scope="session")
def tls_kafka(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TlsKafka]:
    """A Kafka cluster reachable only over TLS: stunnel in front of a plaintext Tansu.

    Tansu listens in plaintext on one port and advertises stunnel's TLS port, so the
    metadata sends clients back through TLS. The server certificate is issued for
    127.0.0.1 by a throwaway CA; a second, unrelated CA is one clients must refuse.
    """
    stunnel = _require("stunnel", "stunnel4")
    tmp = tmp_path_factory.mktemp("tls-kafka")
    ca, wrong_ca = trustme.CA(), trustme.CA()
    server = ca.issue_cert("127.0.0.1")
    ca.cert_pem.write_to_path(str(tmp / "ca.pem"))
    wrong_ca.cert_pem.write_to_path(str(tmp / "wrong-ca.pem"))
    server.private_key_pem.write_to_path(str(tmp / "server.key"))
    for index, blob in enumerate(server.cert_chain_pems):
        blob.write_to_path(str(tmp / "server.pem"), append=index > 0)

    plain_port, tls_port = free_port(), free_port()
    tansu = _start(
        "tansu",
        [
            find_tansu_binary(),
            "broker",
            "--listener-url",
            f"tcp://127.0.0.1:{plain_port}",
            "--advertised-listener-url",
            f"tcp://127.0.0.1:{tls_port}",
            "--storage-engine",
            "memory://tansu/",
        ],
        plain_port,
        tmp / "tansu.log",
    )
    try:
        (tmp / "stunnel.conf").write_text(
            "foreground = yes\n"
            "pid =\n"
            "[kafka]\n"
            f"accept = 127.0.0.1:{tls_port}\n"
            f"connect = 127.0.0.1:{plain_port}\n"
            f"cert = {tmp / 'server.pem'}\n"
            f"key = {tmp / 'server.key'}\n"
        )
        proxy = _start(
            "stunnel", [stunnel, str(tmp / "stunnel.conf")], tls_port, tmp / "stunnel.log"
        )
        try:
            cluster = TlsKafka(
                bootstrap=f"127.0.0.1:{tls_port}",
                ca_file=str(tmp / "ca.pem"),
                wrong_ca_file=str(tmp / "wrong-ca.pem"),
            )
            admin.wait_for_metadata([cluster.bootstrap], timeout=15.0, kafka_config=cluster.ssl)
            yield cluster
        finally:
            proxy.stop()
    finally:
        tansu.stop()
