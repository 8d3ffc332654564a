"""``zeroqueue bench``: a quick push and consume throughput check, the raw client beside.

It pushes N messages with a zeroqueue Pusher and N with confluent-kafka's
Producer to a fresh topic, then reads all of them with a zeroqueue Queue (its own
consumer group) and with confluent-kafka's Consumer, and deletes the topic and
group. Each row is one of those four runs, timed from its first message to its
last acknowledged (pushes) or handled (reads) one.
"""

from __future__ import annotations

import os
import sys
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

import click
from confluent_kafka import OFFSET_BEGINNING, Consumer, Producer, TopicPartition

from zeroqueue import admin
from zeroqueue._kafka.settings import client_settings
from zeroqueue.cli._cluster import Cluster, cluster_options
from zeroqueue.cli._support import (
    connect,
    emit_json,
    fail,
    json_option,
    print_table,
    timeout_option,
)
from zeroqueue.errors import ZeroQueueError
from zeroqueue.kq.config import KqConf
from zeroqueue.kq.pusher import Pusher
from zeroqueue.kq.queue import Queue

__all__ = ["Run", "bench"]

# Messages between progress bar updates: a bar redrawn per message costs more than it times.
_STEP = 1000
_KEYS = 1000


@dataclass(frozen=True)
class Run:
    """One timed run: what, by which client, how many messages in how long."""

    what: str
    client: str
    messages: int
    seconds: float
    bytes: int

    @property
    def per_second(self) -> float:
        """Messages a second."""
        return self.messages / self.seconds if self.seconds > 0 else 0.0

    @property
    def megabytes_per_second(self) -> float:
        """Values' megabytes (10^6) a second."""
        return self.bytes / 1e6 / self.seconds if self.seconds > 0 else 0.0


Bar = Callable[[int], None]


def _bar(label: str, length: int, quiet: bool) -> Any:
    return click.progressbar(
        length=length,
        label=label.ljust(34),
        file=sys.stderr,
        show_eta=False,
        show_percent=True,
        hidden=quiet,
    )


def _push_zeroqueue(
    cluster: Cluster, topic: str, value: bytes, count: int, bar: Bar, *, stall: float
) -> float:
    with Pusher(
        cluster.brokers,
        topic,
        kafka_config=cluster.kafka_config,
        # A broker that stops answering fails the run in that long, not hangs it.
        delivery_timeout=stall,
        buffer_full_timeout=stall,
    ) as pusher:
        # Not timed: the first push waits for metadata and the idempotent producer's id.
        pusher.push_with_key("warm-up", value)
        pusher.flush()
        started = time.perf_counter()
        for i in range(count):
            pusher.push_with_key(str(i % _KEYS), value)
            if i % _STEP == _STEP - 1:
                bar(_STEP)
        pusher.flush()
        bar(count % _STEP)
        return time.perf_counter() - started


def _push_raw(
    cluster: Cluster, topic: str, value: bytes, count: int, bar: Bar, *, stall: float
) -> float:
    # The Pusher's defaults, so the two rows compare the clients, not the settings.
    producer = Producer(
        client_settings(cluster.brokers, overrides=cluster.kafka_config)
        | {
            "linger.ms": 5,
            "batch.size": 1024 * 1024,
            "acks": "all",
            "enable.idempotence": True,
            "message.timeout.ms": round(stall * 1000),
        }
    )
    failed: list[str] = []

    def report(error: Any, message: Any) -> None:
        if error is not None:
            failed.append(error.str())

    def stopped(pushed: int, why: str) -> click.ClickException:
        return click.ClickException(
            f"confluent-kafka's Producer: {why}, {pushed} messages in; did the broker stop?"
        )

    producer.produce(topic, value, "warm-up", on_delivery=report)  # not timed, as above
    producer.flush(30)
    started = time.perf_counter()
    for i in range(count):
        full_since = None
        while True:
            try:
                producer.produce(topic, value, str(i % _KEYS), on_delivery=report)
                break
            except BufferError:
                full_since = full_since or time.monotonic()
                if time.monotonic() - full_since > stall:
                    raise stopped(i, f"its buffer stayed full for {stall:g}s") from None
                producer.poll(0.05)
        if i % _STEP == _STEP - 1:
            producer.poll(0)
            bar(_STEP)
        if failed:  # timed out: the rest would only time out too
            raise stopped(i, f"a message failed ({failed[0]})")
    left = producer.flush(60)
    bar(count % _STEP)
    took = time.perf_counter() - started
    if left or failed:
        raise click.ClickException(
            f"confluent-kafka's Producer: {left} not delivered in 60s, {len(failed)} failed"
            + (f": {failed[0]}" if failed else "")
        )
    return took


def _read_zeroqueue(
    cluster: Cluster, topic: str, group: str, count: int, bar: Bar, *, timeout: float
) -> tuple[float, float]:
    """Seconds from the first message handled to the last, and to join the group first."""
    handled = 0
    first = last = 0.0
    done = threading.Event()
    lock = threading.Lock()

    def handle(key: str, value: str) -> None:
        nonlocal handled, first, last
        with lock:
            if handled == 0:
                first = time.perf_counter()
            handled += 1
            if handled % _STEP == 0:
                bar(_STEP)
            if handled >= count:
                last = time.perf_counter()
                bar(count % _STEP)
                done.set()

    conf = KqConf(Brokers=cluster.brokers, Group=group, Topic=topic, Offset="first")
    queue = Queue(
        conf,
        handle,
        session_timeout=6.0,  # Kafka's smallest by default: the group forms sooner
        handle_signals=False,
        kafka_config=cluster.kafka_config,
    )
    started = time.perf_counter()
    with queue.running():
        if not done.wait(max(60.0, timeout)):
            raise click.ClickException(
                f"the zeroqueue Queue handled {handled} of {count} messages in 60s"
            )
    return last - first, first - started


def _read_raw(cluster: Cluster, topic: str, count: int, bar: Bar, timeout: float) -> float:
    consumer = Consumer(
        client_settings(cluster.brokers, overrides=cluster.kafka_config)
        | {"group.id": "zeroqueue-bench-raw", "enable.auto.commit": False}
    )
    try:
        partitions = consumer.list_topics(topic, timeout=timeout).topics[topic].partitions
        consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in partitions])
        seen = 0
        first = 0.0
        deadline = time.monotonic() + max(60.0, timeout)
        while seen < count:
            if time.monotonic() > deadline:
                raise click.ClickException(
                    f"confluent-kafka's Consumer read {seen} of {count} messages in 60s"
                )
            records = consumer.consume(1000, 0.2)
            if records and not first:
                first = time.perf_counter()
            read = sum(1 for r in records if r.error() is None)
            seen += read
            bar(read)
        return time.perf_counter() - first
    finally:
        consumer.close()


def _clean_up(cluster: Cluster, topic: str, group: str, timeout: float, *, quiet: bool) -> None:
    """Delete the run's topic and group.

    ``quiet`` (the run failed): its error says what matters, and a broker that
    stopped is not waited for long.
    """
    wait = timeout if quiet else max(timeout, 10.0)
    try:
        admin.delete_topic(cluster.brokers, topic, timeout=wait, kafka_config=cluster.kafka_config)
        admin.delete_group(cluster.brokers, group, timeout=wait, kafka_config=cluster.kafka_config)
    except ZeroQueueError:
        if not quiet:
            raise


@click.command()
@cluster_options
@click.option(
    "--messages",
    "-n",
    default=100_000,
    show_default=True,
    type=click.IntRange(min=1),
    help="Messages each client pushes.",
)
@click.option(
    "--size", default=100, show_default=True, type=click.IntRange(min=0), help="Value bytes."
)
@click.option(
    "--partitions",
    default=3,
    show_default=True,
    type=click.IntRange(min=1),
    help="Partitions of the topic.",
)
@timeout_option
@json_option
def bench(
    *,
    brokers: str,
    config_file: str | None,
    section: str,
    messages: int,
    size: int,
    partitions: int,
    timeout: float,
    as_json: bool,
) -> None:
    """Time pushing and reading MESSAGES with zeroqueue and with confluent-kafka beside it.

    Uses a fresh topic (zeroqueue-bench-...) and consumer group, deleted
    afterwards. Numbers from a laptop broker say little about a production
    cluster; the ratio of the two clients says more.
    """
    cluster = connect(brokers, config_file, section, timeout)
    suffix = uuid.uuid4().hex[:8]
    topic, group = f"zeroqueue-bench-{suffix}", f"zeroqueue-bench-{suffix}"
    value = os.urandom(size // 2 + 1).hex()[:size].encode()  # text: a str handler reads it
    quiet = as_json or not sys.stderr.isatty()
    runs: list[Run] = []
    stall = max(timeout, 10.0)  # seconds a broker may not answer before the run fails
    try:
        admin.create_topic(
            cluster.brokers,
            topic,
            partitions=partitions,
            timeout=max(timeout, 10.0),
            kafka_config=cluster.kafka_config,
        )
        join = 0.0
        finished = False
        try:
            with _bar("push  zeroqueue Pusher", messages, quiet) as bar:
                took = _push_zeroqueue(cluster, topic, value, messages, bar.update, stall=stall)
            runs.append(Run("push", "zeroqueue Pusher", messages, took, messages * size))
            with _bar("push  confluent-kafka Producer", messages, quiet) as bar:
                took = _push_raw(cluster, topic, value, messages, bar.update, stall=stall)
            runs.append(Run("push", "confluent-kafka Producer", messages, took, messages * size))
            total = 2 * messages + 2  # and the two warm-up pushes
            with _bar("read  zeroqueue Queue", total, quiet) as bar:
                took, join = _read_zeroqueue(
                    cluster, topic, group, total, bar.update, timeout=timeout
                )
            runs.append(Run("read", "zeroqueue Queue", total, took, total * size))
            with _bar("read  confluent-kafka Consumer", total, quiet) as bar:
                took = _read_raw(cluster, topic, total, bar.update, timeout)
            runs.append(Run("read", "confluent-kafka Consumer", total, took, total * size))
            finished = True
        finally:
            _clean_up(cluster, topic, group, timeout, quiet=not finished)
    except ZeroQueueError as exc:
        raise fail(exc) from exc
    if as_json:
        emit_json(
            {
                "brokers": cluster.brokers,
                "messages": messages,
                "size": size,
                "partitions": partitions,
                "queue_join_seconds": round(join, 3),
                "runs": [
                    asdict(r)
                    | {
                        "seconds": round(r.seconds, 3),
                        "per_second": round(r.per_second),
                        "megabytes_per_second": round(r.megabytes_per_second, 2),
                    }
                    for r in runs
                ],
            }
        )
        return
    click.secho(
        f"{messages} messages of {size} bytes per client, {partitions} partitions, "
        f"on {', '.join(cluster.brokers)}",
        bold=True,
    )
    print_table(
        ["", "CLIENT", "MESSAGES", "SECONDS", "MSG/S", "MB/S"],
        [
            [
                r.what,
                r.client,
                r.messages,
                f"{r.seconds:.2f}",
                f"{r.per_second:,.0f}",
                f"{r.megabytes_per_second:.1f}",
            ]
            for r in runs
        ],
    )
    click.echo(f"(the Queue joined its group in {join:.1f}s before its first message)")
