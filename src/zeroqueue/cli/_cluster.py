"""How a command picks its cluster: ``--brokers``, or ``-f config.yaml`` and a section."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import click

from zeroqueue.errors import ZeroQueueError
from zeroqueue.kq.config import KqConf

__all__ = ["Cluster", "cluster_of", "cluster_options"]

F = TypeVar("F", bound=Callable[..., Any])


@dataclass(frozen=True)
class Cluster:
    """Brokers and the librdkafka settings that reach them (SASL, TLS)."""

    brokers: list[str]
    kafka_config: dict[str, Any]
    conf: KqConf | None = None


def cluster_options(command: F) -> F:
    """``--brokers``, ``-f/--file`` and ``--section``: see :func:`cluster_of`."""
    command = click.option(
        "--section",
        default="KqConsumerConf",
        show_default=True,
        help="The KqConf section of the config file.",
    )(command)
    command = click.option(
        "-f",
        "--file",
        "config_file",
        type=click.Path(dir_okay=False, exists=True),
        help="A go-zero config file: its KqConf section names the cluster (and the topics).",
    )(command)
    return click.option("--brokers", default="", help="Comma-separated host:port of the cluster.")(
        command
    )


def cluster_of(brokers: str, config_file: str | None, section: str) -> Cluster:
    """The cluster the options name; a clear error when they name none."""
    if config_file:
        try:
            conf = KqConf.load(config_file, key=section)
        except ZeroQueueError as exc:
            raise click.ClickException(str(exc)) from exc
        settings = conf.security().librdkafka()
        return Cluster(list(conf.brokers), settings, conf)
    listed = [b.strip() for b in brokers.split(",") if b.strip()]
    if not listed:
        raise click.UsageError("name the cluster: --brokers host:port, or -f config.yaml")
    return Cluster(listed, {})
