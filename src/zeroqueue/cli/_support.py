"""What the cluster commands share: reaching the cluster, naming what is missing, printing."""

from __future__ import annotations

import difflib
import json
import logging
import sys
from collections.abc import Callable, Iterable, Sequence
from typing import Any, TypeVar

import click
from click.core import ParameterSource

from zeroqueue import admin
from zeroqueue._kafka.settings import KAFKA_LOGGER
from zeroqueue.cli._cluster import Cluster, cluster_of
from zeroqueue.cli._inspect import group_ids, topic_partitions
from zeroqueue.errors import AuthenticationError, BrokerUnavailableError, ZeroQueueError

__all__ = [
    "connect",
    "emit_json",
    "fail",
    "json_option",
    "need_group",
    "need_topic",
    "parse_pairs",
    "print_table",
    "reach",
    "timeout_option",
]

F = TypeVar("F", bound=Callable[..., Any])


def timeout_option(command: F) -> F:
    """``--timeout``: how long to wait for the cluster before saying it is not there."""
    return click.option(
        "--timeout",
        default=5.0,
        show_default=True,
        type=click.FloatRange(min=0.1),
        help="Seconds to wait for a broker to answer.",
    )(command)


def json_option(command: F) -> F:
    """``--json``: machine-readable output on stdout."""
    return click.option("--json", "as_json", is_flag=True, help="JSON output, for scripts.")(
        command
    )


def fail(exc: ZeroQueueError) -> click.ClickException:
    """``exc`` as the one-line error click prints (exit status 1)."""
    return click.ClickException(str(exc))


def connect(brokers: str, config_file: str | None, section: str, timeout: float) -> Cluster:
    """The cluster the options name, once one of its brokers answered.

    Raises a ClickException naming the addresses and what to do when none
    answers within ``timeout`` seconds.
    """
    if not logging.getLogger().handlers:
        # librdkafka's retries ("Connect to ... failed") would bury the one line that
        # says what is wrong; a program that set up logging still gets them.
        KAFKA_LOGGER.addHandler(logging.NullHandler())
        KAFKA_LOGGER.propagate = False
    cluster = cluster_of(brokers, config_file, section)
    try:
        admin.wait_for_metadata(cluster.brokers, timeout=timeout, kafka_config=cluster.kafka_config)
    except AuthenticationError as exc:
        raise fail(exc) from exc
    except BrokerUnavailableError as exc:
        where = ", ".join(cluster.brokers)
        source = f"Brokers of {config_file} [{section}]" if config_file else "--brokers"
        raise click.ClickException(
            f"no Kafka broker answered at {where} within {timeout:g}s. Is one running there? "
            f"Start one with `zeroqueue dev` (listens on 127.0.0.1:9092), or point {source} "
            "at your cluster."
        ) from exc
    return cluster


def reach(ctx: click.Context) -> tuple[Cluster, float]:
    """:func:`connect` for a subcommand, with what its group was given for what it was not.

    ``zeroqueue topics --brokers X create T`` and ``zeroqueue topics create T
    --brokers X`` mean the same.
    """
    values: dict[str, Any] = {}
    for name in ("brokers", "config_file", "section", "timeout"):
        values[name] = ctx.params[name]
        parent = ctx.parent
        if (
            parent is not None
            and ctx.get_parameter_source(name) in (None, ParameterSource.DEFAULT)
            and parent.get_parameter_source(name) not in (None, ParameterSource.DEFAULT)
        ):
            values[name] = parent.params[name]
    timeout = float(values["timeout"])
    return connect(values["brokers"], values["config_file"], values["section"], timeout), timeout


def _close(name: str, names: Iterable[str]) -> list[str]:
    return difflib.get_close_matches(name, sorted(names), n=3, cutoff=0.6)


def _missing(what: str, name: str, names: Sequence[str], cluster: Cluster, lister: str) -> str:
    text = f"{what} {name!r} does not exist on {', '.join(cluster.brokers)}"
    close = _close(name, names)
    if close:
        return text + f"; did you mean {' or '.join(map(repr, close))}?"
    if not names:
        return text + f" (it has no {what}s yet)"
    return text + f"; `{lister}` lists the {len(names)} there are"


def need_topic(cluster: Cluster, topic: str, timeout: float) -> list[int]:
    """The partitions of ``topic``; an error naming close names when it does not exist."""
    try:
        found = topic_partitions(cluster.brokers, cluster.kafka_config, timeout)
    except ZeroQueueError as exc:
        raise fail(exc) from exc
    if topic not in found:
        shown = [name for name in found if not name.startswith("__")]
        text = _missing("topic", topic, shown, cluster, "zeroqueue topics")
        if not _close(topic, shown):
            text += f"; create it with `zeroqueue topics create {topic}`"
        raise click.ClickException(text)
    return found[topic]


def need_group(cluster: Cluster, group: str, timeout: float) -> None:
    """Nothing, when ``group`` exists; an error naming close names when it does not."""
    try:
        groups = group_ids(cluster.brokers, cluster.kafka_config, timeout)
    except ZeroQueueError as exc:
        raise fail(exc) from exc
    if group not in groups:
        raise click.ClickException(
            _missing("group", group, sorted(groups), cluster, "zeroqueue groups")
        )


def parse_pairs(pairs: Sequence[str], option: str) -> list[tuple[str, str]]:
    """``k=v`` texts as pairs, in order; a clear error for one without ``=``."""
    parsed = []
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or not name:
            raise click.BadParameter(f"got {pair!r}; expected NAME=VALUE", param_hint=option)
        parsed.append((name, value))
    return parsed


def emit_json(value: Any) -> None:
    """``value`` as one line of JSON on stdout."""
    click.echo(json.dumps(value, ensure_ascii=False, default=str))


def print_table(headers: Sequence[str], rows: Sequence[Sequence[Any]], indent: int = 0) -> None:
    """Rows in aligned columns under a bold header (plain text when not a terminal)."""
    texts = [[_cell(value) for value in row] for row in rows]
    widths = [
        max([len(header), *(len(row[i]) for row in texts)]) for i, header in enumerate(headers)
    ]
    pad = " " * indent

    def line(cells: Sequence[str]) -> str:
        return pad + "  ".join(c.ljust(w) for c, w in zip(cells, widths, strict=True)).rstrip()

    click.secho(line(headers), bold=True)
    for row in texts:
        click.echo(line(row))


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, (list, tuple)):
        return ",".join(map(str, value)) or "-"
    return str(value)


def stderr_is_terminal() -> bool:
    """Whether progress bars and hints on stderr reach a person."""
    return sys.stderr.isatty()
