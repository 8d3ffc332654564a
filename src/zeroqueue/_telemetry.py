"""Setting up an OpenTelemetry SDK from go-zero's ``Telemetry`` section, as go-zero's trace does."""

from __future__ import annotations

import atexit
from typing import Any

from zeroqueue.conf import ServiceConf
from zeroqueue.conf._service import TelemetryConf
from zeroqueue.errors import ConfigError

__all__ = ["setup_telemetry"]

_EXTRA = "pip install 'zeroqueue[tracing]'"


def setup_telemetry(conf: ServiceConf | TelemetryConf, name: str = "") -> Any:
    """Trace to where ``Telemetry`` says; return the SDK's tracer provider, or None.

    Nothing is set up when ``Endpoint`` is empty or ``Disabled`` is true (go-zero's
    rule). Batchers: ``otlphttp`` (``Endpoint`` host:port or URL, ``OtlpHttpPath``,
    ``OtlpHeaders``), ``otlpgrpc`` (needs ``opentelemetry-exporter-otlp-proto-grpc``)
    and ``file`` (one JSON span per line, appended to the file ``Endpoint`` names).
    Sampling is go-zero's: ``Sampler`` of new traces, a parent's decision kept.

    Raises:
        ConfigError: a batcher this library cannot export to (``jaeger``,
            ``zipkin``: both take OTLP nowadays), or the extra is missing.
    """
    telemetry = conf.telemetry if isinstance(conf, ServiceConf) else conf
    service = telemetry.name or name or (conf.name if isinstance(conf, ServiceConf) else "")
    if telemetry.disabled or not telemetry.endpoint:
        return None
    try:
        from opentelemetry import trace  # noqa: PLC0415 - the tracing extra
        from opentelemetry.sdk.resources import Resource  # noqa: PLC0415
        from opentelemetry.sdk.trace import TracerProvider  # noqa: PLC0415
        from opentelemetry.sdk.trace.export import BatchSpanProcessor  # noqa: PLC0415
        from opentelemetry.sdk.trace.sampling import (  # noqa: PLC0415
            ParentBased,
            TraceIdRatioBased,
        )
    except ImportError as error:
        raise ConfigError(
            f"Telemetry.Endpoint: {telemetry.endpoint!r} is set but the OpenTelemetry SDK is"
            f" not installed; {_EXTRA}"
        ) from error
    exporter = _exporter(telemetry)
    provider = TracerProvider(
        resource=Resource.create({"service.name": service or "zeroqueue"}),
        sampler=ParentBased(TraceIdRatioBased(telemetry.sampler)),
    )
    provider.add_span_processor(BatchSpanProcessor(exporter))
    trace.set_tracer_provider(provider)
    # Spans still batched at exit are sent then, as go-zero flushes on shutdown.
    atexit.register(provider.shutdown)
    return provider


def _exporter(telemetry: TelemetryConf) -> Any:
    batcher, endpoint = telemetry.batcher, telemetry.endpoint
    if batcher == "otlphttp":
        try:
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import (  # noqa: PLC0415
                OTLPSpanExporter,
            )
        except ImportError as error:
            raise ConfigError(
                f"Telemetry.Batcher: otlphttp needs its exporter; {_EXTRA}"
            ) from error
        url = endpoint if "://" in endpoint else f"http://{endpoint}"
        path = telemetry.otlp_http_path or "/v1/traces"
        if url.count("/") == 2:  # no path in the endpoint: OTLP's, or OtlpHttpPath
            url += path
        return OTLPSpanExporter(endpoint=url, headers=dict(telemetry.otlp_headers))
    if batcher == "otlpgrpc":
        try:
            from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import (  # type: ignore[import-not-found]  # noqa: PLC0415 - not a dependency
                OTLPSpanExporter as GrpcExporter,
            )
        except ImportError as error:
            raise ConfigError(
                "Telemetry.Batcher: otlpgrpc needs pip install"
                " opentelemetry-exporter-otlp-proto-grpc (or use otlphttp)"
            ) from error
        return GrpcExporter(endpoint=endpoint, headers=dict(telemetry.otlp_headers), insecure=True)
    if batcher == "file":
        from opentelemetry.sdk.trace.export import ConsoleSpanExporter  # noqa: PLC0415

        out = open(endpoint, "a", encoding="utf-8")  # noqa: SIM115 - lives as long as the exporter
        return ConsoleSpanExporter(out=out, formatter=lambda span: span.to_json(indent=None) + "\n")
    raise ConfigError(
        f"Telemetry.Batcher: got {batcher!r}; expected otlphttp, otlpgrpc or file"
        " (Jaeger and Zipkin take OTLP: point Endpoint at their OTLP port with otlphttp)"
    )
