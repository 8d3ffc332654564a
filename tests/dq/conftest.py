"""Real beanstalkd nodes (that a test can kill and restart) and a DqConf naming them."""

from __future__ import annotations

import shutil
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.conftest import REQUIRE_SERVERS
from zeroqueue._process import ManagedProcess, free_port, wait_for_port
from zeroqueue.dq import Beanstalk, DqConf, RedisConf


class BeanstalkdNode:
    """One beanstalkd on a free port, its jobs in a binlog so a restart keeps them."""

    def __init__(self, binary: str, directory: Path) -> None:
        self.port = free_port()
        self.endpoint = f"127.0.0.1:{self.port}"
        self._binlog = directory / f"binlog-{self.port}"
        self._binlog.mkdir()
        self._argv = [binary, "-l", "127.0.0.1", "-p", str(self.port), "-b", str(self._binlog)]
        self._log = directory / f"beanstalkd-{self.port}.log"
        self._process: ManagedProcess | None = None

    def start(self) -> None:
        """Start it (again) and wait until it listens."""
        self._process = ManagedProcess(self._argv, self._log)
        self._process.start()
        if not wait_for_port("127.0.0.1", self.port, 15.0, alive=self._process.is_running):
            self._process.stop()
            pytest.fail(f"beanstalkd did not start on {self.port}:\n{self._process.log_tail()}")

    def kill(self) -> None:
        """SIGKILL it: what it held stays in the binlog."""
        assert self._process is not None
        self._process.kill()

    def stop(self) -> None:
        """Stop it if it runs."""
        if self._process is not None:
            self._process.stop()


@pytest.fixture
def beanstalkd_nodes(tmp_path: Path) -> Iterator[Callable[[int], list[BeanstalkdNode]]]:
    """Start ``n`` beanstalkd nodes; all are stopped after the test."""
    binary = shutil.which("beanstalkd")
    if binary is None:
        message = "beanstalkd is not installed (apt-get install -y beanstalkd)"
        if REQUIRE_SERVERS:
            pytest.fail(message)
        pytest.skip(message)
    started: list[BeanstalkdNode] = []

    def start(count: int) -> list[BeanstalkdNode]:
        nodes = [BeanstalkdNode(binary, tmp_path) for _ in range(count)]
        for node in nodes:
            node.start()
        started.extend(nodes)
        return nodes

    yield start
    for node in started:
        node.stop()


@pytest.fixture
def dq_conf(
    beanstalkd_nodes: Callable[[int], list[BeanstalkdNode]], redis_port: int
) -> Callable[[int], tuple[DqConf, list[BeanstalkdNode]]]:
    """A DqConf over ``n`` fresh nodes (one tube) and the test's Redis."""

    def make(count: int = 2) -> tuple[DqConf, list[BeanstalkdNode]]:
        nodes = beanstalkd_nodes(count)
        conf = DqConf(
            beanstalks=[Beanstalk(endpoint=node.endpoint, tube="jobs") for node in nodes],
            redis=RedisConf(host=f"127.0.0.1:{redis_port}"),
        )
        return conf, nodes

    return make


class RedisNode:
    """A redis-server on a free port, keeping nothing on disk, that a test can restart."""

    def __init__(self, binary: str, directory: Path) -> None:
        self.port = free_port()
        self._argv = [
            binary,
            "--port",
            str(self.port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            str(directory),
        ]
        self._log = directory / f"redis-{self.port}.log"
        self._process: ManagedProcess | None = None

    def start(self) -> None:
        """Start it (again, empty) and wait until it listens."""
        self._process = ManagedProcess(self._argv, self._log)
        self._process.start()
        if not wait_for_port("127.0.0.1", self.port, 15.0, alive=self._process.is_running):
            self._process.stop()
            pytest.fail(f"redis-server did not start on {self.port}:\n{self._process.log_tail()}")

    def kill(self) -> None:
        """SIGKILL it: everything it held is gone."""
        assert self._process is not None
        self._process.kill()

    def stop(self) -> None:
        """Stop it if it runs."""
        if self._process is not None:
            self._process.stop()


@pytest.fixture
def redis_node(tmp_path: Path) -> Iterator[RedisNode]:
    """A redis-server the test can kill and start again on the same port."""
    binary = shutil.which("redis-server")
    if binary is None:
        message = "redis-server is not installed (apt-get install -y redis-server)"
        if REQUIRE_SERVERS:
            pytest.fail(message)
        pytest.skip(message)
    node = RedisNode(binary, tmp_path)
    node.start()
    yield node
    node.stop()
