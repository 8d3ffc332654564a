"""pytest fixtures for tests of handlers: an in-memory broker, the embedded one, Apache Kafka.

Enable them in your ``conftest.py``::

    pytest_plugins = ["zeroqueue.testing.pytest_plugin"]

* ``memory_broker``: a fresh :class:`~zeroqueue.testing.MemoryBroker` per test
  (``memory_broker.brokers`` is the ``Brokers`` value); milliseconds to start.
* ``embedded_broker``: one :class:`~zeroqueue.embedded.EmbeddedBroker` (Tansu) for
  the session; skipped when the ``embedded`` extra is not installed.
* ``kafka_broker``: one :class:`~zeroqueue.embedded.KafkaBroker` (Apache Kafka)
  for the session; skipped when Java 17 or Kafka's jars are missing.

The two real ones are shared by every test of the session: give each test a
topic and group of its own.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from zeroqueue.embedded import EmbeddedBroker, KafkaBroker
from zeroqueue.errors import EmbeddedBrokerError
from zeroqueue.testing._broker import MemoryBroker

__all__ = ["embedded_broker", "kafka_broker", "memory_broker"]


@pytest.fixture
def memory_broker() -> Iterator[MemoryBroker]:
    """A fresh in-memory broker, forgotten after the test."""
    with MemoryBroker() as broker:
        yield broker


@pytest.fixture(scope="session")
def embedded_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedBroker]:
    """The embedded broker (Tansu), started once for the session."""
    log = tmp_path_factory.mktemp("zeroqueue-embedded") / "tansu.log"
    try:
        broker = EmbeddedBroker(log_path=log)
        broker.start()
    except EmbeddedBrokerError as exc:
        pytest.skip(f"the embedded broker cannot start: {exc}")
    try:
        yield broker
    finally:
        broker.stop()


@pytest.fixture(scope="session")
def kafka_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KafkaBroker]:
    """Apache Kafka (single node, KRaft), started once for the session."""
    log = tmp_path_factory.mktemp("zeroqueue-kafka") / "kafka.log"
    try:
        broker = KafkaBroker(log_path=log)
        broker.start()
    except EmbeddedBrokerError as exc:
        pytest.skip(f"Apache Kafka cannot start here (Java 17 and Kafka's jars): {exc}")
    try:
        yield broker
    finally:
        broker.stop()
