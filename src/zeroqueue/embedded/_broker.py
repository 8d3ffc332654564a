"""EmbeddedBroker: a Kafka-compatible Tansu broker on a free port of 127.0.0.1."""

from __future__ import annotations

from pathlib import Path

from zeroqueue.embedded._base import BrokerProcess
from zeroqueue.embedded._binary import find_tansu_binary

__all__ = ["EmbeddedBroker"]


class EmbeddedBroker(BrokerProcess):
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

    kind = "embedded broker"
    log_prefix = "tansu"

    def __init__(
        self,
        *,
        port: int = 0,
        host: str = "127.0.0.1",
        log_path: str | Path | None = None,
        startup_timeout: float = 30.0,
    ) -> None:
        super().__init__(port=port, host=host, log_path=log_path, startup_timeout=startup_timeout)
        self._binary = ""

    def _prepare(self) -> None:
        self._binary = find_tansu_binary()

    def _command(self, port: int) -> tuple[list[str], dict[str, str] | None]:
        url = f"tcp://{self.host}:{port}"
        argv = [
            self._binary,
            "broker",
            "--listener-url",
            url,
            "--advertised-listener-url",
            url,
            "--storage-engine",
            "memory://tansu/",
        ]
        return argv, None
