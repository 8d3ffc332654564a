"""The main commands: ``run``, ``dev``, ``demo``, ``kafka-libs``."""

from __future__ import annotations

import signal
import sys
from types import FrameType

import click

from zeroqueue._demo import DemoSettings, run_demo
from zeroqueue.embedded import (
    KAFKA_VERSION,
    BrokerProcess,
    EmbeddedBroker,
    KafkaBroker,
    fetch_kafka_libs,
)
from zeroqueue.errors import ZeroQueueError

__all__ = ["main"]


def _raise_interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


@click.group()
@click.version_option(package_name="zeroqueue")
def main() -> None:
    """zeroqueue: go-queue for Python services on Kafka."""


@main.command()
@click.option(
    "--port", default=9092, show_default=True, help="Port to listen on; 0 picks a free one."
)
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option(
    "--kafka",
    "apache_kafka",
    is_flag=True,
    help="Run Apache Kafka itself (needs Java 17 and its jars: see `zeroqueue kafka-libs`) "
    "instead of the embedded Tansu broker.",
)
def dev(port: int, host: str, apache_kafka: bool) -> None:
    """Run a broker in the foreground until Ctrl-C: embedded Tansu, or Apache Kafka.

    Tansu keeps messages in memory only; Apache Kafka keeps them in a temporary
    directory removed on exit. Both are for development and tests, never production.
    """
    broker: BrokerProcess = (
        KafkaBroker(port=port, host=host) if apache_kafka else EmbeddedBroker(port=port, host=host)
    )
    try:
        broker.start()
    except ZeroQueueError as exc:
        raise click.ClickException(str(exc)) from exc
    what = (
        "Apache Kafka (one KRaft node)"
        if apache_kafka
        else "embedded Kafka broker (Tansu, in memory)"
    )
    click.echo(f"{what} listening on {broker.bootstrap_servers}")
    click.echo(f"  Brokers: [{broker.bootstrap_servers}]   log: {broker.log_path}")
    click.echo("  press Ctrl-C to stop", err=True)
    previous = signal.signal(signal.SIGTERM, _raise_interrupt)
    status: int | None = None
    try:
        status = broker.wait()
    except KeyboardInterrupt:
        pass
    finally:
        signal.signal(signal.SIGTERM, previous)
        log_tail = "" if status is None else broker.log_tail()
        broker.stop()
    if status is not None:
        raise click.ClickException(f"the broker exited unexpectedly (status {status}):\n{log_tail}")
    click.echo("broker stopped")


@main.command()
@click.argument("service")
@click.option(
    "-f",
    "--file",
    "config_file",
    required=True,
    type=click.Path(dir_okay=False),
    help="The config file (YAML, JSON or TOML), as go-zero's -f etc/config.yaml.",
)
@click.option(
    "--grace",
    default=30.0,
    show_default=True,
    help="Seconds each service may take to stop on SIGINT/SIGTERM.",
)
def run(service: str, config_file: str, grace: float) -> None:
    """Run SERVICE (a module name or path) with its config file until SIGINT/SIGTERM.

    The module provides ``Config`` (the config model) and ``setup(conf, group)``,
    which adds its services (Queues, an AsgiServer, ...) to a ServiceGroup. Exit
    status: 0 stopped cleanly, 1 a service failed, 2 something did not stop in
    time (or a Pusher could not deliver), 130 a second signal.
    """
    from zeroqueue.service import run_service  # noqa: PLC0415 - only this command needs it

    try:
        code = run_service(service, config_file, grace=grace)
    except ZeroQueueError as exc:
        raise click.ClickException(str(exc)) from exc
    sys.exit(int(code))


@main.command("kafka-libs")
@click.option(
    "--version",
    "kafka_version",
    default=KAFKA_VERSION,
    show_default=True,
    help="The Apache Kafka release to fetch.",
)
def kafka_libs(kafka_version: str) -> None:
    """Fetch Apache Kafka's jars from Maven Central (once) for KafkaBroker and `dev --kafka`.

    Needs Maven and Java 17. Prints the directory; a second run downloads nothing.
    """
    try:
        path = fetch_kafka_libs(kafka_version)
    except ZeroQueueError as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(str(path))


@main.command()
@click.option("--logins", default=3_000, show_default=True, help="Logins to post.")
@click.option("--users", default=200, show_default=True, help="Distinct users (message keys).")
@click.option("--clients", default=8, show_default=True, help="Concurrent HTTP clients.")
@click.option("--partitions", default=8, show_default=True, help="Partitions of the topic.")
@click.option(
    "--fail-every",
    default=1_000,
    show_default=True,
    help="The consumer fails the first try of every N-th store, to show retries (0: never).",
)
@click.option(
    "--brokers",
    default="",
    help="Comma-separated host:port of a Kafka cluster to use instead of the embedded broker.",
)
@click.option(
    "--service",
    default="examples/login_log",
    show_default=True,
    help="The login-log example service to run (a clone's examples/login_log).",
)
def demo(
    *,
    logins: int,
    users: int,
    clients: int,
    partitions: int,
    fail_every: int,
    brokers: str,
    service: str,
) -> None:
    """Run go-zero's login-log service and drive it over HTTP, then report.

    Starts the example service (an HTTP API that pushes login logs, a Queue that
    stores them) on an embedded Kafka-compatible broker (or on --brokers), posts
    logins from concurrent clients, reads them back, stops it as SIGTERM would, and
    checks that every login was stored, in order per user, and committed. Exits
    with status 1 when a check fails.
    """
    for name, value in (
        ("logins", logins),
        ("users", users),
        ("clients", clients),
        ("partitions", partitions),
    ):
        if value < 1:
            raise click.BadParameter(f"got {value}; expected >= 1", param_hint=f"--{name}")
    settings = DemoSettings(
        logins=logins,
        users=users,
        clients=clients,
        partitions=partitions,
        fail_every=max(0, fail_every),
        brokers=[b.strip() for b in brokers.split(",") if b.strip()],
        service=service,
    )
    try:
        report = run_demo(settings)
    except ZeroQueueError as exc:
        raise click.ClickException(str(exc)) from exc
    if not report.ok:
        sys.exit(1)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
