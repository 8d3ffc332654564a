"""The ``zeroqueue`` command line: ``dev``, ``demo``, ``kafka-libs``."""

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
@click.option("--messages", default=20_000, show_default=True, help="Login events to push.")
@click.option("--users", default=500, show_default=True, help="Distinct users (message keys).")
@click.option("--partitions", default=8, show_default=True, help="Partitions of the topic.")
@click.option("--processors", default=8, show_default=True, help="The Queue's Processors.")
@click.option(
    "--fail-every",
    default=5_000,
    show_default=True,
    help="The handler fails the first try of every N-th event, to show retries.",
)
@click.option(
    "--brokers",
    default="",
    help="Comma-separated host:port of a Kafka cluster to use instead of the embedded broker.",
)
def demo(
    *, messages: int, users: int, partitions: int, processors: int, fail_every: int, brokers: str
) -> None:
    """Push login events with a Pusher and consume them with a Queue, then report.

    Runs go-zero's login-log example on an embedded Kafka-compatible broker (or on
    --brokers) and checks that every event was handled, in order per user, and
    committed. Exits with status 1 when a check fails.
    """
    for name, value in (("messages", messages), ("users", users), ("partitions", partitions)):
        if value < 1:
            raise click.BadParameter(f"got {value}; expected >= 1", param_hint=f"--{name}")
    settings = DemoSettings(
        messages=messages,
        users=users,
        partitions=partitions,
        processors=processors,
        fail_every=max(1, fail_every),
        brokers=[b.strip() for b in brokers.split(",") if b.strip()],
    )
    try:
        report = run_demo(settings)
    except ZeroQueueError as exc:
        raise click.ClickException(str(exc)) from exc
    if not report.ok:
        sys.exit(1)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
