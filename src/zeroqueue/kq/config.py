"""KqConf: the consumer configuration, field for field the one go-queue reads."""

from __future__ import annotations

import contextvars
import difflib
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator
from pydantic.alias_generators import to_pascal

from zeroqueue._kafka.settings import SASL_MECHANISMS, SaslMechanism, Security
from zeroqueue.errors import ConfigError

__all__ = ["KqConf"]

# Keys of go-zero's service.ServiceConf, which KqConf embeds. A go-zero file may set
# them; zeroqueue keeps them in ``KqConf.service`` and does not act on them.
_SERVICE_CONF_KEYS = (
    "Log",
    "Mode",
    "MetricsUrl",
    "Prometheus",
    "Telemetry",
    "DevServer",
    "Shutdown",
    "Profiling",
)


# What error messages call the config being validated: "KqConf", or "<file>: <section>".
_source: contextvars.ContextVar[str] = contextvars.ContextVar("kqconf_source", default="KqConf")


def _canonical(key: str) -> str:
    """go-zero matches config keys case-insensitively; we also accept snake_case."""
    return key.replace("_", "").lower()


class KqConf(BaseModel):
    """Configuration of a Kafka consumer Queue, as in go-queue's ``kq.KqConf``.

    Python attributes are snake_case; mappings and YAML files use go-zero's
    spelling (``Brokers``, ``MinBytes``, ``ForceCommit``), matched without regard
    to case like go-zero does, or the snake_case names. Invalid values raise
    :class:`~zeroqueue.errors.ConfigError` naming the field, the value and what is
    allowed.
    """

    model_config = ConfigDict(
        alias_generator=to_pascal,
        populate_by_name=True,
        extra="forbid",
        frozen=True,
        # A ValidationError that escapes __init__ (model_validate skips it) quotes no
        # input, so no Password; _describe still reads the inputs to name the others.
        hide_input_in_errors=True,
    )

    name: str = Field("", description="the service name; also the Kafka client.id")
    brokers: list[str] = Field(description="a list of Kafka brokers as host:port")
    group: str = Field(description="a consumer group id")
    topic: str | list[str] = Field(
        description="a topic, a list of topics, or a regex starting with ^ such as ^order-.*"
    )
    ca_file: str = Field("", description="PEM CA bundle; enables TLS with verification")
    offset: Literal["first", "last"] = Field(
        "last", description="where a group without a committed offset starts"
    )
    conns: int = Field(1, ge=1, description="group members (consumers) in this process")
    consumers: int = Field(
        8, ge=1, description="go-queue fetch goroutines; librdkafka fetches on its own threads"
    )
    processors: int = Field(8, ge=1, description="concurrent handlers per conn")
    # go-queue's default is 10240 (kafka-go's reader): a topic carrying less than that
    # per max_wait then waits max_wait on every fetch. 1 byte gives librdkafka's
    # latency at no cost in throughput (a busy topic fills a fetch anyway); a file
    # that sets MinBytes keeps its value.
    min_bytes: int = Field(1, ge=1, le=100_000_000, description="fetch.min.bytes")
    max_bytes: int = Field(10485760, ge=1024, le=2_147_483_135, description="fetch.max.bytes")
    username: str = Field("", description="SASL user name")
    # Out of repr() and str(): a KqConf printed in a log must not carry the password.
    password: str = Field("", repr=False, description="SASL password")
    sasl_mechanism: SaslMechanism = Field("PLAIN", description="PLAIN, SCRAM-SHA-256/512")
    force_commit: bool = Field(
        True, description="commit past a message whose handler failed (after error_handler)"
    )
    commit_in_order: bool = Field(
        False, description="accepted for go-queue files; zeroqueue always commits in order"
    )
    service: dict[str, Any] = Field(
        default_factory=dict,
        description="go-zero ServiceConf keys (Log, Mode, ...), kept but not acted on",
    )

    def __init__(self, **data: Any) -> None:
        try:
            super().__init__(**data)
            return
        except ValidationError as exc:
            message = _describe(exc, _source.get())
        # Raised out here, not in the except block, so that the ValidationError is not
        # kept as __context__ either: it quotes every input, a Password too.
        raise ConfigError(message)

    # -- loading --------------------------------------------------------------------

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any], *, source: str = "KqConf") -> KqConf:
        """Build a KqConf from a mapping with go-zero or snake_case keys."""
        # Neither names the values: they may hold a Password.
        if not isinstance(data, Mapping):
            raise ConfigError(f"{source}: got a {type(data).__name__}; expected a mapping")
        others = [key for key in data if not isinstance(key, str)]
        if others:
            raise ConfigError(
                f"{source}: got keys {', '.join(map(repr, others))}; expected string keys"
            )
        token = _source.set(source)
        try:
            return cls(**data)
        finally:
            _source.reset(token)

    @classmethod
    def load(cls, path: str | os.PathLike[str], key: str | None = None) -> KqConf:
        """Read a KqConf from a go-zero YAML (or JSON) file.

        Args:
            path: The config file, e.g. ``etc/config.yaml``.
            key: The section holding the KqConf, e.g. ``"KqConsumerConf"``; None when
                the whole file is the KqConf (as in ``conf.MustLoad(file, &kqConf)``).

        """
        file = Path(path)
        problem = None
        try:
            document = yaml.safe_load(file.read_text(encoding="utf-8"))
        except OSError as exc:
            raise ConfigError(f"{file}: cannot read config file: {exc.strerror}") from exc
        except yaml.MarkedYAMLError as exc:
            problem = _yaml_problem(exc)
        except yaml.YAMLError as exc:
            raise ConfigError(f"{file}: not valid YAML: {exc}") from exc
        if problem is not None:
            # Raised out of the except block, so without the YAML error as cause or
            # context: PyYAML's message quotes the offending line, a Password too.
            raise ConfigError(f"{file}: not valid YAML: {problem}")
        source = str(file)
        if key is not None:
            if not isinstance(document, Mapping):
                raise ConfigError(f"{file}: expected a mapping with a {key!r} section")
            found = [k for k in document if isinstance(k, str) and _canonical(k) == _canonical(key)]
            if not found:
                raise ConfigError(
                    f"{file}: no {key!r} section; it has " + ", ".join(map(repr, document))
                )
            document, source = document[found[0]], f"{file}: {key}"
        return cls.from_mapping(document if document is not None else {}, source=source)

    # -- validation -----------------------------------------------------------------

    @model_validator(mode="before")
    @classmethod
    def _match_keys(cls, data: Any) -> Any:
        if not isinstance(data, Mapping):
            return data
        fields = {_canonical(name): name for name in cls.model_fields}
        service_keys = {_canonical(k): k for k in _SERVICE_CONF_KEYS}
        matched: dict[str, Any] = {}
        service: dict[str, Any] = dict(data.get("service") or {})
        for raw_key, value in data.items():
            if raw_key == "service":
                continue
            canonical = _canonical(str(raw_key))
            if canonical == "service":
                # Only the Python attribute takes a mapping; a config file's "Service"
                # section is not go-zero's: ServiceConf is embedded, its keys top level.
                raise ValueError(
                    f"unknown key {raw_key!r}: go-zero embeds ServiceConf, so its keys ("
                    + ", ".join(_SERVICE_CONF_KEYS)
                    + ") go at the top level of KqConf"
                )
            if canonical in service_keys:
                service[service_keys[canonical]] = value
            elif canonical in fields:
                name = fields[canonical]
                if name in matched:
                    raise ValueError(f"{raw_key!r} repeats a key already given")
                matched[name] = value
            else:
                choices = [to_pascal(n) for n in cls.model_fields if n != "service"]
                close = difflib.get_close_matches(str(raw_key), choices, n=1, cutoff=0.6)
                hint = f" (did you mean {close[0]!r}?)" if close else ""
                raise ValueError(
                    f"unknown key {raw_key!r}{hint}; known keys: " + ", ".join(choices)
                )
        matched["service"] = service
        return matched

    @field_validator("brokers", mode="before")
    @classmethod
    def _split_brokers(cls, value: Any) -> Any:
        # "a:9092,b:9092" is a common way to pass brokers through one env variable.
        if isinstance(value, str):
            return [part.strip() for part in value.split(",") if part.strip()]
        return value

    @field_validator("brokers")
    @classmethod
    def _check_brokers(cls, value: list[str]) -> list[str]:
        if not value:
            raise ValueError("at least one host:port")
        for broker in value:
            host, sep, port = broker.rpartition(":")
            if not sep or not host or not port.isdigit():
                raise ValueError(f"host:port entries; {broker!r} is not")
        return value

    @field_validator("group")
    @classmethod
    def _check_group(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("a non-empty consumer group id")
        return value

    @field_validator("topic")
    @classmethod
    def _check_topic(cls, value: str | list[str]) -> str | list[str]:
        topics = [value] if isinstance(value, str) else value
        if not topics or any(not t.strip() for t in topics):
            raise ValueError("a topic name, a list of them, or a ^regex")
        return value

    @model_validator(mode="after")
    def _check_security(self) -> KqConf:
        if self.min_bytes > self.max_bytes:
            raise ValueError(
                f"MinBytes={self.min_bytes} is larger than MaxBytes={self.max_bytes}; "
                "expected MinBytes <= MaxBytes"
            )
        self.security()  # raises ConfigError naming Username/Password/CaFile
        return self

    # -- derived --------------------------------------------------------------------

    @property
    def topics(self) -> list[str]:
        """The subscription: topic names and ``^regex`` patterns."""
        return [self.topic] if isinstance(self.topic, str) else list(self.topic)

    def security(self) -> Security:
        """SASL and TLS settings from Username, Password, SaslMechanism and CaFile."""
        return Security(
            username=self.username,
            password=self.password,
            sasl_mechanism=self.sasl_mechanism,
            ca_file=self.ca_file,
        )


def _yaml_problem(exc: yaml.MarkedYAMLError) -> str:
    """What PyYAML found wrong and where, without the lines it would quote."""
    parts = []
    for text, mark in ((exc.context, exc.context_mark), (exc.problem, exc.problem_mark)):
        if text:
            where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark else ""
            parts.append(f"{text}{where}")
    return ": ".join(parts) or "a syntax error"


def _describe(exc: ValidationError, source: str) -> str:
    """One line per problem: ``source.Field: got <value>; expected <what>``.

    A Password's value is never shown, only its type.
    """
    lines = []
    for error in exc.errors(include_url=False):
        location = ".".join(
            to_pascal(str(part)) if isinstance(part, str) else f"[{part}]" for part in error["loc"]
        )
        message = str(error["msg"])
        for prefix in ("Value error, ", "Input should be "):
            message = message.removeprefix(prefix)
        if not location:
            lines.append(f"{source}: {message}")
            continue
        where = f"{source}.{location}"
        if error["type"] == "missing":
            field = next(
                (f for n, f in KqConf.model_fields.items() if to_pascal(n) == location), None
            )
            what = field.description if field is not None and field.description else "a value"
            lines.append(f"{where}: missing; expected {what}")
            continue
        if error["type"] == "literal_error" and "sasl" in location.lower():
            message = " or ".join(repr(m) for m in SASL_MECHANISMS)
        got = error["input"]
        shown = f"a value of type {type(got).__name__}" if location == "Password" else repr(got)
        lines.append(f"{where}: got {shown}; expected {message}")
    return "\n".join(lines) if len(lines) > 1 else lines[0]
