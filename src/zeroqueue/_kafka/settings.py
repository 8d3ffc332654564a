"""Build librdkafka settings shared by producers, consumers and admin clients."""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from confluent_kafka import KafkaError

from zeroqueue.errors import ConfigError

__all__ = ["SASL_MECHANISMS", "ClientErrors", "SaslMechanism", "Security", "client_settings"]

SaslMechanism = Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"]
SASL_MECHANISMS: tuple[SaslMechanism, ...] = ("PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512")

#: librdkafka's own log lines (connection failures, rebalances) go to this logger.
KAFKA_LOGGER = logging.getLogger("zeroqueue.kafka")


@dataclass(frozen=True)
class Security:
    """How a client authenticates and encrypts: SASL user/password and a TLS CA file.

    ``username`` turns SASL on (``sasl_mechanism`` PLAIN by default); ``ca_file``
    turns TLS on with certificate and host name verification.
    """

    username: str = ""
    password: str = ""
    sasl_mechanism: SaslMechanism = "PLAIN"
    ca_file: str = ""

    def __post_init__(self) -> None:
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
    return settings


_UNVERIFIED_CERTIFICATE = "certificate verify failed"
_UNVERIFIED_CERTIFICATE_ADVICE = (
    "; the broker's certificate did not verify against CaFile/ca_file (ssl.ca.location):"
    " it must be signed by a CA in that file and name the host in Brokers"
)


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
        self._at = 0.0

    def record(self, error: KafkaError) -> None:
        """The ``error_cb`` to give librdkafka."""
        if error.code() != KafkaError._ALL_BROKERS_DOWN or not self.last:
            self.last = error.str()
            self._at = time.monotonic()

    def hint(self) -> str:
        """`` (last client error, 3s ago: ...)`` or ''."""
        if not self.last:
            return ""
        # librdkafka words this failure two ways and only one of them points at
        # the CA setting, so we name ours whichever one came last.
        advice = _UNVERIFIED_CERTIFICATE_ADVICE if _UNVERIFIED_CERTIFICATE in self.last else ""
        return f" (last client error, {time.monotonic() - self._at:.0f}s ago: {self.last}{advice})"
