"""go-zero's ServiceConf and RestConf, and logging set up from them."""

from __future__ import annotations

import json
import logging
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator
from pydantic._internal._model_construction import ModelMetaclass
from pydantic.alias_generators import to_pascal

from zeroqueue.conf._durations import Duration
from zeroqueue.conf._loader import describe, match_keys
from zeroqueue.errors import ConfigError

__all__ = [
    "Conf",
    "LogConf",
    "PrometheusConf",
    "RestConf",
    "ServiceConf",
    "TelemetryConf",
    "setup_logging",
]


class _BuiltInCode(ModelMetaclass):
    """``PusherConf(...)`` written in code raises ConfigError, as ``KqConf(...)`` does.

    Only a call goes through here: nested in another model or in a loaded file,
    a section is validated as part of it, and the error names its whole key path.
    """

    def __call__(cls, *args: Any, **kwargs: Any) -> Any:  # noqa: N805 - a metaclass
        try:
            return super().__call__(*args, **kwargs)
        except ValidationError as exc:
            message = describe(exc.errors(include_url=False), "", prefix=(cls.__name__,), model=cls)
        # Raised out here, so the ValidationError (which quotes every input, a
        # password too) is not kept as its context.
        raise ConfigError(message)


class Conf(BaseModel, metaclass=_BuiltInCode):
    """A base for config models: fields in snake_case, keys in go-zero's PascalCase.

    ``kq_consumer_conf: KqConf`` is read from ``KqConsumerConf:`` (or any case of
    it, or ``kq_consumer_conf:``). Subclass it for your service's Config, as a
    go-zero Config struct embeds ``rest.RestConf`` and others. Built from a
    mapping in any way (not only by :func:`~zeroqueue.conf.load`), it matches
    keys go-zero's way: without regard to case, ignoring undeclared keys, and
    refusing a typo of a declared one.
    """

    model_config = ConfigDict(alias_generator=to_pascal, populate_by_name=True)

    @model_validator(mode="before")
    @classmethod
    def _go_zero_keys(cls, data: Any) -> Any:
        if not isinstance(data, Mapping):
            return data
        typos: list[tuple[tuple[str | int, ...], str]] = []
        matched = match_keys(data, cls, typos)
        if typos:
            raise ValueError(
                "; ".join(f"{'.'.join(map(str, path))}: {problem}" for path, problem in typos)
            )
        return matched


class LogConf(Conf):
    """go-zero's ``logx.LogConf``: where log lines go and how they look."""

    service_name: str = Field("", description="the service name in every line")
    mode: Literal["console", "file", "volume"] = Field(
        "console", description="console (stderr), or a file under Path"
    )
    encoding: Literal["json", "plain"] = Field("json", description="one JSON object per line")
    level: Literal["debug", "info", "error", "severe"] = Field("info", description="lowest level")
    path: str = Field("logs", description="the directory for file and volume modes")
    time_format: str = Field("", description="a strftime format; ISO 8601 by default")
    stat: bool = Field(True, description="accepted; zeroqueue logs no periodic stats")


class PrometheusConf(Conf):
    """go-zero's ``prometheus.Config``: where metrics are served (empty Host: not served)."""

    host: str = ""
    port: int = Field(9101, ge=0, le=65535)
    path: str = "/metrics"


class TelemetryConf(Conf):
    """go-zero's ``trace.Config``: where traces go (empty Endpoint: nowhere)."""

    name: str = ""
    endpoint: str = ""
    sampler: float = Field(1.0, ge=0.0, le=1.0)
    batcher: Literal["jaeger", "zipkin", "otlpgrpc", "otlphttp", "file"] = "jaeger"
    otlp_headers: dict[str, str] = Field(default_factory=dict)
    otlp_http_path: str = ""
    disabled: bool = False


class ServiceConf(Conf):
    """go-zero's ``service.ServiceConf``: what every go-zero service config embeds.

    Embed it by subclassing, as go-zero embeds the struct: its keys (``Name``,
    ``Mode``, ``Log``, ...) then sit at the top level of your config.
    """

    name: str = Field("", description="the service name")
    mode: Literal["dev", "test", "rt", "pre", "pro"] = Field("pro", description="go-zero's mode")
    log: LogConf = Field(default_factory=LogConf)
    metrics_url: str = ""
    prometheus: PrometheusConf = Field(default_factory=PrometheusConf)
    telemetry: TelemetryConf = Field(default_factory=TelemetryConf)


class RestConf(ServiceConf):
    """go-zero's ``rest.RestConf``: ServiceConf plus where the HTTP server listens."""

    host: str = Field("0.0.0.0", description="the address to listen on")
    port: int = Field(8888, ge=0, le=65535, description="the port to listen on; 0 picks one")
    cert_file: str = ""
    key_file: str = ""
    timeout: int = Field(3000, ge=0, description="milliseconds a request may take (go-zero)")
    max_conns: int = Field(10000, ge=1)
    max_bytes: int = Field(1048576, ge=1)
    shutdown_timeout: Duration = Field(
        5.0, description="how long the server lets requests in progress finish on stop"
    )


_LEVELS = {
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "error": logging.ERROR,
    "severe": logging.CRITICAL,
}


class _JsonFormatter(logging.Formatter):
    """One JSON object per line, with go-zero's logx field names."""

    def __init__(self, service: str, time_format: str) -> None:
        super().__init__()
        self._service = service
        self._time_format = time_format

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, object] = {
            "@timestamp": self._stamp(record.created),
            "level": record.levelname.lower(),
            "content": record.getMessage(),
            "caller": f"{record.pathname}:{record.lineno}",
            "logger": record.name,
        }
        if self._service:
            line["service"] = self._service
        if record.exc_info:
            line["stack"] = self.formatException(record.exc_info)
        return json.dumps(line, ensure_ascii=False)

    def _stamp(self, created: float) -> str:
        if self._time_format:
            return time.strftime(self._time_format, time.localtime(created))
        return time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(created)) + (
            f".{int(created % 1 * 1000):03d}" + time.strftime("%z", time.localtime(created))
        )


def setup_logging(conf: ServiceConf | LogConf) -> logging.Handler:
    """Point Python's root logger where ``conf.Log`` says, at its level; return the handler.

    Replaces handlers a previous call installed, so calling it twice is safe.
    """
    log = conf.log if isinstance(conf, ServiceConf) else conf
    service = log.service_name or (conf.name if isinstance(conf, ServiceConf) else "")
    handler: logging.Handler
    if log.mode == "console":
        handler = logging.StreamHandler(sys.stderr)
    else:
        directory = Path(log.path)
        directory.mkdir(parents=True, exist_ok=True)
        handler = logging.FileHandler(directory / f"{service or 'service'}.log", encoding="utf-8")
    if log.encoding == "json":
        handler.setFormatter(_JsonFormatter(service, log.time_format))
    else:
        handler.setFormatter(
            logging.Formatter(
                "%(asctime)s %(levelname)s %(name)s %(message)s", log.time_format or None
            )
        )
    handler.set_name("zeroqueue-service-log")
    root = logging.getLogger()
    for old in [h for h in root.handlers if h.get_name() == "zeroqueue-service-log"]:
        root.removeHandler(old)
        old.close()
    root.addHandler(handler)
    root.setLevel(_LEVELS[log.level])
    return handler
