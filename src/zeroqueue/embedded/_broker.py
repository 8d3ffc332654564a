"""EmbeddedBroker: a Kafka-compatible Tansu broker on a free port of 127.0.0.1."""

from __future__ import annotations

import logging
import tempfile
import time
from pathlib import Path
from types import TracebackType

from zeroqueue import admin
from zeroqueue._process import ManagedProcess, free_port, port_is_open, wait_for_port
from zeroqueue.embedded._binary import find_tansu_binary
from zeroqueue.errors import BrokerUnavailableError, EmbeddedBrokerError

__all__ = ["EmbeddedBroker"]

_log = logging.getLogger("zeroqueue.embedded")

# Attempts at a fresh free port when another process grabs ours between the probe
# and Tansu's bind.
_PORT_ATTEMPTS = 3


class EmbeddedBroker:
    """A Kafka-compatible broker (Tansu, memory storage) for development and tests.

    It keeps every message in memory and loses them when it stops: use it on a
    laptop, in a demo or in tests, and point ``Brokers`` at a real Kafka cluster
    in production.

    Use it as a context manager::

        with EmbeddedBroker() as broker:
            pusher = Pusher([broker.bootstrap_servers], "orders")

    or call :meth:`start` and :meth:`stop` yourself for a long-running broker.

    Args:
        port: TCP port to listen on; ``0`` (the default) picks a free one.
        host: Address to listen on and advertise.
        log_path: Where the broker's output goes; a temporary file by default,
            removed after a clean stop.
        startup_timeout: Seconds to wait for the broker to answer metadata requests.

    """

    def __init__(
        self,
        *,
        port: int = 0,
        host: str = "127.0.0.1",
        log_path: str | Path | None = None,
        startup_timeout: float = 30.0,
    ) -> None:
        self.host = host
        self._requested_port = port
        self._port: int | None = None
        self._own_log = log_path is None
        self._log_path = Path(log_path) if log_path is not None else None
        self.startup_timeout = startup_timeout
        self._process: ManagedProcess | None = None

    @property
    def port(self) -> int:
        """The TCP port the broker listens on (raises before :meth:`start`)."""
        if self._port is None:
            raise EmbeddedBrokerError("the embedded broker has not been started")
        return self._port

    @property
    def bootstrap_servers(self) -> str:
        """``host:port`` to put in ``Brokers`` / ``bootstrap.servers``."""
        return f"{self.host}:{self.port}"

    @property
    def log_path(self) -> Path | None:
        """The file that receives the broker's output."""
        return self._log_path

    @property
    def pid(self) -> int | None:
        """The broker's process id while it runs."""
        return self._process.pid if self._process is not None else None

    def is_running(self) -> bool:
        """Return whether the broker process is alive."""
        return self._process is not None and self._process.is_running()

    def start(self) -> EmbeddedBroker:
        """Start the broker and wait until it answers Kafka metadata requests.

        Raises:
            EmbeddedBrokerError: the binary is missing, the port is taken, or the
                broker did not become ready within ``startup_timeout``.

        """
        if self.is_running():
            return self
        binary = find_tansu_binary()
        if self._log_path is None:
            with tempfile.NamedTemporaryFile(
                prefix="zeroqueue-tansu-", suffix=".log", delete=False
            ) as log_file:
                self._log_path = Path(log_file.name)

        attempts = 1 if self._requested_port else _PORT_ATTEMPTS
        last_error = ""
        for _ in range(attempts):
            port = self._requested_port or free_port(self.host)
            if self._requested_port and port_is_open(self.host, port):
                raise EmbeddedBrokerError(
                    f"port {port} on {self.host} is already in use; "
                    "choose another port, or port 0 for a free one"
                )
            last_error = self._launch(binary, port)
            if not last_error:
                self._port = port
                _log.info("embedded broker ready on %s:%d (pid %s)", self.host, port, self.pid)
                return self
        raise EmbeddedBrokerError(last_error)

    def _launch(self, binary: str, port: int) -> str:
        """Start Tansu on ``port``; return '' when ready, else why it failed."""
        assert self._log_path is not None
        url = f"tcp://{self.host}:{port}"
        process = ManagedProcess(
            [
                binary,
                "broker",
                "--listener-url",
                url,
                "--advertised-listener-url",
                url,
                "--storage-engine",
                "memory://tansu/",
            ],
            self._log_path,
        )
        process.start()
        self._process = process
        deadline = time.monotonic() + self.startup_timeout
        if wait_for_port(self.host, port, self.startup_timeout, alive=process.is_running):
            try:
                admin.wait_for_metadata(
                    [f"{self.host}:{port}"], timeout=max(deadline - time.monotonic(), 1.0)
                )
                return ""
            except BrokerUnavailableError as exc:
                reason = str(exc)
        elif process.is_running():
            reason = f"it did not listen on {self.host}:{port} within {self.startup_timeout}s"
        else:
            reason = f"it exited with status {process.returncode}"
        process.stop()
        self._process = None
        return (
            f"embedded broker ({binary}) failed to start on {self.host}:{port}: {reason}. "
            f"Its log ({self._log_path}) ends with:\n{process.log_tail()}"
        )

    def stop(self, timeout: float = 10.0) -> None:
        """Stop the broker process (only it) and reap it; a no-op when not running."""
        process, self._process = self._process, None
        if process is None:
            return
        process.stop(timeout)
        if self._own_log and self._log_path is not None:
            self._log_path.unlink(missing_ok=True)
            self._log_path = None

    def wait(self) -> int:
        """Block until the broker process exits; return its exit status."""
        if self._process is None:
            raise EmbeddedBrokerError("the embedded broker has not been started")
        return self._process.wait()

    def log_tail(self, lines: int = 20) -> str:
        """The last ``lines`` lines the broker wrote to its log."""
        return self._process.log_tail(lines) if self._process is not None else ""

    def create_topic(self, name: str, partitions: int = 1) -> None:
        """Create topic ``name`` with ``partitions`` partitions, if it does not exist."""
        admin.create_topic([self.bootstrap_servers], name, partitions=partitions)

    def __enter__(self) -> EmbeddedBroker:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def __repr__(self) -> str:
        where = f"{self.host}:{self._port}" if self._port else "not started"
        return f"<EmbeddedBroker {where}>"
