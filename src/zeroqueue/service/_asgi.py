"""AsgiServer: an ASGI app (FastAPI, Starlette, ...) served by uvicorn, as a group's service."""

from __future__ import annotations

import math
import threading
from typing import Any

from zeroqueue.conf import RestConf
from zeroqueue.errors import ConfigError

__all__ = ["AsgiServer"]


class AsgiServer:
    """Serve an ASGI app with uvicorn; ``start()`` blocks, ``stop()`` shuts it down.

    On stop it closes its listening socket first (new requests are refused),
    then lets requests in progress finish within ``shutdown_timeout``. Run it in
    a :class:`~zeroqueue.service.ServiceGroup` (which owns the signals), added
    last so that it stops first. Needs the ``service`` extra (uvicorn).

    Args:
        app: The ASGI application.
        host: The address to listen on.
        port: The port; 0 picks a free one (see :attr:`port` once started).
        shutdown_timeout: Seconds requests in progress may take to finish on stop.
        options: More ``uvicorn.Config`` options.
    """

    def __init__(
        self,
        app: Any,
        *,
        host: str = "127.0.0.1",
        port: int = 8888,
        shutdown_timeout: float = 5.0,
        name: str = "http",
        **options: Any,
    ) -> None:
        try:
            import uvicorn  # noqa: PLC0415 - an optional extra
        except ImportError as exc:
            raise ConfigError("AsgiServer needs uvicorn: pip install 'zeroqueue[service]'") from exc
        self.name = name
        settings: dict[str, Any] = {"lifespan": "auto", "access_log": False} | options
        self._config = uvicorn.Config(
            app,
            host=host,
            port=port,
            # uvicorn takes whole seconds here
            timeout_graceful_shutdown=max(1, math.ceil(shutdown_timeout)),
            log_config=None,  # the application's logging (ServiceConf) applies
            **settings,
        )
        self._server = uvicorn.Server(self._config)
        self._started = threading.Event()
        self._stopping = False

    @classmethod
    def from_conf(cls, app: Any, conf: RestConf, **options: Any) -> AsgiServer:
        """Listen where a go-zero ``RestConf`` section says (``Host``, ``Port``)."""
        return cls(
            app,
            host=conf.host,
            port=conf.port,
            shutdown_timeout=conf.shutdown_timeout,
            name=conf.name or "http",
            **options,
        )

    def start(self) -> None:
        """Serve until :meth:`stop` (uvicorn installs no signal handler off the main thread)."""
        if self._stopping:
            return
        server = self._server
        original_startup = server.startup

        async def startup(sockets: Any = None) -> None:
            await original_startup(sockets)
            self._started.set()

        server.startup = startup  # type: ignore[method-assign]
        try:
            server.run()
        finally:
            self._started.set()

    def stop(self) -> None:
        """Stop taking requests, let those in progress finish, and return from :meth:`start`."""
        self._stopping = True
        self._server.should_exit = True

    def wait_started(self, timeout: float = 10.0) -> bool:
        """Wait until the server listens (or gave up starting)."""
        return self._started.wait(timeout)

    @property
    def port(self) -> int:
        """The port it listens on (the one picked for port 0), once started."""
        for server in getattr(self._server, "servers", []):
            for sock in server.sockets:
                return int(sock.getsockname()[1])
        return int(self._config.port)

    def __repr__(self) -> str:
        return f"<AsgiServer {self.name} {self._config.host}:{self._config.port}>"
