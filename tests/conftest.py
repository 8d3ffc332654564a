"""Shared fixtures: the broker under test (Tansu, Apache Kafka or both), fresh topics
per test, real redis-server / beanstalkd processes on free ports for tests that need
them, and TLS / SASL clusters for the security tests.

Which brokers the broker-facing tests run on is one switch: ``--broker`` (or the
``ZEROQUEUE_TEST_BROKER`` environment variable) set to ``tansu`` (the default: quick,
no Java), ``kafka`` or ``both``. A test parametrised by ``broker_kind`` (every test
that uses the ``kafka`` fixture) runs once per broker picked, with ``[tansu]`` or
``[kafka]`` in its id. ``@pytest.mark.kafka_only`` marks behaviour Tansu cannot
show; ``@pytest.mark.tansu_only`` marks tests of the embedded broker itself.
"""

from __future__ import annotations

import os
import shutil
import signal
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import trustme
from _pytest.mark.structures import ParameterSet
from confluent_kafka import Message as KafkaMessage
from cryptography.hazmat.primitives import serialization

from tests.kafka_helpers import (
    SHORT_SESSION_TIMEOUT,
    SecureKafka,
    TlsKafka,
    kafka_libs,
    unique_name,
)
from tests.tracing_helpers import spans  # noqa: F401 - a fixture, found by name
from zeroqueue import admin
from zeroqueue._process import ManagedProcess, free_port, wait_for_port
from zeroqueue.embedded import BrokerProcess, EmbeddedBroker, KafkaBroker
from zeroqueue.embedded._binary import find_tansu_binary

# CI sets this so a missing server binary fails the run instead of skipping tests.
REQUIRE_SERVERS = os.environ.get("ZEROQUEUE_REQUIRE_SERVERS") == "1"
BROKER_KINDS = ("tansu", "kafka")
# SASL users of the secure Kafka broker.
SASL_USERS = {"alice": "alice-Secr3t-5f2a", "bob": "bob-Secr3t-9c1d"}

__all__ = ["SHORT_SESSION_TIMEOUT"]


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--broker",
        default=os.environ.get("ZEROQUEUE_TEST_BROKER", "tansu"),
        choices=("tansu", "kafka", "both"),
        help="the broker(s) broker-facing tests run on: tansu (default, embedded), "
        "kafka (Apache Kafka, needs Java 17) or both; env ZEROQUEUE_TEST_BROKER",
    )


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "kafka_only: behaviour only Apache Kafka shows")
    config.addinivalue_line("markers", "tansu_only: a test of the embedded Tansu broker")
    config.addinivalue_line(
        "markers", "builds_records: builds confluent_kafka.Message objects (confluent-kafka 2.13+)"
    )
    if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
        # Started in the background of a script (nohup, `cmd &`): SIGINT is ignored and
        # every child would inherit that, so the tests that press Ctrl-C on a child
        # would test nothing. A handler, unlike SIG_IGN, is reset to the default on exec.
        signal.signal(signal.SIGINT, signal.default_int_handler)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    try:
        KafkaMessage(topic="t")
    except TypeError:
        # confluent-kafka before 2.13 (the oldest we accept is tested in CI) cannot build
        # a Message: only tests that fake a record need that, never zeroqueue itself.
        skip = pytest.mark.skip(reason="confluent-kafka < 2.13 cannot build a Message")
        for item in items:
            if item.get_closest_marker("builds_records"):
                item.add_marker(skip)


def _selected(config: pytest.Config) -> tuple[str, ...]:
    choice = str(config.getoption("--broker"))
    return BROKER_KINDS if choice == "both" else (choice,)


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "broker_kind" not in metafunc.fixturenames:
        return
    selected = _selected(metafunc.config)
    wanted: tuple[str, ...] = BROKER_KINDS
    if metafunc.definition.get_closest_marker("kafka_only"):
        wanted = ("kafka",)
    elif metafunc.definition.get_closest_marker("tansu_only"):
        wanted = ("tansu",)
    params: list[str | ParameterSet] = [kind for kind in wanted if kind in selected]
    if not params:
        # Not dropped silently: the run says what it did not cover and why.
        params = [
            pytest.param(
                kind,
                marks=pytest.mark.skip(reason=f"runs on {kind} only (--broker {kind} or both)"),
            )
            for kind in wanted
        ]
    metafunc.parametrize("broker_kind", params, indirect=True, scope="session")


@pytest.fixture(scope="session")
def broker_kind(request: pytest.FixtureRequest) -> str:
    """``tansu`` or ``kafka``: the broker this test runs on."""
    return str(request.param)


@pytest.fixture(scope="session")
def kafka(broker_kind: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[BrokerProcess]:
    """The broker under test, started once per kind for the whole test session."""
    log = tmp_path_factory.mktemp(broker_kind) / f"{broker_kind}.log"
    broker: BrokerProcess = (
        EmbeddedBroker(log_path=log)
        if broker_kind == "tansu"
        else KafkaBroker(log_path=log, libs=kafka_libs())
    )
    with broker:
        yield broker


@pytest.fixture
def brokers(kafka: BrokerProcess) -> list[str]:
    """``Brokers`` for the session broker."""
    return [kafka.bootstrap_servers]


@pytest.fixture
def new_topic(kafka: BrokerProcess, request: pytest.FixtureRequest) -> Callable[[int], str]:
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


@dataclass(frozen=True)
class Certificates:
    """A throwaway CA, a server certificate for 127.0.0.1 it signed, and an unrelated CA."""

    ca_file: str
    wrong_ca_file: str
    certificate: str
    key: str


@pytest.fixture(scope="session")
def certificates(tmp_path_factory: pytest.TempPathFactory) -> Certificates:
    """Certificates made for this test session (trustme), written to PEM files."""
    tmp = tmp_path_factory.mktemp("certificates")
    ca, wrong_ca = trustme.CA(), trustme.CA()
    server = ca.issue_cert("127.0.0.1")
    ca.cert_pem.write_to_path(str(tmp / "ca.pem"))
    wrong_ca.cert_pem.write_to_path(str(tmp / "wrong-ca.pem"))
    # Kafka reads PKCS#8 keys only; trustme writes the traditional format.
    key = serialization.load_pem_private_key(server.private_key_pem.bytes(), password=None)
    (tmp / "server.key").write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    for index, blob in enumerate(server.cert_chain_pems):
        blob.write_to_path(str(tmp / "server.pem"), append=index > 0)
    return Certificates(
        ca_file=str(tmp / "ca.pem"),
        wrong_ca_file=str(tmp / "wrong-ca.pem"),
        certificate=str(tmp / "server.pem"),
        key=str(tmp / "server.key"),
    )


@pytest.fixture(scope="session")
def secure_kafka(
    certificates: Certificates, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[SecureKafka]:
    """Apache Kafka with SASL users (PLAIN, SCRAM-SHA-256/512) and TLS listeners."""
    log = tmp_path_factory.mktemp("secure-kafka") / "kafka.log"
    with KafkaBroker(
        log_path=log,
        libs=kafka_libs(),
        users=SASL_USERS,
        tls_certificate=certificates.certificate,
        tls_key=certificates.key,
    ) as broker:
        yield SecureKafka(
            broker=broker,
            users=dict(SASL_USERS),
            ca_file=certificates.ca_file,
            wrong_ca_file=certificates.wrong_ca_file,
        )


@pytest.fixture(scope="session")
def tls_kafka(
    broker_kind: str, certificates: Certificates, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[TlsKafka]:
    """A Kafka cluster reachable only over TLS, on the broker under test.

    On Kafka: the SSL listener of a broker that also has SASL listeners. On Tansu,
    which has no TLS: stunnel in front of a plaintext Tansu that advertises stunnel's
    TLS port, so the metadata sends clients back through TLS. The server certificate
    is issued for 127.0.0.1 by a throwaway CA; a second, unrelated CA is one clients
    must refuse.
    """
    if broker_kind == "kafka":
        with KafkaBroker(
            log_path=tmp_path_factory.mktemp("tls-kafka") / "kafka.log",
            libs=kafka_libs(),
            tls_certificate=certificates.certificate,
            tls_key=certificates.key,
        ) as broker:
            cluster = TlsKafka(
                bootstrap=broker.listener("SSL"),
                ca_file=certificates.ca_file,
                wrong_ca_file=certificates.wrong_ca_file,
            )
            yield cluster
        return
    stunnel = _require("stunnel", "stunnel4")
    tmp = tmp_path_factory.mktemp("tls-tansu")
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
            f"cert = {certificates.certificate}\n"
            f"key = {certificates.key}\n"
        )
        proxy = _start(
            "stunnel", [stunnel, str(tmp / "stunnel.conf")], tls_port, tmp / "stunnel.log"
        )
        try:
            cluster = TlsKafka(
                bootstrap=f"127.0.0.1:{tls_port}",
                ca_file=certificates.ca_file,
                wrong_ca_file=certificates.wrong_ca_file,
            )
            admin.wait_for_metadata([cluster.bootstrap], timeout=15.0, kafka_config=cluster.ssl)
            yield cluster
        finally:
            proxy.stop()
    finally:
        tansu.stop()
