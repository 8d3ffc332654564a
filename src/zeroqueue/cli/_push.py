"""``zeroqueue push``: push values given as arguments, or stdin lines, to a topic."""

from __future__ import annotations

import json
import math
import os
import sys
import threading
from collections.abc import Iterator, Sequence
from typing import Any

import click

from zeroqueue.cli._cluster import cluster_options
from zeroqueue.cli._support import (
    connect,
    emit_json,
    fail,
    json_option,
    need_topic,
    parse_pairs,
    timeout_option,
)
from zeroqueue.codec import CONTENT_TYPE_HEADER, Codec, get_codec
from zeroqueue.errors import DeliveryError, PushError, ZeroQueueError
from zeroqueue.kq.pusher import Pusher

__all__ = ["push"]


class _Failures:
    """Counts the deliveries the broker did not acknowledge, and the first reasons."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.count = 0
        self.reasons: list[str] = []

    def __call__(self, message: Any, error: Exception) -> None:
        with self._lock:
            self.count += 1
            if len(self.reasons) < 3 and str(error) not in self.reasons:
                self.reasons.append(str(error))


def _values(values: Sequence[str]) -> Iterator[bytes]:
    """The arguments, or else stdin's lines (without their line ends), as the bytes given.

    Bytes, not text: a line that is not UTF-8 (or an argument the locale could not
    decode) is pushed as it came, not turned into an error.
    """
    if values:
        yield from map(os.fsencode, values)
        return
    if sys.stdin.isatty():
        click.echo("reading values from stdin, one per line; Ctrl-D ends", err=True)
    for line in sys.stdin.buffer:
        yield line.rstrip(b"\r\n")


def _shown(data: bytes) -> str:
    text = data.decode(errors="replace")
    return repr(text if len(text) <= 60 else text[:57] + "...")


def _not_a_number(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


def _finite(text: str) -> float:
    number = float(text)
    if not math.isfinite(number):
        raise ValueError(f"{text} is too large for a JSON number")
    return number


def _encode(codec: Codec | None, data: bytes, number: int) -> bytes:
    """``data`` as the bytes to push: as given (raw), or parsed as JSON and encoded."""
    if codec is None:
        return data
    hint = (
        f"--codec {codec.name} parses each value as JSON (quote text: '\"hello\"'), "
        "--codec raw pushes it as typed"
    )
    try:
        value = json.loads(data.decode(), parse_constant=_not_a_number, parse_float=_finite)
    except UnicodeDecodeError as exc:
        raise click.ClickException(
            f"value {number} is not UTF-8 text (byte {exc.start}): {_shown(data)}; {hint}"
        ) from exc
    except json.JSONDecodeError as exc:
        raise click.ClickException(
            f"value {number} is not JSON ({exc.msg} at column {exc.colno}): {_shown(data)}; " + hint
        ) from exc
    except ValueError as exc:  # NaN, Infinity: Python reads them, JSON has no such values
        raise click.ClickException(
            f"value {number} is not JSON ({exc}): {_shown(data)}; {hint}"
        ) from exc
    try:
        return codec.encode(value)
    except (TypeError, ValueError) as exc:
        raise click.ClickException(f"value {number}: {codec.name} cannot encode it: {exc}") from exc


@click.command()
@click.argument("topic")
@click.argument("values", nargs=-1)
@cluster_options
@click.option("--key", "-k", default=None, help="The key of every message (its partition).")
@click.option(
    "--key-separator",
    default=None,
    metavar="SEP",
    help="Split each value at the first SEP into key and value: 'user-1:hello'.",
)
@click.option(
    "--header",
    "-H",
    "headers",
    multiple=True,
    metavar="NAME=VALUE",
    help="A header on every message; repeat for more.",
)
@click.option(
    "--codec",
    "codec_name",
    type=click.Choice(["raw", "json", "msgpack"]),
    default="raw",
    show_default=True,
    help="raw: push each value's text as it is. json/msgpack: parse each value as JSON, "
    "encode it with the codec and add a content-type header.",
)
@timeout_option
@json_option
def push(
    *,
    topic: str,
    values: tuple[str, ...],
    brokers: str,
    config_file: str | None,
    section: str,
    key: str | None,
    key_separator: str | None,
    headers: tuple[str, ...],
    codec_name: str,
    timeout: float,
    as_json: bool,
) -> None:
    r"""Push VALUES (or, with none, each line of stdin) to TOPIC.

    Waits until the broker acknowledged every message, then says how many it
    did; exits with status 1 if any was not.

    \b
      zeroqueue push orders '{"id": 1}' '{"id": 2}' --brokers 127.0.0.1:9092
      seq 100 | zeroqueue push numbers --key-separator : -f etc/config.yaml
    """
    if key is not None and key_separator is not None:
        raise click.UsageError("give --key or --key-separator, not both")
    if key_separator == "":
        raise click.BadParameter(
            "got ''; expected one or more characters", param_hint="--key-separator"
        )
    separator = None if key_separator is None else os.fsencode(key_separator)
    fixed_key = None if key is None else os.fsencode(key)
    pairs = parse_pairs(headers, "--header")
    codec = None if codec_name == "raw" else get_codec(codec_name)
    if codec is not None:
        pairs.append((CONTENT_TYPE_HEADER, codec.content_type))
    header_list = [(name, value.encode()) for name, value in pairs] or None
    cluster = connect(brokers, config_file, section, timeout)
    need_topic(cluster, topic, timeout)
    failures = _Failures()
    pushed = 0
    try:
        pusher = Pusher(
            cluster.brokers,
            topic,
            kafka_config=cluster.kafka_config,
            error_handler=failures,
            delivery_timeout=max(timeout, 30.0),
        )
    except ZeroQueueError as exc:
        raise fail(exc) from exc
    try:
        for number, data in enumerate(_values(values), start=1):
            message_key, value = fixed_key, data
            if separator is not None:
                message_key, sep, value = data.partition(separator)
                if not sep:
                    raise click.ClickException(
                        f"value {number} has no key separator {key_separator!r}: {_shown(data)}"
                    )
            pusher.push_with_key(message_key, _encode(codec, value, number), header_list)
            pushed += 1
    except PushError as exc:
        raise fail(exc) from exc
    except click.ClickException as exc:
        raise click.ClickException(
            f"{exc.message} ({pushed} value{'s' * (pushed != 1)} before it pushed)"
        ) from exc
    finally:
        try:
            pusher.close()
        except DeliveryError:
            pass  # counted by _Failures, said below
        except PushError as exc:
            raise fail(exc) from exc
    acknowledged = pushed - failures.count
    if as_json:
        emit_json(
            {
                "topic": topic,
                "pushed": pushed,
                "acknowledged": acknowledged,
                "failed": failures.count,
                "errors": failures.reasons,
            }
        )
    else:
        colour = "green" if not failures.count else "red"
        click.secho(
            f"pushed {pushed} message{'s' * (pushed != 1)} to {topic}, {acknowledged} acknowledged",
            fg=colour,
        )
        for reason in failures.reasons:
            click.secho(f"  not acknowledged: {reason}", fg="red", err=True)
    if failures.count:
        sys.exit(1)
