"""KqConf: the consumer configuration, field for field the one go-queue reads."""

from __future__ import annotations

import contextvars
import os
from collections.abc import Mapping
from typing import Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator
from pydantic.alias_generators import to_pascal

from zeroqueue._checks import client_id_name
from zeroqueue._kafka.settings import Brokers, SaslMechanism, Security
from zeroqueue.conf import _loader
from zeroqueue.conf._keys import canonical, near_miss
from zeroqueue.errors import ConfigError
from zeroqueue.retry._conf import RetryConf

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


# What error messages call the config being validated (from_mapping's ``source``).
_source: contextvars.ContextVar[str] = contextvars.ContextVar("kqconf_source", default="KqConf")


class KqConf(BaseModel):
    """Configuration of a Kafka consumer Queue, as in go-queue's ``kq.KqConf``.

    Python attributes are snake_case; mappings and YAML files use go-zero's
    spelling (``Brokers``, ``MinBytes``, ``ForceCommit``), matched without regard
    to case like go-zero does, or the snake_case names. A key KqConf does not
    declare is ignored, as go-zero does, unless it looks like a typo of one that
    it does. Invalid values raise :class:`~zeroqueue.errors.ConfigError` naming
    the field, the value and what is allowed. It nests in a service's own config
    model (see :mod:`zeroqueue.conf`).
    """

    # zeroqueue.conf's loader leaves the keys of a KqConf section to _match_keys.
    __zeroqueue_matches_own_keys__: ClassVar[bool] = True

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
    brokers: Brokers = Field(description="a list of Kafka brokers as host:port")
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
    retry: RetryConf | None = Field(
        None, description="tries in place, retry topics and a dead-letter topic (Retry:)"
    )
    service: dict[str, Any] = Field(
        default_factory=dict,
        description="go-zero ServiceConf keys (Log, Mode, ...), kept but not acted on",
    )

    def __init__(self, **data: Any) -> None:
        if _loader.validating.get():
            # Nested in a config zeroqueue.conf loads: it names the whole key path.
            super().__init__(**data)
            return
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
        """Read a KqConf from a go-zero YAML (or JSON, TOML) file, ``${ENV}`` expanded.

        Args:
            path: The config file, e.g. ``etc/config.yaml``.
            key: The section holding the KqConf, e.g. ``"KqConsumerConf"``; None when
                the whole file is the KqConf (as in ``conf.MustLoad(file, &kqConf)``).

        """
        return _loader.load(path, cls, key=key)

    # -- validation -----------------------------------------------------------------

    @model_validator(mode="before")
    @classmethod
    def _match_keys(cls, data: Any) -> Any:
        if not isinstance(data, Mapping):
            return data
        fields = {canonical(name): name for name in cls.model_fields}
        service_keys = {canonical(k): k for k in _SERVICE_CONF_KEYS}
        matched: dict[str, Any] = {}
        service: dict[str, Any] = dict(data.get("service") or {})
        for raw_key, value in data.items():
            if raw_key == "service":
                continue
            spelling = canonical(str(raw_key))
            if spelling == "service":
                # Only the Python attribute takes a mapping; a config file's "Service"
                # section is not go-zero's: ServiceConf is embedded, its keys top level.
                raise ValueError(
                    f"unknown key {raw_key!r}: go-zero embeds ServiceConf, so its keys ("
                    + ", ".join(_SERVICE_CONF_KEYS)
                    + ") go at the top level of KqConf"
                )
            if spelling in service_keys:
                service[service_keys[spelling]] = value
            elif spelling in fields:
                name = fields[spelling]
                if name in matched:
                    raise ValueError(f"{raw_key!r} repeats a key already given")
                matched[name] = value
            else:
                choices = [to_pascal(n) for n in cls.model_fields if n != "service"]
                close = near_miss(str(raw_key), [*choices, *_SERVICE_CONF_KEYS])
                if close is not None:
                    raise ValueError(f"unknown key {raw_key!r}; did you mean {close!r}?")
                # Not declared: ignored, as go-zero does (one file may serve other programs).
        matched["service"] = service
        return matched

    _check_name = field_validator("name")(client_id_name)

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

    def security_options(self) -> dict[str, Any]:
        """The Pusher options that reach the same cluster the same way (SASL, TLS)."""
        return {
            "username": self.username,
            "password": self.password,
            "sasl_mechanism": self.sasl_mechanism,
            "ca_file": self.ca_file,
        }

    def security(self) -> Security:
        """SASL and TLS settings from Username, Password, SaslMechanism and CaFile."""
        return Security(
            username=self.username,
            password=self.password,
            sasl_mechanism=self.sasl_mechanism,
            ca_file=self.ca_file,
        )


def _describe(exc: ValidationError, source: str) -> str:
    """One line per problem, as zeroqueue.conf words them (a Password is never shown).

    ``source`` is ``KqConf`` for a KqConf built in code: its errors read
    ``KqConf.Offset: ...``.
    """
    where, prefix = ("", (source,)) if source == "KqConf" else (source, ())
    return _loader.describe(exc.errors(include_url=False), where, prefix=prefix, model=KqConf)
