"""Build librdkafka settings shared by producers, consumers and admin clients."""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Annotated, Any, Literal

from confluent_kafka import KafkaError
from pydantic import AfterValidator, BeforeValidator

from zeroqueue._checks import MAX_CLIENT_ID_BYTES, check_client_id
from zeroqueue.errors import ConfigError

__all__ = [
    "SASL_MECHANISMS",
    "ClientErrors",
    "Refusal",
    "SaslMechanism",
    "Security",
    "check_brokers",
    "client_settings",
    "clipped_client_id",
    "refusal_advice",
    "refusal_of",
    "refusal_words",
    "split_brokers",
]

SaslMechanism = Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"]
SASL_MECHANISMS: tuple[SaslMechanism, ...] = ("PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512")

#: librdkafka's own log lines (connection failures, rebalances) go to this logger.
KAFKA_LOGGER = logging.getLogger("zeroqueue.kafka")


@dataclass(frozen=True)
class Security:
    """How a client authenticates and encrypts: SASL user/password and a TLS CA file.

    ``username`` turns SASL on (``sasl_mechanism`` PLAIN by default); ``ca_file``
    turns TLS on with certificate and host name verification. The password is
    left out of ``repr()``, and no error message quotes it.
    """

    username: str = ""
    # Out of repr(): a Security (or a Pusher's options) printed in a log or a
    # traceback must not carry the password with it.
    password: str = field(default="", repr=False)
    sasl_mechanism: SaslMechanism = "PLAIN"
    ca_file: str = ""

    def __post_init__(self) -> None:
        for name, value in (
            ("Username", self.username),
            ("Password", self.password),
            ("CaFile", self.ca_file),
        ):
            if not isinstance(value, str):
                # The type only: the value may be a password.
                raise ConfigError(
                    f"{name}: got a value of type {type(value).__name__}; expected a str"
                )
        if self.username and not self.password:
            raise ConfigError(
                f"Password: got an empty password for Username={self.username!r}; "
                "expected both Username and Password for SASL, or neither"
            )
        if self.password and not self.username:
            raise ConfigError(
                "Username: got an empty username with a Password set; "
                "expected both Username and Password for SASL, or neither"
            )
        if self.sasl_mechanism not in SASL_MECHANISMS:
            raise ConfigError(
                f"SaslMechanism: got {self.sasl_mechanism!r}; expected one of "
                + ", ".join(repr(m) for m in SASL_MECHANISMS)
            )
        if self.ca_file and not os.access(self.ca_file, os.R_OK):
            raise ConfigError(
                f"CaFile: got {self.ca_file!r}; expected a readable PEM file of CA certificates"
            )

    def librdkafka(self) -> dict[str, str]:
        """The librdkafka settings for this security setup."""
        sasl, tls = bool(self.username), bool(self.ca_file)
        protocol = {
            (False, False): "PLAINTEXT",
            (True, False): "SASL_PLAINTEXT",
            (False, True): "SSL",
            (True, True): "SASL_SSL",
        }[(sasl, tls)]
        settings = {"security.protocol": protocol}
        if sasl:
            settings |= {
                "sasl.mechanism": self.sasl_mechanism,
                "sasl.username": self.username,
                "sasl.password": self.password,
            }
        if tls:
            # Verification stays on: go-queue's InsecureSkipVerify is not carried over.
            settings |= {
                "ssl.ca.location": self.ca_file,
                "enable.ssl.certificate.verification": "true",
                "ssl.endpoint.identification.algorithm": "https",
            }
        return settings


def clipped_client_id(value: str) -> str:
    """A client id zeroqueue makes up, cut where librdkafka would not cut a character (_checks)."""
    if value.isascii():
        return value
    return value.encode("utf-8", "replace")[:MAX_CLIENT_ID_BYTES].decode("utf-8", "ignore")


def client_settings(
    brokers: Sequence[str] | str,
    security: Security | None = None,
    *,
    client_id: str = "",
    overrides: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Settings every zeroqueue client starts from; ``overrides`` win over ours."""
    servers = brokers if isinstance(brokers, str) else ",".join(brokers)
    if not servers.strip():
        raise ConfigError("Brokers: got an empty list; expected at least one host:port")
    settings: dict[str, Any] = {
        "bootstrap.servers": servers,
        "logger": KAFKA_LOGGER,
    }
    if client_id:
        settings["client.id"] = client_id
    settings |= (security or Security()).librdkafka()
    if overrides:
        settings |= dict(overrides)
        # Every client's settings pass here, the admin helpers' too: a client id
        # librdkafka would cut mid-character makes every poll of that client raise.
        override_id = overrides.get("client.id")
        if isinstance(override_id, str):
            check_client_id("kafka_config['client.id']", override_id)
    return settings


#: What the cluster refused: the SASL login, the broker's certificate, or the TLS
#: handshake for another reason.
Refusal = Literal["sasl", "certificate", "tls"]

_UNVERIFIED_CERTIFICATE = "certificate verify failed"
_TLS_HANDSHAKE_FAILED = "SSL handshake failed"
# What was refused, and what to fix, in zeroqueue's setting names.
_REFUSALS: dict[Refusal, tuple[str, str]] = {
    "sasl": (
        "the broker refused the SASL login",
        "check Username/Password (username/password) and that SaslMechanism/sasl_mechanism"
        " (sasl.mechanism) is enabled for that user on the listener Brokers names",
    ),
    "certificate": (
        "the broker's certificate did not verify against CaFile/ca_file (ssl.ca.location)",
        "it must be signed by a CA in that file and name the host in Brokers",
    ),
    "tls": (
        "the TLS handshake failed",
        "check that Brokers names the broker's TLS listener (SSL or SASL_SSL) and that"
        " CaFile/ca_file (ssl.ca.location) holds the CA that signed its certificate",
    ),
}


def refusal_of(error: KafkaError) -> Refusal | None:
    """What the cluster refused, when ``error`` says it refused this client; else None.

    These failures repeat on every retry, so a client may give up at the first
    one. What librdkafka 2.16 reports against Apache Kafka 4: a wrong password
    or user is ``_AUTHENTICATION`` ("SASL authentication error: Authentication
    failed ..."), as is SASL to a listener without it; a CA that did not sign the
    broker's certificate, or a host name it does not name, is ``_SSL`` "SSL
    handshake failed: ...certificate verify failed...". Some builds word that
    without "SSL handshake failed", so the words count whatever the code. TLS to
    a plaintext listener is only ``_TRANSPORT`` "Disconnected" (with "connecting
    to a PLAINTEXT broker listener?"), which a broker closing connections while
    it restarts may cause too, so that is left to the caller's timeout.
    """
    text = error.str()
    if error.code() == KafkaError._AUTHENTICATION:
        return "sasl"
    if _UNVERIFIED_CERTIFICATE in text:
        return "certificate"
    if error.code() == KafkaError._SSL and _TLS_HANDSHAKE_FAILED in text:
        return "tls"
    return None


def refusal_words(refusal: Refusal) -> tuple[str, str]:
    """What was refused and what to fix, naming zeroqueue's settings."""
    return _REFUSALS[refusal]


def refusal_advice(refusal: Refusal | None) -> str:
    """``; <what was refused>: <what to fix>``, or '' for no refusal."""
    if refusal is None:
        return ""
    what, fix = _REFUSALS[refusal]
    return f"; {what}: {fix}"


class ClientErrors:
    """Remembers why a client cannot reach the cluster, to name it in our errors.

    librdkafka reports connection trouble through ``error_cb`` only; without
    this the user would read "transport failure" and never "certificate verify
    failed". A later "N/M brokers are down" does not hide a more specific cause.
    The hint says how old the error is: a long-lived client may quote one from
    an outage that has since passed.
    """

    def __init__(self) -> None:
        self.last = ""
        self._last_refusal: Refusal | None = None
        self._at = 0.0
        #: The latest error that says the cluster refused this client (see
        #: :func:`refusal_of`), and what it refused; kept whatever comes after.
        self.refused: KafkaError | None = None
        self.refusal: Refusal | None = None

    def record(self, error: KafkaError) -> None:
        """The ``error_cb`` to give librdkafka."""
        refusal = refusal_of(error)
        if refusal is not None:
            self.refused, self.refusal = error, refusal
        if error.code() != KafkaError._ALL_BROKERS_DOWN or not self.last:
            self.last = error.str()
            self._last_refusal = refusal
            self._at = time.monotonic()

    def hint(self) -> str:
        """`` (last client error, 3s ago: ...)`` or ''."""
        if not self.last:
            return ""
        # librdkafka's own advice, where it gives any, names its properties: we
        # name ours (librdkafka words a certificate failure two ways, and only one
        # of them points at the CA setting).
        advice = refusal_advice(self._last_refusal)
        return f" (last client error, {time.monotonic() - self._at:.0f}s ago: {self.last}{advice})"


def split_brokers(value: Any) -> Any:
    """``"a:9092,b:9092"`` as a list: a common way to pass brokers through one variable."""
    if isinstance(value, str):
        return [part.strip() for part in value.split(",") if part.strip()]
    return value


def check_brokers(value: list[str]) -> list[str]:
    """``value`` if every entry is ``host:port``; ValueError saying what is expected."""
    if not value:
        raise ValueError("at least one host:port")
    for broker in value:
        if broker.startswith("memory://"):
            continue  # an in-memory broker of zeroqueue.testing (see _kafka.backends)
        host, sep, port = broker.rpartition(":")
        if not sep or not host or not port.isdigit():
            raise ValueError(f"host:port entries; {broker!r} is not")
    return value


#: A config field of brokers: a list of ``host:port``, or one comma-separated string.
Brokers = Annotated[list[str], BeforeValidator(split_brokers), AfterValidator(check_brokers)]
