"""Config files the go-zero way, for your own service's model.

Load YAML (or JSON, TOML) into a pydantic model or a dataclass with go-zero's
rules: keys matched without regard to case (snake_case too), nested sections
and lists, defaults, allowed values (``Literal``), optional keys, ranges
(``Field(ge=..., le=...)``), durations (``Duration``: ``"500ms"``, ``"1m30s"``)
and ``${ENV}`` expansion. A key the model does not declare is ignored, so one
file can serve a Go service too, unless it looks like a typo of a declared key.
Errors name the file, the key path, the value and what is allowed.

The pieces of go-zero configs are here too: :class:`ServiceConf` (``Name``,
``Mode``, ``Log``, ``Prometheus``, ``Telemetry``), :class:`RestConf`, and
:func:`setup_logging`; ``zeroqueue.KqConf`` and ``zeroqueue.PusherConf`` nest
inside your model.
"""

from zeroqueue.conf._durations import Duration, parse_duration
from zeroqueue.conf._loader import from_mapping, load
from zeroqueue.conf._service import (
    Conf,
    LogConf,
    PrometheusConf,
    RestConf,
    ServiceConf,
    TelemetryConf,
    setup_logging,
)

__all__ = [
    "Conf",
    "Duration",
    "LogConf",
    "PrometheusConf",
    "RestConf",
    "ServiceConf",
    "TelemetryConf",
    "from_mapping",
    "load",
    "parse_duration",
    "setup_logging",
]
