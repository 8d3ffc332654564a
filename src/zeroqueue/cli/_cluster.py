"""How a command picks its cluster: ``--brokers``, or ``-f config.yaml`` and a section."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import click

from zeroqueue._kafka.settings import Security
from zeroqueue.conf import load
from zeroqueue.errors import ZeroQueueError
from zeroqueue.kq.config import KqConf
from zeroqueue.kq.pusher_conf import PusherConf

__all__ = ["Cluster", "cluster_of", "cluster_options"]

F = TypeVar("F", bound=Callable[..., Any])


@dataclass(frozen=True)
class Cluster:
    """Brokers and the librdkafka settings that reach them (SASL, TLS)."""

    brokers: list[str]
    kafka_config: dict[str, Any]
    #: The section the brokers came from: a KqConf, or a PusherConf for a
    #: ``KqPusherConf`` section that names no Group.
    conf: KqConf | PusherConf | None = None


def cluster_options(command: F) -> F:
    """``--brokers``, ``-f/--file`` and ``--section``: see :func:`cluster_of`."""
    command = click.option(
        "--section",
        default="KqConsumerConf",
        show_default=True,
        help="The KqConf (or KqPusherConf) section of the config file.",
    )(command)
    command = click.option(
        "-f",
        "--file",
        "config_file",
        type=click.Path(dir_okay=False, exists=True),
        help="A go-zero config file: its KqConf section names the cluster (and the topics).",
    )(command)
    return click.option(
        "--brokers", "-b", default="", help="Comma-separated host:port of the cluster."
    )(command)


def cluster_of(brokers: str, config_file: str | None, section: str) -> Cluster:
    """The cluster the options name; a clear error when they name none."""
    if config_file:
        conf = _section(config_file, section)
        security = Security(
            username=conf.username,
            password=conf.password,
            sasl_mechanism=conf.sasl_mechanism,
            ca_file=conf.ca_file,
        )
        return Cluster(list(conf.brokers), security.librdkafka(), conf)
    listed = [b.strip() for b in brokers.split(",") if b.strip()]
    if not listed:
        raise click.UsageError("name the cluster: --brokers host:port, or -f config.yaml")
    return Cluster(listed, {})


def _section(config_file: str, section: str) -> KqConf | PusherConf:
    """The section as a KqConf; one without a Group (a KqPusherConf) as a PusherConf."""
    try:
        return KqConf.load(config_file, key=section)
    except ZeroQueueError as exc:
        if f"{section}.Group: missing" not in str(exc):
            raise click.ClickException(str(exc)) from exc
        try:
            return load(config_file, PusherConf, key=section)
        except ZeroQueueError as second:
            raise click.ClickException(str(second)) from second
