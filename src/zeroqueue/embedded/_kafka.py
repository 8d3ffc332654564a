"""KafkaBroker: a single-node Apache Kafka (KRaft) on free ports of 127.0.0.1."""

from __future__ import annotations

import base64
import os
import shutil
import subprocess
import tempfile
import uuid
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

from zeroqueue._process import free_port
from zeroqueue.embedded._base import BrokerProcess
from zeroqueue.embedded._kafka_libs import find_java, find_kafka_libs
from zeroqueue.errors import EmbeddedBrokerError

__all__ = ["KafkaBroker", "Protocol"]

#: A listener's security protocol.
Protocol = Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"]

#: The SASL mechanisms a broker with users accepts, for every user.
SASL_MECHANISMS = ("PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512")

# Settings of a broker made for development and tests: one node, so every
# replication factor is 1; groups form at once (Kafka waits 3 s for more members
# by default); short session timeouts are allowed (the default floor is 6 s).
_BROKER_DEFAULTS = {
    "num.partitions": "1",
    "offsets.topic.replication.factor": "1",
    "offsets.topic.num.partitions": "10",
    "transaction.state.log.replication.factor": "1",
    "transaction.state.log.min.isr": "1",
    "share.coordinator.state.topic.replication.factor": "1",
    "share.coordinator.state.topic.min.isr": "1",
    "group.initial.rebalance.delay.ms": "0",
    "group.min.session.timeout.ms": "500",
}
_JVM_OPTIONS = (
    "-Xms256m",
    "-Xmx1g",
    "-XX:+UseG1GC",
    "-XX:MaxGCPauseMillis=20",
    "-Djava.awt.headless=true",
)
# The broker's own log goes to stdout, which the log file receives.
_LOG4J2 = """\
status = warn
appender.out.type = Console
appender.out.name = out
appender.out.layout.type = PatternLayout
appender.out.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = info
rootLogger.appenderRef.out.ref = out
logger.state.name = state.change.logger
logger.state.level = warn
logger.request.name = kafka.request.logger
logger.request.level = warn
"""


def _quote_jaas(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


class KafkaBroker(BrokerProcess):
    """A real Apache Kafka broker, one node in KRaft mode (broker and controller).

    For tests and development on a machine with Java 17 and Kafka's jars (see
    :func:`find_kafka_libs`); its data lives in a temporary directory unless
    ``data_dir`` is given, and the process stops with the ``with`` block.
    Clients reach it in plaintext at :attr:`bootstrap_servers`; with ``users``
    and ``tls_certificate`` it also listens with SASL and TLS (see :meth:`listener`).

    Args:
        port: Plaintext client port; ``0`` (the default) picks a free one.
        host: Address to listen on and advertise.
        libs: A directory of Kafka's jars; found by :func:`find_kafka_libs` by default.
        java: The ``java`` to run; ``$JAVA_HOME/bin/java`` or the one on PATH by default.
        data_dir: Keep the broker's data here (formatted on first use, reused after a
            restart); a temporary directory, removed on stop, by default.
        log_path: Where the broker's output goes; a temporary file by default,
            removed after a clean stop.
        users: SASL users (name to password), accepted with PLAIN, SCRAM-SHA-256 and
            SCRAM-SHA-512 on a SASL_PLAINTEXT listener (and SASL_SSL with TLS).
        tls_certificate: PEM certificate chain for an SSL listener (and SASL_SSL).
        tls_key: The certificate's unencrypted PEM private key.
        config: Extra broker settings (``server.properties`` keys), applied last.
        startup_timeout: Seconds to wait until the broker answers metadata requests.

    """

    kind = "Apache Kafka broker"
    log_prefix = "kafka"

    def __init__(
        self,
        *,
        port: int = 0,
        host: str = "127.0.0.1",
        libs: str | os.PathLike[str] | None = None,
        java: str | os.PathLike[str] | None = None,
        data_dir: str | os.PathLike[str] | None = None,
        log_path: str | Path | None = None,
        users: Mapping[str, str] | None = None,
        tls_certificate: str | os.PathLike[str] | None = None,
        tls_key: str | os.PathLike[str] | None = None,
        config: Mapping[str, str] | None = None,
        startup_timeout: float = 90.0,
    ) -> None:
        super().__init__(port=port, host=host, log_path=log_path, startup_timeout=startup_timeout)
        if (tls_certificate is None) != (tls_key is None):
            raise EmbeddedBrokerError(
                "tls_certificate and tls_key: got only one; expected both (a PEM certificate"
                " chain and its private key) or neither"
            )
        self._libs_arg = libs
        self._java_arg = java
        self._data_dir = Path(data_dir) if data_dir is not None else None
        self._users = dict(users or {})
        self._tls = (
            (Path(tls_certificate), Path(tls_key))
            if tls_certificate is not None and tls_key is not None
            else None
        )
        self._config = dict(config or {})
        self._java = ""
        self._classpath = ""
        self._work: Path | None = None
        # Ports other than the plaintext one, chosen once: a restart keeps them all.
        self._ports: dict[str, int] = {}

    # -- what clients need -----------------------------------------------------------

    @property
    def protocols(self) -> tuple[Protocol, ...]:
        """The security protocols this broker listens with."""
        found: list[Protocol] = ["PLAINTEXT"]
        if self._users:
            found.append("SASL_PLAINTEXT")
        if self._tls is not None:
            found.append("SSL")
            if self._users:
                found.append("SASL_SSL")
        return tuple(found)

    def listener(self, protocol: Protocol = "PLAINTEXT") -> str:
        """``host:port`` of the listener that speaks ``protocol``.

        Raises:
            EmbeddedBrokerError: the broker does not listen with ``protocol``, or
                has not been started.

        """
        if protocol not in self.protocols:
            raise EmbeddedBrokerError(
                f"protocol: got {protocol!r}; this broker listens with "
                + ", ".join(self.protocols)
                + " (SASL needs users=..., SSL needs tls_certificate/tls_key)"
            )
        if protocol == "PLAINTEXT":
            return self.bootstrap_servers
        if protocol not in self._ports:
            raise EmbeddedBrokerError(f"the {self.kind} has not been started")
        return f"{self.host}:{self._ports[protocol]}"

    @property
    def data_dir(self) -> Path | None:
        """Where the broker keeps its data while it runs (or for good, if given)."""
        if self._data_dir is not None:
            return self._data_dir
        return self._work / "data" if self._work is not None else None

    # -- BrokerProcess ---------------------------------------------------------------

    def _prepare(self) -> None:
        self._java = find_java(self._java_arg)
        libs = find_kafka_libs(self._libs_arg)
        self._classpath = os.path.join(str(libs), "*")

    def _command(self, port: int) -> tuple[list[str], dict[str, str] | None]:
        if self._work is None:
            self._work = Path(tempfile.mkdtemp(prefix="zeroqueue-kafka-"))
        work = self._work
        names = ["CONTROLLER", *(p for p in self.protocols if p != "PLAINTEXT")]
        if self._port != port:  # a fresh start, not a restart: new ports
            self._ports = {name: free_port(self.host) for name in names}
        data = self.data_dir
        assert data is not None
        (work / "log4j2.properties").write_text(_LOG4J2)
        properties = work / "server.properties"
        properties.write_text(self._properties(port, data))
        if not (data / "meta.properties").exists():
            self._format(properties)
        argv = [
            self._java,
            *_JVM_OPTIONS,
            f"-Dlog4j2.configurationFile={work / 'log4j2.properties'}",
            "-cp",
            self._classpath,
            "kafka.Kafka",
            str(properties),
        ]
        return argv, None

    def _properties(self, port: int, data: Path) -> str:
        host = self.host
        listeners = {"PLAINTEXT": port, **self._ports}
        settings: dict[str, str] = {
            "process.roles": "broker,controller",
            "node.id": "1",
            "controller.quorum.voters": f"1@{host}:{self._ports['CONTROLLER']}",
            "controller.listener.names": "CONTROLLER",
            "inter.broker.listener.name": "PLAINTEXT",
            "listeners": ",".join(f"{name}://{host}:{p}" for name, p in listeners.items()),
            "advertised.listeners": ",".join(
                f"{name}://{host}:{p}" for name, p in listeners.items() if name != "CONTROLLER"
            ),
            "listener.security.protocol.map": ",".join(
                f"{name}:{'PLAINTEXT' if name == 'CONTROLLER' else name}" for name in listeners
            ),
            "log.dirs": str(data),
            **_BROKER_DEFAULTS,
        }
        if self._users:
            settings["sasl.enabled.mechanisms"] = ",".join(SASL_MECHANISMS)
            plain = " ".join(
                f"user_{name}={_quote_jaas(password)}" for name, password in self._users.items()
            )
            for listener in ("sasl_plaintext", "sasl_ssl"):
                prefix = f"listener.name.{listener}"
                settings[f"{prefix}.plain.sasl.jaas.config"] = (
                    f"org.apache.kafka.common.security.plain.PlainLoginModule required {plain};"
                )
                for mechanism in ("scram-sha-256", "scram-sha-512"):
                    settings[f"{prefix}.{mechanism}.sasl.jaas.config"] = (
                        "org.apache.kafka.common.security.scram.ScramLoginModule required;"
                    )
        if self._tls is not None:
            assert self._work is not None
            keystore = self._work / "keystore.pem"
            keystore.write_text(self._keystore())
            keystore.chmod(0o600)
            settings["ssl.keystore.type"] = "PEM"
            settings["ssl.keystore.location"] = str(keystore)
        settings |= self._config
        return "".join(f"{key}={_escape(value)}\n" for key, value in settings.items())

    def _keystore(self) -> str:
        """The PEM key and certificate chain, as Kafka's PEM keystore wants them."""
        assert self._tls is not None
        certificate, key = self._tls
        try:
            key_text, chain = key.read_text(), certificate.read_text()
        except OSError as exc:
            raise EmbeddedBrokerError(f"cannot read the TLS files: {exc}") from exc
        if "-----BEGIN PRIVATE KEY-----" not in key_text:
            raise EmbeddedBrokerError(
                f"tls_key: {str(key)!r} is not an unencrypted PKCS#8 PEM key (BEGIN PRIVATE"
                " KEY), the only kind Kafka reads; convert it with"
                " `openssl pkcs8 -topk8 -nocrypt -in KEY -out KEY.pkcs8`"
            )
        if "-----BEGIN CERTIFICATE-----" not in chain:
            raise EmbeddedBrokerError(
                f"tls_certificate: {str(certificate)!r} holds no PEM certificate"
            )
        return key_text.rstrip() + "\n" + chain

    def _format(self, properties: Path) -> None:
        """Format the data directory (KRaft needs it), adding the SCRAM users."""
        data = self.data_dir
        assert data is not None
        cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        scram = [
            argument
            for name, password in self._users.items()
            for mechanism in ("SCRAM-SHA-256", "SCRAM-SHA-512")
            for argument in ("--add-scram", f"{mechanism}=[name={name},password={password}]")
        ]
        command = [
            self._java,
            "-cp",
            self._classpath,
            "kafka.tools.StorageTool",
            "format",
            # One form: an id may begin with "-", which would read as an option.
            f"--cluster-id={cluster_id}",
            "--config",
            str(properties),
            "--ignore-formatted",
            *scram,
        ]
        result = subprocess.run(command, capture_output=True, text=True, check=False, timeout=120)
        if result.returncode != 0:
            output = "\n".join((result.stdout + result.stderr).strip().splitlines()[-10:])
            raise EmbeddedBrokerError(f"formatting Kafka's storage in {data} failed:\n{output}")

    def _cleanup(self) -> None:
        if self._work is not None:
            shutil.rmtree(self._work, ignore_errors=True)
            self._work = None

    def client_config(
        self,
        protocol: Protocol = "PLAINTEXT",
        *,
        username: str = "",
        password: str = "",
        mechanism: str = "SCRAM-SHA-512",
        ca_file: str | os.PathLike[str] | None = None,
    ) -> dict[str, Any]:
        """Settings for a raw librdkafka client of :meth:`listener` ``(protocol)``."""
        settings: dict[str, Any] = {
            "bootstrap.servers": self.listener(protocol),
            "security.protocol": protocol,
        }
        if protocol.startswith("SASL"):
            settings |= {
                "sasl.mechanism": mechanism,
                "sasl.username": username,
                "sasl.password": password,
            }
        if protocol.endswith("SSL") and ca_file is not None:
            settings["ssl.ca.location"] = os.fspath(ca_file)
        return settings


def _escape(value: str) -> str:
    # server.properties is a Java properties file: a backslash escapes.
    return value.replace("\\", "\\\\")
