"""``zeroqueue dlq``: list a dead-letter topic, and re-drive its messages."""

from __future__ import annotations

import json
import time
from datetime import datetime, timezone

import click

from zeroqueue.cli._cluster import cluster_of, cluster_options
from zeroqueue.errors import ZeroQueueError
from zeroqueue.message import Message
from zeroqueue.retry import headers as h
from zeroqueue.retry._dlq import error_of, redrive, summarize

__all__ = ["dlq"]


def _when(stamp: float | None) -> str:
    if stamp is None:
        return "-"
    return datetime.fromtimestamp(stamp, tz=timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")


def _topic(topic: str | None, cluster_conf: object) -> str:
    if topic:
        return topic
    retry = getattr(cluster_conf, "retry", None)
    if retry is not None and retry.dead_letter_topic:
        return str(retry.dead_letter_topic)
    raise click.UsageError("name the dead-letter topic, or a config whose Retry names one")


def _describe(message: Message) -> dict[str, object]:
    def text(name: str) -> str:
        return (h.last(message.headers, name) or b"").decode(errors="replace")

    def number(name: str) -> int | None:
        return h.decode_int(h.last(message.headers, name))

    return {
        "dead_letter": f"{message.topic}[{message.partition}]@{message.offset}",
        "from": f"{text(h.ORIGINAL_TOPIC)}[{number(h.ORIGINAL_PARTITION)}]"
        f"@{number(h.ORIGINAL_OFFSET)}",
        "group": text(h.ORIGINAL_CONSUMER_GROUP),
        "key": message.key.decode(errors="replace") if message.key is not None else None,
        "value": message.value.decode(errors="replace") if message.value is not None else None,
        "attempts": number(h.ATTEMPTS),
        "error": error_of(message),
        "dead_lettered_at": _when(message.timestamp),
        "stacktrace": text(h.EXCEPTION_STACKTRACE),
    }


@click.group()
def dlq() -> None:
    """List a dead-letter topic, or re-drive its messages to where they came from."""


@dlq.command("list")
@click.argument("topic", required=False)
@cluster_options
@click.option("--top", default=5, show_default=True, help="How many distinct errors to show.")
@click.option("--json", "as_json", is_flag=True, help="One JSON object, for scripts.")
def list_(
    *,
    topic: str | None,
    brokers: str,
    config_file: str | None,
    section: str,
    top: int,
    as_json: bool,
) -> None:
    """Count a dead-letter topic's messages and errors, and show the latest in full.

    TOPIC defaults to the DeadLetterTopic of the config file's Retry section.
    """
    cluster = cluster_of(brokers, config_file, section)
    name = _topic(topic, cluster.conf)
    with click.progressbar(length=0, label=f"reading {name}", file=None) as bar:
        try:
            summary = summarize(
                cluster.brokers,
                name,
                kafka_config=cluster.kafka_config,
                on_message=lambda m: bar.update(1),
            )
        except ZeroQueueError as exc:
            raise click.ClickException(str(exc)) from exc
    if as_json:
        click.echo(
            json.dumps(
                {
                    "topic": name,
                    "count": summary.count,
                    "by_partition": dict(summary.by_partition),
                    "oldest": _when(summary.oldest),
                    "newest": _when(summary.newest),
                    "errors": summary.errors.most_common(top),
                    "latest": _describe(summary.last) if summary.last else None,
                }
            )
        )
        return
    click.secho(f"{summary.count} dead letters in {name}", bold=True)
    if not summary.count:
        return
    partitions = ", ".join(f"{p}: {n}" for p, n in sorted(summary.by_partition.items()))
    click.echo(f"partitions  {partitions}")
    click.echo(f"oldest      {_when(summary.oldest)}")
    click.echo(f"newest      {_when(summary.newest)}")
    click.echo("top errors")
    for error, count in summary.errors.most_common(top):
        click.echo(f"  {count:>6}  " + click.style(error, fg="red"))
    assert summary.last is not None
    latest = _describe(summary.last)
    click.secho("latest", bold=True)
    for field, value in latest.items():
        if field != "stacktrace":
            click.echo(f"  {field:<16} {value}")
    click.echo("  stacktrace")
    for line in str(latest["stacktrace"]).rstrip().splitlines()[-8:]:
        click.echo(f"    {line}")


def _seconds(text: str | None, option: str) -> float | None:
    if text is None:
        return None
    try:
        moment = datetime.fromisoformat(text)
    except ValueError as exc:
        raise click.BadParameter(
            f"got {text!r}; expected an ISO time such as 2026-12-01T15:00:00", param_hint=option
        ) from exc
    if moment.tzinfo is None:
        moment = moment.astimezone()  # local time, as typed
    return moment.timestamp()


@dlq.command("redrive")
@click.argument("topic", required=False)
@cluster_options
@click.option("--match", help="Only messages whose error ('type: message') matches this regex.")
@click.option("--since", help="Only messages dead-lettered at or after this ISO time.")
@click.option("--until", help="Only messages dead-lettered before this ISO time.")
@click.option(
    "--group",
    help="Only messages this consumer group dead-lettered (its"
    " kafka_dlt-original-consumer-group header).",
)
@click.option(
    "--from-start",
    is_flag=True,
    help="Read the whole topic again, not from where the last re-drive stopped.",
)
def redrive_(
    *,
    topic: str | None,
    brokers: str,
    config_file: str | None,
    section: str,
    match: str | None,
    since: str | None,
    until: str | None,
    group: str | None,
    from_start: bool,
) -> None:
    """Push dead letters back to the topics they came from (at-least-once).

    It goes on from where the last re-drive of TOPIC stopped (its consumer group
    TOPIC.redrive) unless --from-start, and stops where TOPIC ended when it
    began; messages that do not match the filters are skipped (and not looked
    at again without --from-start). A re-driven message reaches every consumer
    group of its topic, not only the one that dead-lettered it.
    """
    cluster = cluster_of(brokers, config_file, section)
    name = _topic(topic, cluster.conf)
    started = time.monotonic()
    with click.progressbar(length=0, label=f"re-driving {name}") as bar:
        try:
            report = redrive(
                cluster.brokers,
                name,
                match=match,
                since=_seconds(since, "--since"),
                until=_seconds(until, "--until"),
                group=group,
                from_start=from_start,
                kafka_config=cluster.kafka_config,
                on_message=lambda m, moved: bar.update(1),
            )
        except ZeroQueueError as exc:
            raise click.ClickException(str(exc)) from exc
    took = time.monotonic() - started
    where = ", ".join(f"{n} to {t}" for t, n in report.to_topics.most_common()) or "none"
    click.secho(
        f"moved {report.moved} ({where}), skipped {report.skipped}, in {took:.1f}s", bold=True
    )
