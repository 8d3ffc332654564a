"""Shared pieces: the broker, filling topics, timing handlers, medians and the table."""

from __future__ import annotations

import argparse
import contextlib
import itertools
import logging
import os
import statistics
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

from confluent_kafka import Producer

from zeroqueue import Queue
from zeroqueue.embedded import BrokerProcess, EmbeddedBroker, KafkaBroker

__all__ = [
    "MAX_WAIT",
    "SESSION_TIMEOUT",
    "Clock",
    "Result",
    "base_parser",
    "broker",
    "fill_topic",
    "keys",
    "log",
    "log_round",
    "median",
    "print_table",
    "running",
    "unique",
]

# Tansu answers a JoinGroup after about half the session timeout: keep it short.
SESSION_TIMEOUT = 2.0
# How long the broker may hold a fetch waiting for MinBytes.
MAX_WAIT = 0.2

_names = itertools.count(1)


def unique(prefix: str) -> str:
    """A topic or group name not used before by this process."""
    return f"bench-{prefix}-{os.getpid()}-{next(_names)}"


def log(message: str) -> None:
    """Progress goes to stderr, so stdout keeps only the tables."""
    print(message, file=sys.stderr, flush=True)


def log_round(what: str, round_: int, rounds: int, variant: str, rate: float) -> None:
    """One progress line per timed run."""
    log(f"  {what}: round {round_}/{rounds} {variant:>9}: {rate:>11,.0f} msg/s")


def alternate(
    what: str, rounds: int, runs: dict[str, Callable[[], float]]
) -> dict[str, list[float]]:
    """Time each variant once per round; the order flips every round.

    Running the same variant first every time would hand it (or its rival) a
    systematic edge: a warmer page cache, a broker that just freed a topic.
    """
    rates: dict[str, list[float]] = {name: [] for name in runs}
    order = list(runs)
    for round_ in range(1, rounds + 1):
        for name in order if round_ % 2 else reversed(order):
            rates[name].append(runs[name]())
            log_round(what, round_, rounds, name, rates[name][-1])
    return rates


def median(values: Sequence[float]) -> float:
    """The median of the rounds."""
    return float(statistics.median(values))


def keys(count: int, prefix: str = "user") -> list[str]:
    """``count`` distinct keys, built once so the timed loops only index a list."""
    return [f"{prefix}-{k}" for k in range(count)]


@contextlib.contextmanager
def broker(kind: str = "tansu") -> Iterator[str]:
    """Start the embedded broker (``tansu``) or Apache Kafka (``kafka``); yield its address."""
    logging.getLogger("zeroqueue").setLevel(logging.WARNING)
    started = time.perf_counter()
    process: BrokerProcess = EmbeddedBroker() if kind == "tansu" else KafkaBroker()
    with process:
        took = time.perf_counter() - started
        log(f"{process.kind} on {process.bootstrap_servers} (started in {took:.1f}s)")
        yield process.bootstrap_servers


def fill_topic(
    brokers: str, topic: str, count: int, *, value_size: int = 100, key_count: int = 1000
) -> None:
    """Produce ``count`` keyed messages with a plain non-idempotent producer (fast)."""
    producer = Producer(
        {
            "bootstrap.servers": brokers,
            "acks": 1,
            "linger.ms": 5,
            "batch.size": 1024 * 1024,
            "partitioner": "fnv1a_random",
        }
    )
    value = b"v" * value_size
    names = keys(key_count)
    for i in range(count):
        while True:
            try:
                producer.produce(topic, value, names[i % key_count])
                break
            except BufferError:
                producer.poll(0.005)
    left = producer.flush(60.0)
    producer.close()
    if left:
        raise RuntimeError(f"could not fill topic {topic!r}: messages still in flight after 60s")


class Clock:
    """Handlers that count messages and time the first through the ``count``-th.

    The clock starts when the first message is handled, so joining the group is
    not measured. ``next()`` on ``itertools.count`` is atomic under the GIL, so
    handlers may run on any number of threads.
    """

    def __init__(self, count: int) -> None:
        self.count = count
        self.first = 0.0
        self.last = 0.0
        self.done = threading.Event()
        self._counter = itertools.count(1)

    def noop(self) -> Callable[[str, str], None]:
        """A handler that does nothing but count."""
        counter, target, clock = self._counter, self.count, self

        def handle(key: str, value: str) -> None:
            n = next(counter)
            if n == 1:
                clock.first = time.perf_counter()
            if n == target:
                clock.last = time.perf_counter()
                clock.done.set()

        return handle

    def sleeper(self, seconds: float) -> Callable[[str, str], None]:
        """A handler that waits ``seconds`` (I/O) for each message."""
        counter, target, clock = self._counter, self.count, self

        def handle(key: str, value: str) -> None:
            n = next(counter)
            if n == 1:
                clock.first = time.perf_counter()
            time.sleep(seconds)
            if n == target:
                clock.last = time.perf_counter()
                clock.done.set()

        return handle

    def wait(self, timeout: float) -> None:
        """Wait until ``count`` messages were handled."""
        if not self.done.wait(timeout):
            handled = next(self._counter) - 1
            raise TimeoutError(f"only {handled} of {self.count} messages handled in {timeout}s")

    @property
    def rate(self) -> float:
        """Messages per second, first to last."""
        return self.count / (self.last - self.first)


def running(queue: Queue) -> contextlib.AbstractContextManager[Queue]:
    """Run ``queue`` on a background thread for the block (see :meth:`Queue.running`)."""
    return queue.running()


@dataclass(frozen=True)
class Result:
    """One row of the summary: zeroqueue's figure against a baseline."""

    benchmark: str
    unit: str
    zeroqueue: float
    baseline: float
    baseline_name: str
    target: str = ""
    passed: bool | None = None

    @property
    def ratio(self) -> float:
        """zeroqueue / baseline."""
        return self.zeroqueue / self.baseline if self.baseline else float("nan")


def _figure(value: float, unit: str) -> str:
    if unit == "msg/s":
        return f"{value:,.0f} msg/s"
    return f"{value:,.1f} {unit}"


def print_table(results: Sequence[Result], title: str = "") -> None:
    """Print the results as a plain-text table with aligned columns."""
    header = ("benchmark", "zeroqueue", "baseline", "ratio", "target")
    rows = [
        (
            r.benchmark,
            _figure(r.zeroqueue, r.unit),
            f"{_figure(r.baseline, r.unit)} ({r.baseline_name})",
            f"{r.ratio:.2f}",
            r.target + ("" if r.passed is None else (" ok" if r.passed else " MISSED")),
        )
        for r in results
    ]
    widths = [max(len(row[i]) for row in (header, *rows)) for i in range(len(header))]
    right = (False, True, True, True, False)

    def line(cells: Sequence[str]) -> str:
        parts = [
            c.rjust(w) if r else c.ljust(w) for c, w, r in zip(cells, widths, right, strict=True)
        ]
        return "  ".join(parts).rstrip()

    if title:
        print(title)
    print(line(header))
    print("  ".join("-" * w for w in widths))
    for row in rows:
        print(line(row))
    sys.stdout.flush()


def base_parser(description: str) -> argparse.ArgumentParser:
    """The options every benchmark takes."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument(
        "--rounds", type=int, default=3, help="rounds per variant; the median is reported"
    )
    parser.add_argument("--quick", action="store_true", help="small sizes: a smoke run")
    parser.add_argument(
        "--broker",
        choices=("tansu", "kafka"),
        default="tansu",
        help="the embedded Tansu broker (default) or Apache Kafka (needs Java 17)",
    )
    return parser
