"""``zeroqueue groups``: list consumer groups; describe one's members, offsets and lag."""

from __future__ import annotations

from dataclasses import asdict

import click

from zeroqueue.cli._cluster import cluster_options
from zeroqueue.cli._inspect import describe_group, list_groups
from zeroqueue.cli._support import (
    connect,
    emit_json,
    fail,
    json_option,
    need_group,
    print_table,
    reach,
    timeout_option,
)
from zeroqueue.errors import ZeroQueueError

__all__ = ["groups"]


@click.group(invoke_without_command=True)
@cluster_options
@timeout_option
@json_option
@click.pass_context
def groups(
    ctx: click.Context,
    *,
    brokers: str,
    config_file: str | None,
    section: str,
    timeout: float,
    as_json: bool,
) -> None:
    """List the cluster's consumer groups and their states; or describe one."""
    if ctx.invoked_subcommand is not None:
        return
    cluster = connect(brokers, config_file, section, timeout)
    try:
        listed = list_groups(cluster.brokers, cluster.kafka_config, timeout)
    except ZeroQueueError as exc:
        raise fail(exc) from exc
    if as_json:
        emit_json([asdict(g) for g in listed])
        return
    if not listed:
        click.echo(f"no consumer groups on {', '.join(cluster.brokers)}")
        return
    print_table(["GROUP", "STATE"], [[g.group, g.state] for g in listed])


@groups.command()
@click.argument("group")
@cluster_options
@timeout_option
@json_option
@click.pass_context
def describe(
    ctx: click.Context,
    *,
    group: str,
    brokers: str,
    config_file: str | None,
    section: str,
    timeout: float,
    as_json: bool,
) -> None:
    """Show GROUP: its state and members, and per partition its committed offset and lag.

    Lag is the high watermark minus the committed offset: messages the group has
    not committed past yet. It reads only, without joining the group.
    """
    cluster, timeout = reach(ctx)
    need_group(cluster, group, timeout)
    try:
        info = describe_group(cluster.brokers, cluster.kafka_config, group, timeout)
    except ZeroQueueError as exc:
        raise fail(exc) from exc
    total = sum(o.lag for o in info.offsets)
    if as_json:
        data = asdict(info)
        for row, offset in zip(data["offsets"], info.offsets, strict=True):
            row["lag"] = offset.lag
        data["lag"] = total
        emit_json(data)
        return
    lag_colour = "green" if total == 0 else "yellow"
    click.secho(f"group {info.group}", bold=True, nl=False)
    click.echo(
        f"  state {info.state}, {len(info.members)} members, coordinator {info.coordinator or '-'}"
        + (f", assignor {info.assignor}" if info.assignor else "")
        + ", lag "
        + click.style(str(total), fg=lag_colour)
    )
    if info.members:
        click.secho("members", bold=True)
        print_table(
            ["MEMBER", "CLIENT", "HOST", "PARTITIONS"],
            [
                [m.member_id, m.client_id, m.host, [f"{t}[{p}]" for t, p in m.assignment]]
                for m in info.members
            ],
            indent=2,
        )
    if not info.offsets:
        click.echo("no committed offsets")
        return
    click.secho("offsets", bold=True)
    print_table(
        ["TOPIC", "PARTITION", "COMMITTED", "HIGH", "LAG"],
        [[o.topic, o.partition, o.committed, o.high, o.lag] for o in info.offsets],
        indent=2,
    )
