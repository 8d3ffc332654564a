"""``zeroqueue dq``: the beanstalkd delay queue's buried jobs, listed and kicked."""

from __future__ import annotations

import json
import time

import click

from zeroqueue.conf import load
from zeroqueue.dq import DqConf, buried, kick
from zeroqueue.errors import ZeroQueueError

__all__ = ["dq"]


def _conf(config_file: str, section: str) -> DqConf:
    try:
        return load(config_file, DqConf, key=section)
    except ZeroQueueError as exc:
        raise click.ClickException(str(exc)) from exc


_file = click.option(
    "-f",
    "--file",
    "config_file",
    required=True,
    type=click.Path(dir_okay=False, exists=True),
    help="A go-zero config file with a DqConf section (Beanstalks, Redis).",
)
_section = click.option("--section", default="DqConf", show_default=True, help="The section.")


@click.group()
def dq() -> None:
    """The beanstalkd delay queue (go-queue's dq): buried jobs."""


@dq.command("buried")
@_file
@_section
@click.option("--json", "as_json", is_flag=True, help="One JSON object per job.")
def buried_command(config_file: str, section: str, as_json: bool) -> None:
    """List the jobs buried after failing too often, with why."""
    try:
        jobs = buried(_conf(config_file, section))
    except ZeroQueueError as exc:
        raise click.ClickException(str(exc)) from exc
    for job in jobs:
        if as_json:
            click.echo(
                json.dumps(
                    {
                        "id": job.id,
                        "body": job.body.decode(errors="replace"),
                        "due": job.due,
                        "failures": job.failures,
                        "reason": job.reason,
                        "buried_at": job.buried_at,
                    }
                )
            )
            continue
        when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(job.buried_at or 0))
        body = job.body[:60].decode(errors="replace")
        click.echo(f"{job.id}  buried {when}  after {job.failures} failures  {job.reason}")
        click.echo(f"    body: {body!r}")
    if not as_json:
        click.echo(f"{len(jobs)} buried job(s)")


@dq.command("kick")
@_file
@_section
@click.argument("ids", required=False)
def kick_command(config_file: str, section: str, ids: str | None) -> None:
    """Make buried jobs ready again: the IDS given (comma-separated), or all."""
    try:
        count = kick(_conf(config_file, section), ids)
    except ZeroQueueError as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(f"kicked {count} job(s)")
