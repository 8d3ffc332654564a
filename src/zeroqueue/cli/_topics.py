"""``zeroqueue topics``: list, create and describe topics."""

from __future__ import annotations

from dataclasses import asdict

import click

from zeroqueue import admin
from zeroqueue.cli._cluster import cluster_options
from zeroqueue.cli._inspect import describe_topic, topic_partitions
from zeroqueue.cli._support import (
    connect,
    emit_json,
    fail,
    json_option,
    need_topic,
    parse_pairs,
    print_table,
    reach,
    timeout_option,
)
from zeroqueue.errors import ZeroQueueError

__all__ = ["topics"]


@click.group(invoke_without_command=True)
@cluster_options
@click.option("--all", "show_all", is_flag=True, help="Internal topics (__consumer_offsets) too.")
@timeout_option
@json_option
@click.pass_context
def topics(
    ctx: click.Context,
    *,
    brokers: str,
    config_file: str | None,
    section: str,
    show_all: bool,
    timeout: float,
    as_json: bool,
) -> None:
    """List the cluster's topics with their partition counts; or create or describe one."""
    if ctx.invoked_subcommand is not None:
        return
    cluster = connect(brokers, config_file, section, timeout)
    try:
        found = topic_partitions(cluster.brokers, cluster.kafka_config, timeout)
    except ZeroQueueError as exc:
        raise fail(exc) from exc
    shown = {n: p for n, p in found.items() if show_all or not n.startswith("__")}
    if as_json:
        emit_json([{"topic": name, "partitions": len(p)} for name, p in shown.items()])
        return
    if not shown:
        click.echo(f"no topics on {', '.join(cluster.brokers)}")
        return
    print_table(["TOPIC", "PARTITIONS"], [[name, len(p)] for name, p in shown.items()])


@topics.command()
@click.argument("name")
@click.option(
    "--partitions", "-p", default=1, show_default=True, type=click.IntRange(min=1), help="How many."
)
@click.option(
    "--replicas",
    "-r",
    default=1,
    show_default=True,
    type=click.IntRange(min=1),
    help="Copies of each partition (at most the number of brokers).",
)
@click.option(
    "--config",
    "-c",
    "settings",
    multiple=True,
    metavar="NAME=VALUE",
    help="A topic setting, e.g. retention.ms=86400000; repeat for more.",
)
@click.option("--exist-ok", is_flag=True, help="A topic of that name already there is no error.")
@cluster_options
@timeout_option
@json_option
@click.pass_context
def create(
    ctx: click.Context,
    *,
    name: str,
    partitions: int,
    replicas: int,
    settings: tuple[str, ...],
    exist_ok: bool,
    brokers: str,
    config_file: str | None,
    section: str,
    timeout: float,
    as_json: bool,
) -> None:
    """Create topic NAME with --partitions partitions."""
    config = dict(parse_pairs(settings, "--config"))
    cluster, timeout = reach(ctx)
    try:
        existing = topic_partitions(cluster.brokers, cluster.kafka_config, timeout)
        if name in existing:
            if not exist_ok:
                raise click.ClickException(
                    f"topic {name!r} already exists, with {len(existing[name])} partitions "
                    "(--exist-ok makes that no error)"
                )
            created = False
        else:
            admin.create_topic(
                cluster.brokers,
                name,
                partitions=partitions,
                replication_factor=replicas,
                config=config,
                timeout=max(timeout, 10.0),
                kafka_config=cluster.kafka_config,
            )
            created = True
        count = len(topic_partitions(cluster.brokers, cluster.kafka_config, timeout)[name])
    except ZeroQueueError as exc:
        raise fail(exc) from exc
    if as_json:
        emit_json({"topic": name, "created": created, "partitions": count})
    elif created:
        click.secho(f"created topic {name} with {count} partitions", fg="green")
    else:
        click.echo(f"topic {name} exists, with {count} partitions")


@topics.command()
@click.argument("name")
@click.option("--all-config", is_flag=True, help="Settings left at the broker default too.")
@cluster_options
@timeout_option
@json_option
@click.pass_context
def describe(
    ctx: click.Context,
    *,
    name: str,
    all_config: bool,
    brokers: str,
    config_file: str | None,
    section: str,
    timeout: float,
    as_json: bool,
) -> None:
    """Show topic NAME: per partition its leader, replicas and watermarks; its settings.

    Messages per partition is high minus low watermark (compacted topics hold fewer).
    """
    cluster, timeout = reach(ctx)
    need_topic(cluster, name, timeout)
    try:
        info = describe_topic(cluster.brokers, cluster.kafka_config, name, timeout)
    except ZeroQueueError as exc:
        raise fail(exc) from exc
    if as_json:
        emit_json(asdict(info))
        return
    total = sum(p.high - p.low for p in info.partitions)
    click.secho(f"{info.name}: {len(info.partitions)} partitions, {total} messages", bold=True)
    print_table(
        ["PARTITION", "LEADER", "REPLICAS", "IN-SYNC", "LOW", "HIGH", "MESSAGES"],
        [
            [p.partition, p.leader, p.replicas, p.isrs, p.low, p.high, p.high - p.low]
            for p in info.partitions
        ],
        indent=2,
    )
    shown = [c for c in info.config if all_config or not c.is_default]
    hidden = len(info.config) - len(shown)
    if not info.config:
        click.echo("config: the broker does not report it")
        return
    click.secho(
        "config" + (f" ({hidden} defaults not shown: --all-config)" if hidden else ""), bold=True
    )
    if shown:
        print_table(["NAME", "VALUE"], [[c.name, c.value] for c in shown], indent=2)
