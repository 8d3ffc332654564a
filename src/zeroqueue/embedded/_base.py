"""What every broker zeroqueue runs as a child process shares.

A broker listens on free ports of a loopback address, writes its output to a
log file, answers Kafka metadata requests before :meth:`start` returns, and
stops (it and nothing else) on :meth:`stop` or when the ``with`` block ends.
The subclasses say how to launch their binary.
"""

from __future__ import annotations

import logging
import tempfile
import time
from pathlib import Path
from types import TracebackType
from typing import Any, TypeVar

from zeroqueue import admin
from zeroqueue._process import ManagedProcess, free_port, port_is_open, wait_for_port
from zeroqueue.errors import BrokerUnavailableError, EmbeddedBrokerError

__all__ = ["BrokerProcess"]

_log = logging.getLogger("zeroqueue.embedded")

# Attempts at fresh free ports when another process grabs one between the probe
# and the broker's bind.
_PORT_ATTEMPTS = 3

_Self = TypeVar("_Self", bound="BrokerProcess")


class BrokerProcess:
    """A Kafka-compatible broker run as a child process on ``host``.

    Subclasses implement :meth:`_command` (and may override :meth:`_prepare`
    and :meth:`_cleanup`); the start, readiness, log and stop logic is here.
    """

    #: How error messages name this kind of broker.
    kind = "broker"
    #: How its temporary log file is named.
    log_prefix = "broker"

    def __init__(
        self,
        *,
        port: int,
        host: str,
        log_path: str | Path | None,
        startup_timeout: float,
    ) -> None:
        self.host = host
        self._requested_port = port
        self._port: int | None = None
        self._own_log = log_path is None
        self._log_path = Path(log_path) if log_path is not None else None
        self.startup_timeout = startup_timeout
        self._process: ManagedProcess | None = None

    # -- what subclasses provide -----------------------------------------------------

    def _prepare(self) -> None:
        """Find the binary and anything else it needs; raise EmbeddedBrokerError if missing."""

    def _command(self, port: int) -> tuple[list[str], dict[str, str] | None]:
        """The command line (and environment) that runs the broker with clients on ``port``."""
        raise NotImplementedError

    def _cleanup(self) -> None:
        """Remove what :meth:`_prepare` or :meth:`_command` made, after a stop."""

    def _client_config(self) -> dict[str, Any]:
        """Settings a librdkafka client needs for :attr:`bootstrap_servers` (plaintext: none)."""
        return {}

    # -- the shared part -----------------------------------------------------------

    @property
    def port(self) -> int:
        """The TCP port clients connect to (raises before :meth:`start`)."""
        if self._port is None:
            raise EmbeddedBrokerError(f"the {self.kind} has not been started")
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

    def start(self: _Self) -> _Self:
        """Start the broker and wait until it answers Kafka metadata requests.

        Raises:
            EmbeddedBrokerError: what it needs is missing, the port is taken, or the
                broker did not become ready within ``startup_timeout``.

        """
        if self.is_running():
            return self
        try:
            return self._start()
        except BaseException:
            # Its work directory goes; its log stays, for the error names it.
            self._cleanup()
            raise

    def _start(self: _Self) -> _Self:
        self._prepare()
        if self._log_path is None:
            with tempfile.NamedTemporaryFile(
                prefix=f"zeroqueue-{self.log_prefix}-", suffix=".log", delete=False
            ) as log_file:
                self._log_path = Path(log_file.name)
        # A restarted broker keeps its port, so clients find it where it was.
        fixed = self._requested_port or self._port
        attempts = 1 if fixed else _PORT_ATTEMPTS
        last_error = ""
        for _ in range(attempts):
            port = fixed or free_port(self.host)
            if fixed and port_is_open(self.host, port):
                raise EmbeddedBrokerError(
                    f"port {port} on {self.host} is already in use; "
                    "choose another port, or port 0 for a free one"
                )
            last_error, exited = self._launch(port)
            if not last_error:
                self._port = port
                _log.info("%s ready on %s:%d (pid %s)", self.kind, self.host, port, self.pid)
                return self
            if not exited:
                break  # it ran but never answered: another port would not help
        raise EmbeddedBrokerError(last_error)

    def _launch(self, port: int) -> tuple[str, bool]:
        """Start the broker on ``port``; return why it failed ('' if ready) and if it exited.

        A broker that exited may have lost its port to another process meanwhile:
        the caller then tries another.
        """
        assert self._log_path is not None
        argv, env = self._command(port)
        process = ManagedProcess(argv, self._log_path, env=env)
        process.start()
        self._process = process
        deadline = time.monotonic() + self.startup_timeout
        if wait_for_port(self.host, port, self.startup_timeout, alive=process.is_running):
            try:
                admin.wait_for_metadata(
                    [f"{self.host}:{port}"],
                    timeout=max(deadline - time.monotonic(), 1.0),
                    kafka_config=self._client_config(),
                )
                return "", False
            except BrokerUnavailableError as exc:
                reason = str(exc)
        elif process.is_running():
            reason = f"it did not listen on {self.host}:{port} within {self.startup_timeout}s"
        else:
            reason = f"it exited with status {process.returncode}"
        exited = not process.is_running()
        process.stop()
        self._process = None
        return (
            f"{self.kind} ({argv[0]}) failed to start on {self.host}:{port}: {reason}. "
            f"Its log ({self._log_path}) ends with:\n{process.log_tail()}"
        ), exited

    def stop(self, timeout: float = 10.0) -> None:
        """Stop the broker process (only it) and reap it; a no-op when not running."""
        process, self._process = self._process, None
        if process is None:
            return
        process.stop(timeout)
        self._cleanup()
        if self._own_log and self._log_path is not None:
            self._log_path.unlink(missing_ok=True)
            self._log_path = None

    def wait(self) -> int:
        """Block until the broker process exits; return its exit status."""
        if self._process is None:
            raise EmbeddedBrokerError(f"the {self.kind} has not been started")
        return self._process.wait()

    def log_tail(self, lines: int = 20) -> str:
        """The last ``lines`` lines the broker wrote to its log."""
        return self._process.log_tail(lines) if self._process is not None else ""

    def create_topic(
        self, name: str, partitions: int = 1, *, config: dict[str, str] | None = None
    ) -> None:
        """Create topic ``name`` with ``partitions`` partitions, if it does not exist."""
        admin.create_topic(
            [self.bootstrap_servers],
            name,
            partitions=partitions,
            config=config,
            kafka_config=self._client_config(),
        )

    def __enter__(self: _Self) -> _Self:
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
        return f"<{type(self).__name__} {where}>"
