"""Prometheus metrics for Queues and Pushers (the ``metrics`` extra: prometheus-client).

Turn them on with :func:`serve` (an HTTP endpoint, as go-zero's ``Prometheus``
section) or :func:`enable` (your own registry and server); a
:class:`~zeroqueue.service.ServiceGroup` given a ``ServiceConf`` whose
``Prometheus.Host`` is set serves them by itself. Queues and Pushers built
while metrics are on are watched (weakly: they can still be garbage-collected);
those built before are not.

While metrics are off nothing is counted and nothing runs per message; this
module imports prometheus_client only when they are turned on, so zeroqueue
works without the extra.

What is measured (README, "Metrics", lists every metric): per message a
Queue's outcomes and handling time (through the same metrics hook a user's
``metrics=`` gets); at scrape time, from the running engines, lag in messages
and seconds, committed offsets, in-flight messages and buffer fill; from
librdkafka's statistics, the messages producers sent.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Any

from zeroqueue.errors import ConfigError
from zeroqueue.metrics._hub import HUB

if TYPE_CHECKING:
    from prometheus_client.registry import CollectorRegistry

    from zeroqueue.conf import PrometheusConf
    from zeroqueue.metrics._collector import ZeroQueueCollector
    from zeroqueue.metrics._server import MetricsServer

__all__ = ["MetricsServer", "disable", "enable", "enabled", "serve"]

_INSTALL = "pip install 'zeroqueue[metrics]'"

_lock = threading.Lock()
_active_collector: ZeroQueueCollector | None = None
_active_registry: CollectorRegistry | None = None
_servers: list[MetricsServer] = []


def _require_prometheus() -> None:
    try:
        import prometheus_client  # noqa: F401, PLC0415 - the optional extra, checked when used
    except ImportError as exc:
        raise ConfigError(
            f"metrics: prometheus-client is not installed; {_INSTALL} to turn metrics on"
        ) from exc


def enabled() -> bool:
    """Whether metrics are on (Queues and Pushers built now are watched)."""
    return HUB.on


def enable(
    *,
    registry: CollectorRegistry | None = None,
    offsets_timeout: float = 2.0,
    offsets_cache: float = 1.0,
    statistics_interval: float = 1.0,
) -> None:
    """Turn metrics on: register zeroqueue's collector in ``registry``.

    Queues and Pushers built from now on are watched. Serve ``registry`` yourself
    (``prometheus_client.start_http_server``, your web framework), or call
    :func:`serve`. Calling it again while on changes nothing.

    Args:
        registry: Where the metrics go; ``prometheus_client.REGISTRY`` by default.
        offsets_timeout: Seconds a scrape may spend asking the cluster for
            watermarks, committed offsets and timestamps (then it shows what it
            has: a scrape never hangs on a cluster that does not answer).
        offsets_cache: Seconds watermarks are kept between scrapes.
        statistics_interval: Seconds between librdkafka statistics of producers:
            the pushed-message counts are as fresh as that, and a Pusher's
            ``close()`` waits up to that long for the last of them.

    Raises:
        ConfigError: prometheus-client is not installed, or a number is out of range.
    """
    global _active_collector, _active_registry
    _require_prometheus()
    for name, value in (
        ("offsets_timeout", offsets_timeout),
        ("offsets_cache", offsets_cache),
        ("statistics_interval", statistics_interval),
    ):
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value < 3600:
            raise ConfigError(f"{name}: got {value!r}; expected seconds above 0 and below 3600")
    # Imported here, not with the package: they need the optional extra.
    from prometheus_client import REGISTRY  # noqa: PLC0415

    from zeroqueue.metrics._collector import ZeroQueueCollector  # noqa: PLC0415

    with _lock:
        if _active_collector is not None:
            return
        target = REGISTRY if registry is None else registry
        collector = ZeroQueueCollector(
            HUB, offsets_timeout=offsets_timeout, offsets_cache=offsets_cache
        )
        target.register(collector)
        _active_collector, _active_registry = collector, target
        HUB.statistics_interval = float(statistics_interval)
        HUB.on = True


def serve(
    conf: PrometheusConf | None = None,
    *,
    host: str | None = None,
    port: int | None = None,
    path: str | None = None,
    registry: CollectorRegistry | None = None,
) -> MetricsServer:
    """Turn metrics on (see :func:`enable`) and serve them at ``http://host:port/path``.

    ``conf`` is go-zero's ``Prometheus`` section (``Host``, ``Port``, ``Path``);
    keyword arguments win over it. Defaults: port 9101, path ``/metrics``.
    ``port=0`` picks a free port (``server.port``). The server runs on a daemon
    thread until ``server.close()`` or :func:`disable`.

    Raises:
        ConfigError: no host, a path not starting with ``/``, the port taken, or
            prometheus-client not installed.
    """
    _require_prometheus()
    host = host if host is not None else (conf.host if conf is not None else "")
    port = port if port is not None else (conf.port if conf is not None else 9101)
    path = path if path is not None else (conf.path if conf is not None else "/metrics")
    if not host:
        raise ConfigError(
            "Prometheus.Host: got ''; expected the address to serve metrics on, such as 0.0.0.0"
        )
    if isinstance(port, bool) or not isinstance(port, int) or not 0 <= port <= 65535:
        raise ConfigError(f"Prometheus.Port: got {port!r}; expected a port from 0 to 65535")
    if not path.startswith("/"):
        raise ConfigError(f"Prometheus.Path: got {path!r}; expected a path starting with '/'")
    enable(registry=registry)
    from zeroqueue.metrics._server import MetricsServer  # noqa: PLC0415 - needs the extra

    with _lock:
        assert _active_registry is not None
        served = _active_registry if registry is None else registry
    try:
        server = MetricsServer(host, port, path, served)
    except OSError as exc:
        raise ConfigError(
            f"Prometheus: cannot serve metrics on {host}:{port}: {exc.strerror or exc}"
        ) from exc
    with _lock:
        _servers.append(server)
    return server


def disable() -> None:
    """Turn metrics off: stop the servers, unregister the collector, forget what was counted.

    Queues and Pushers built while on keep counting into stats nobody reads
    until they are gone; those built from now on cost nothing.
    """
    global _active_collector, _active_registry
    with _lock:
        collector, registry, servers = _active_collector, _active_registry, list(_servers)
        _active_collector, _active_registry = None, None
        _servers.clear()
        HUB.reset()
    for server in servers:
        server.close()
    if collector is not None and registry is not None:
        registry.unregister(collector)
        collector.close()


def __getattr__(name: str) -> Any:
    # MetricsServer needs prometheus_client: imported on first use, not with the package.
    if name == "MetricsServer":
        _require_prometheus()
        from zeroqueue.metrics._server import MetricsServer  # noqa: PLC0415 - needs the extra

        return MetricsServer
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
