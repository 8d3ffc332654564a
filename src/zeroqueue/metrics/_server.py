"""The HTTP endpoint: a registry served at Host:Port/Path, as go-zero's Prometheus agent."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from socketserver import ThreadingMixIn
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from prometheus_client import make_wsgi_app
from prometheus_client.registry import CollectorRegistry

__all__ = ["MetricsServer"]


class _Server(ThreadingMixIn, WSGIServer):
    """One thread per scrape, so a slow scrape does not hold up the next."""

    daemon_threads = True


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        """Scrapes every few seconds would flood stderr."""


class MetricsServer:
    """Serves ``registry`` at ``http://host:port/path`` on a daemon thread until :meth:`close`.

    Any other path answers 404. ``port=0`` picks a free port (see :attr:`port`).
    """

    def __init__(self, host: str, port: int, path: str, registry: CollectorRegistry) -> None:
        self.host = host
        self.path = path
        metrics = make_wsgi_app(registry)

        def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
            if environ.get("PATH_INFO", "") != path:
                start_response("404 Not Found", [("Content-Type", "text/plain; charset=utf-8")])
                return [f"metrics are served at {path}\n".encode()]
            result: Iterable[bytes] = metrics(environ, start_response)
            return result

        self._server = make_server(host, port, app, _Server, handler_class=_QuietHandler)
        #: The port it listens on (the one picked, for ``port=0``).
        self.port: int = self._server.server_address[1]
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="zeroqueue-metrics", daemon=True
        )
        self._thread.start()

    @property
    def url(self) -> str:
        """Where to scrape: ``http://host:port/path`` (127.0.0.1 for an any-address host)."""
        host = "127.0.0.1" if self.host in ("", "0.0.0.0", "::") else self.host
        return f"http://{host}:{self.port}{self.path}"

    def close(self) -> None:
        """Stop serving and release the port."""
        self._server.shutdown()
        self._server.server_close()
        self._thread.join()

    def __repr__(self) -> str:
        return f"<MetricsServer {self.url}>"
