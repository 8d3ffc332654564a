"""``zeroqueue tail``: follow a topic's messages, decoded, without joining a group."""

from __future__ import annotations

import base64
import json
import math
import re
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

import click
from confluent_kafka import OFFSET_BEGINNING, OFFSET_END, KafkaError, KafkaException, TopicPartition
from confluent_kafka import Message as KafkaMessage

from zeroqueue._kafka import backends
from zeroqueue._kafka.settings import client_settings
from zeroqueue.cli._cluster import Cluster, cluster_options
from zeroqueue.cli._support import connect, emit_json, json_option, need_topic, timeout_option
from zeroqueue.codec import CONTENT_TYPE_HEADER, Codec, codec_for_content_type, get_codec
from zeroqueue.conf import parse_duration
from zeroqueue.errors import ConfigError

__all__ = ["Start", "parse_start", "tail"]

# librdkafka's logical offset "n before the end": RD_KAFKA_OFFSET_TAIL_BASE - n.
_OFFSET_TAIL_BASE = -2000
# Offsets and timestamps are signed 64-bit.
_MAX_OFFSET = 2**63 - 1


@dataclass(frozen=True)
class Start:
    """Where tail starts in each partition: a (logical) offset, or a time in ms."""

    offset: int | None = None
    time_ms: int | None = None


def parse_start(text: str) -> Start:
    """``--from``'s value: first, last, an offset, -N, an ISO time, @unix seconds, or 15m.

    Raises:
        click.BadParameter: none of those.
    """
    text = text.strip()
    if text == "first":
        return Start(offset=OFFSET_BEGINNING)
    if text == "last":
        return Start(offset=OFFSET_END)
    if re.fullmatch(r"-?[0-9]+", text):
        number = int(text)
        if text.startswith("-"):  # -0 is the end, as -N is N before it
            if -number > _MAX_OFFSET + _OFFSET_TAIL_BASE:
                raise click.BadParameter(f"got {text!r}; too far back", param_hint="--from")
            return Start(offset=_OFFSET_TAIL_BASE - abs(number))
        if number > _MAX_OFFSET:
            raise click.BadParameter(f"got {text!r}; offsets end at 2**63-1", param_hint="--from")
        return Start(offset=number)
    if text.startswith("@"):
        try:
            return _at(float(text[1:]))
        except (ValueError, OverflowError):
            pass
    else:
        try:
            moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
        except ValueError:
            moment = None
        if moment is not None:
            try:
                if moment.tzinfo is None:
                    moment = moment.astimezone()  # local time, as typed
                return _at(moment.timestamp())
            except (ValueError, OverflowError):  # the year 1, in a zone east of UTC
                return Start(time_ms=0)
        try:
            ago = parse_duration(text)
        except (ConfigError, ValueError):
            pass
        else:
            return _at(time.time() - ago)
    raise click.BadParameter(
        f"got {text!r}; expected first, last, an offset (42), -N (N before the end), "
        "an ISO time (2026-01-31T15:00:00), @UNIX-SECONDS (@1769871600) or an age (15m, 2h)",
        param_hint="--from",
    )


def _at(seconds: float) -> Start:
    """Start at a Unix time: one before 1970 is the start of each partition.

    Kafka reads a negative time as "earliest" or "latest"; one past what its
    64-bit milliseconds hold raises ValueError.
    """
    if not math.isfinite(seconds) or seconds * 1000 > _MAX_OFFSET:
        raise ValueError(seconds)
    return Start(time_ms=max(round(seconds * 1000), 0))


def _text(data: bytes | None) -> Any:
    """Bytes as text when they are UTF-8, else as ``{"base64": ...}``."""
    if data is None:
        return None
    try:
        return data.decode()
    except UnicodeDecodeError:
        return {"base64": base64.b64encode(data).decode()}


def _decode(data: bytes | None, codec: Codec | None) -> Any:
    if data is None or codec is None or codec.name == "raw":
        return _text(data)
    try:
        return codec.decode(data, None)
    except Exception:  # not what the codec reads: shown as it is
        return _text(data)


def _plain(value: Any) -> Any:
    """``value`` with bytes (msgpack may hold them) and NaN or Infinity made JSON-friendly."""
    if isinstance(value, bytes):
        return _text(value)
    if isinstance(value, float) and not math.isfinite(value):
        # JSON has no NaN or Infinity (json.dumps would write them, unparseable).
        return "NaN" if math.isnan(value) else ("Infinity" if value > 0 else "-Infinity")
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def describe(record: KafkaMessage, fallback: Codec | None) -> dict[str, Any]:
    """One record as a JSON-ready dict: where it is, when, key, decoded value and headers."""
    raw = record.headers() or []
    headers = {
        name: _text(value.encode() if isinstance(value, str) else value)
        for name, value in (raw.items() if isinstance(raw, dict) else raw)
    }
    content_type = headers.get(CONTENT_TYPE_HEADER)
    codec = codec_for_content_type(content_type) if isinstance(content_type, str) else None
    kind, stamp = record.timestamp()
    return {
        "topic": record.topic(),
        "partition": record.partition(),
        "offset": record.offset(),
        "timestamp": stamp if kind else None,
        "time": (
            datetime.fromtimestamp(stamp / 1000, tz=timezone.utc).isoformat(timespec="milliseconds")
            if kind
            else None
        ),
        "key": _text(record.key()),
        "value": _plain(_decode(record.value(), codec or fallback)),
        "headers": headers,
    }


def _shown(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)


def _print(described: dict[str, Any]) -> None:
    where = f"{described['topic']}[{described['partition']}]@{described['offset']}"
    when = (described["time"] or "-").replace("T", " ").replace("+00:00", "Z")
    line = click.style(where, fg="cyan") + "  " + click.style(when, dim=True)
    if described["key"] is not None:
        line += "  " + click.style(f"key={_shown(described['key'])}", fg="yellow")
    line += "  " + _shown(described["value"])
    if described["headers"]:
        shown = " ".join(f"{k}={_shown(v)}" for k, v in described["headers"].items())
        line += "  " + click.style(shown, dim=True)
    click.echo(line)


def _positions(
    consumer: Any, topic: str, partitions: Sequence[int], start: Start, timeout: float
) -> list[TopicPartition]:
    if start.time_ms is None:
        assert start.offset is not None
        return [TopicPartition(topic, p, start.offset) for p in partitions]
    asked = [TopicPartition(topic, p, start.time_ms) for p in partitions]
    try:
        found = consumer.offsets_for_times(asked, timeout=timeout)
    except KafkaException as exc:
        raise click.ClickException(
            f"finding the offsets of {topic} at that time failed: {exc.args[0].str()}"
        ) from exc
    # -1: no message at or after that time, so start at the end.
    return [
        TopicPartition(topic, tp.partition, tp.offset if tp.offset >= 0 else OFFSET_END)
        for tp in found
    ]


@click.command()
@click.argument("topic")
@cluster_options
@click.option(
    "--from",
    "start_text",
    default="last",
    show_default=True,
    metavar="WHERE",
    help="first, last (only new messages), an offset (42), -N (N before the end), an ISO "
    "time (2026-01-31T15:00:00, local unless it says), @UNIX-SECONDS, or an age (15m).",
)
@click.option(
    "--partition", "-p", "partitions", type=int, multiple=True, help="Only this partition; repeat."
)
@click.option("--count", "-n", type=click.IntRange(min=1), help="Stop after N messages.")
@click.option(
    "--no-follow", is_flag=True, help="Stop at the end of the topic instead of waiting for more."
)
@click.option(
    "--codec",
    "codec_name",
    type=click.Choice(["auto", "json", "msgpack", "raw"]),
    default="auto",
    show_default=True,
    help="How to read values with no content-type header (auto: text, else base64).",
)
@timeout_option
@json_option
def tail(
    *,
    topic: str,
    brokers: str,
    config_file: str | None,
    section: str,
    start_text: str,
    partitions: tuple[int, ...],
    count: int | None,
    no_follow: bool,
    codec_name: str,
    timeout: float,
    as_json: bool,
) -> None:
    """Follow TOPIC: print each message decoded, with partition, offset, time, key, headers.

    Reads partitions assigned directly: it joins no consumer group and commits
    nothing, so it is safe beside the topic's consumers. Ctrl-C stops it.
    With --json, one JSON object per line: topic, partition, offset, timestamp
    (ms), time, key, value, headers.
    """
    start = parse_start(start_text)
    cluster = connect(brokers, config_file, section, timeout)
    existing = need_topic(cluster, topic, timeout)
    for partition in partitions:
        if partition not in existing:
            raise click.BadParameter(
                f"got {partition}; {topic} has partitions {existing[0]}..{existing[-1]}",
                param_hint="--partition",
            )
    fallback = None if codec_name in ("auto", "raw") else get_codec(codec_name)
    seen = _follow(
        cluster,
        topic,
        list(partitions) or existing,
        start,
        count=count,
        no_follow=no_follow,
        timeout=timeout,
        emit=emit_json if as_json else _print,
        fallback=fallback,
    )
    if not as_json:
        click.echo(f"{seen} message{'s' * (seen != 1)}", err=True)


def _follow(
    cluster: Cluster,
    topic: str,
    partitions: list[int],
    start: Start,
    *,
    count: int | None,
    no_follow: bool,
    timeout: float,
    emit: Any,
    fallback: Codec | None,
) -> int:
    """Print messages until ``count``, the end (``no_follow``) or Ctrl-C; how many it printed."""
    settings = client_settings(cluster.brokers, overrides=cluster.kafka_config) | {
        "group.id": "zeroqueue-tail",  # never joined: assign() only, and no commits
        "enable.auto.commit": False,
        "enable.auto.offset.store": False,
        "enable.partition.eof": no_follow,
        "fetch.wait.max.ms": 100,
    }
    consumer = backends.consumer(settings)
    seen = 0
    at_end: set[int] = set()
    try:
        consumer.assign(_positions(consumer, topic, partitions, start, timeout))
        while count is None or seen < count:
            batch = 500 if count is None else min(500, count - seen)
            for record in consumer.consume(batch, 0.2):
                error = record.error()
                if error is not None:
                    if error.code() == KafkaError._PARTITION_EOF:
                        at_end.add(record.partition() or 0)
                        continue
                    if error.fatal() or not error.retriable():
                        raise click.ClickException(f"reading {topic} failed: {error.str()}")
                    continue
                at_end.discard(record.partition())
                emit(describe(record, fallback))
                seen += 1
            if no_follow and at_end >= set(partitions):
                break
    except KeyboardInterrupt:
        pass
    finally:
        consumer.close()
    return seen
