"""The targets a handler test runs on: the test kit, and the broker(s) --broker picks."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import pytest

from tests.kafka_helpers import SHORT_SESSION_TIMEOUT, unique_name
from zeroqueue import KqConf, Message, Queue, admin
from zeroqueue.embedded import BrokerProcess
from zeroqueue.testing import MemoryBroker

# The fixtures of the plugin, as a user's conftest gets them with
# pytest_plugins = ["zeroqueue.testing.pytest_plugin"] (only a rootdir conftest may say that).
from zeroqueue.testing.pytest_plugin import (  # noqa: F401
    embedded_broker,
    kafka_broker,
    memory_broker,
)


@dataclass
class Target:
    """Where a test runs: ``kit`` (a MemoryBroker) or ``broker`` (Tansu or Kafka)."""

    kind: str
    brokers: list[str]
    new_topic: Callable[[int], str]
    memory: MemoryBroker | None = None
    # Queue options that keep a real broker's group joins short.
    queue_options: dict[str, object] = field(default_factory=dict)

    def queue(self, conf: KqConf, handler: object, **options: object) -> Queue:
        return Queue(conf, handler, handle_signals=False, **(self.queue_options | options))  # type: ignore[arg-type]

    def committed(self, group: str, topic: str) -> dict[int, int | None]:
        # admin reads the kit too: the same call on both.
        return admin.committed_offsets(self.brokers, group, topic)


@pytest.fixture(params=["kit", "broker"])
def target(request: pytest.FixtureRequest, broker_kind: str) -> Iterator[Target]:
    """The test kit, then the broker under test (``broker_kind``: tansu or kafka)."""
    if request.param == "kit":
        with MemoryBroker() as memory:

            def make(partitions: int = 1) -> str:
                name = unique_name(request, "t")
                memory.create_topic(name, partitions)
                return name

            yield Target("kit", memory.brokers, make, memory)
        return
    kafka: BrokerProcess = request.getfixturevalue("kafka")

    def create(partitions: int = 1) -> str:
        name = unique_name(request, "t")
        kafka.create_topic(name, partitions)
        return name

    yield Target(
        "broker",
        [kafka.bootstrap_servers],
        create,
        queue_options={"session_timeout": SHORT_SESSION_TIMEOUT, "max_wait": 0.1},
    )


class Seen:
    """What a handler saw, and a way to wait for a count of it without sleeping."""

    def __init__(self) -> None:
        self.messages: list[Message] = []
        self._changed = threading.Condition()

    def add(self, message: Message) -> None:
        with self._changed:
            self.messages.append(message)
            self._changed.notify_all()

    def wait_for(self, count: int, timeout: float = 30.0) -> bool:
        deadline = time.monotonic() + timeout
        with self._changed:
            while len(self.messages) < count:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._changed.wait(left)
            return True


@pytest.fixture
def seen() -> Seen:
    return Seen()


@pytest.fixture
def group(request: pytest.FixtureRequest) -> str:
    return unique_name(request, "g")
