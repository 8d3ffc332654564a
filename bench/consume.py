"""Consume benchmarks: zeroqueue's Queue against a raw confluent-kafka Consumer loop.

* throughput: a keyed backlog drained with a no-op ``(key, value)`` handler, by a
  raw ``consume(500)`` loop with the Queue's own librdkafka settings and by a
  Queue with Processors=8. Each run joins a fresh group; the clock runs from the
  first handled message to the last, so joining the group is not measured.
* io: a handler that sleeps 5 ms (I/O) with Processors 1, 4, 8 and 16; the
  efficiency is the measured rate over the ideal ``Processors / 5 ms``.
* memory: a large backlog drained in a subprocess (clean RSS), by a Queue and by
  the raw loop; growth is the peak RSS (VmHWM) minus the RSS just before the
  consumer starts (the Queue object built, no Kafka client yet). The drain rate
  of these runs is reported too: a longer run than the throughput part.

    python -m bench.consume --messages 200000 --rounds 3
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from confluent_kafka import Consumer

from bench._common import (
    MAX_WAIT,
    SESSION_TIMEOUT,
    Clock,
    Result,
    alternate,
    base_parser,
    broker,
    fill_topic,
    log,
    median,
    print_table,
    running,
    unique,
)
from zeroqueue.admin import create_topic, delete_topic
from zeroqueue.kq import KqConf, Queue

PARTITIONS = 8
PROCESSORS = 8
IO_PARTITIONS = 16
IO_SLEEP = 0.005
IO_PROCESSORS = (1, 4, 8, 16)
IO_KEYS = 1500
THROUGHPUT_TARGET = 0.75
IO_TARGET = 0.8
MEMORY_TARGET_MB = 150.0
# Longest wait for one run to handle its messages.
RUN_TIMEOUT = 300.0
PARTS = ("throughput", "io", "memory")


def queue_conf(brokers: str, topic: str, processors: int) -> KqConf:
    """A fresh consumer group reading ``topic`` from the start."""
    return KqConf(
        Brokers=[brokers],
        Group=unique("group"),
        Topic=topic,
        Offset="first",
        Processors=processors,
    )


def raw_settings(brokers: str, topic: str) -> dict[str, Any]:
    """The librdkafka settings a Queue gives its consumer (fetch sizes, waits, backoff).

    The raw loop lets librdkafka commit in the background, as a plain consumer
    would; the Queue commits itself every second. Neither cost shows at this scale.
    """
    queue = make_queue(brokers, topic, 1, lambda key, value: None)
    return queue._settings | {"enable.auto.commit": True, "enable.auto.offset.store": True}


def consume_raw(settings: dict[str, Any], topic: str, clock: Clock) -> float:
    """Drain with a raw ``consume(500)`` loop calling the clock's no-op handler."""
    handler = clock.noop()
    consumer = Consumer(settings | {"group.id": unique("raw")})
    consumer.subscribe([topic])
    consume = consumer.consume
    deadline = time.monotonic() + RUN_TIMEOUT
    try:
        while not clock.done.is_set():
            if time.monotonic() > deadline:
                raise TimeoutError(f"raw consumer: {clock.count} messages not seen in time")
            for record in consume(500, 0.1):
                if record.error() is not None:
                    continue
                key, value = record.key(), record.value()
                handler(
                    "" if key is None else key.decode(), "" if value is None else value.decode()
                )
    finally:
        consumer.close()
    return clock.rate


def make_queue(
    brokers: str, topic: str, processors: int, handler: Callable[[str, str], None]
) -> Queue:
    """A Queue in a fresh group, with the benchmarks' options."""
    return Queue(
        queue_conf(brokers, topic, processors),
        handler,
        session_timeout=SESSION_TIMEOUT,
        max_wait=MAX_WAIT,
    )


def consume_queue(queue: Queue, clock: Clock) -> float:
    """Run ``queue`` (in a thread) until the clock saw every message."""
    with running(queue):
        clock.wait(RUN_TIMEOUT)
    return clock.rate


# -- throughput ---------------------------------------------------------------------


def throughput(brokers: str, messages: int, rounds: int) -> Result:
    topic = unique("consume")
    create_topic([brokers], topic, partitions=PARTITIONS)
    fill_topic(brokers, topic, messages)
    settings = raw_settings(brokers, topic)

    def raw_loop() -> float:
        return consume_raw(settings, topic, Clock(messages))

    def queue_run() -> float:
        clock = Clock(messages)
        return consume_queue(make_queue(brokers, topic, PROCESSORS, clock.noop()), clock)

    rates = alternate("consume no-op", rounds, {"raw": raw_loop, "zeroqueue": queue_run})
    delete_topic([brokers], topic)
    zeroqueue, raw = median(rates["zeroqueue"]), median(rates["raw"])
    return Result(
        f"consume {messages:,} x 100 B, no-op, P={PROCESSORS}",
        "msg/s",
        zeroqueue,
        raw,
        "raw",
        f">= {THROUGHPUT_TARGET}",
        zeroqueue / raw >= THROUGHPUT_TARGET,
    )


# -- I/O-bound handler ----------------------------------------------------------------


def io_bound(brokers: str, messages_at_8: int, rounds: int) -> list[Result]:
    """Sleeping handlers; each Processors count drains a topic sized for a similar run time."""
    counts = {p: max(50, messages_at_8 * p // 8) for p in IO_PROCESSORS}
    topics = {p: unique(f"io-p{p}") for p in IO_PROCESSORS}
    for p, topic in topics.items():
        create_topic([brokers], topic, partitions=IO_PARTITIONS)
        fill_topic(brokers, topic, counts[p], key_count=IO_KEYS)
    rates: dict[int, list[float]] = {p: [] for p in IO_PROCESSORS}
    for round_ in range(1, rounds + 1):
        for p in IO_PROCESSORS:
            clock = Clock(counts[p])
            queue = make_queue(brokers, topics[p], p, clock.sleeper(IO_SLEEP))
            rates[p].append(consume_queue(queue, clock))
            efficiency = rates[p][-1] * IO_SLEEP / p
            log(
                f"  consume I/O 5 ms: round {round_}/{rounds} P={p:<2} {counts[p]:>5} msgs: "
                f"{rates[p][-1]:>7,.0f} msg/s, efficiency {efficiency:.2f}"
            )
    for topic in topics.values():
        delete_topic([brokers], topic)
    return [
        Result(
            f"consume I/O 5 ms handler, P={p} ({counts[p]:,} msgs)",
            "msg/s",
            median(rates[p]),
            p / IO_SLEEP,
            "ideal",
            f">= {IO_TARGET}",
            median(rates[p]) * IO_SLEEP / p >= IO_TARGET,
        )
        for p in IO_PROCESSORS
    ]


# -- memory ---------------------------------------------------------------------------


def drain_in_subprocess(brokers: str, topic: str, count: int, mode: str) -> dict[str, float]:
    """Run ``bench._drain`` in a fresh interpreter; return what it measured."""
    root = Path(__file__).resolve().parent.parent
    done = subprocess.run(
        [sys.executable, "-m", "bench._drain", brokers, topic, str(count), mode],
        cwd=root,
        capture_output=True,
        text=True,
        timeout=RUN_TIMEOUT,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"bench._drain {mode} failed ({done.returncode}):\n{done.stderr}")
    figures: dict[str, float] = json.loads(done.stdout.strip().splitlines()[-1])
    return figures


def memory(brokers: str, messages: int, rounds: int) -> list[Result]:
    """RSS growth while draining a big backlog, and the drain rate at that size."""
    topic = unique("memory")
    create_topic([brokers], topic, partitions=PARTITIONS)
    started = time.perf_counter()
    fill_topic(brokers, topic, messages)
    log(f"  memory: {messages:,} messages pushed in {time.perf_counter() - started:.1f}s")
    modes = ("raw", "zeroqueue")
    growth: dict[str, list[float]] = {mode: [] for mode in modes}
    rates: dict[str, list[float]] = {mode: [] for mode in modes}
    for round_ in range(1, rounds + 1):
        for mode in modes if round_ % 2 else modes[::-1]:
            figures = drain_in_subprocess(brokers, topic, messages, mode)
            growth[mode].append(figures["peak_mb"] - figures["start_mb"])
            rates[mode].append(figures["rate"])
            log(
                f"  memory: round {round_}/{rounds} {mode:>9}: RSS {figures['start_mb']:.1f} MB "
                f"at start, {figures['first_mb']:.1f} MB at first message, peak "
                f"{figures['peak_mb']:.1f} MB (+{growth[mode][-1]:.1f} MB); "
                f"drained at {figures['rate']:,.0f} msg/s"
            )
    delete_topic([brokers], topic)
    zeroqueue = median(growth["zeroqueue"])
    return [
        Result(
            f"consume {messages:,} x 100 B, no-op, P={PROCESSORS} (memory runs)",
            "msg/s",
            median(rates["zeroqueue"]),
            median(rates["raw"]),
            "raw",
            f">= {THROUGHPUT_TARGET}",
            median(rates["zeroqueue"]) / median(rates["raw"]) >= THROUGHPUT_TARGET,
        ),
        Result(
            f"memory: drain {messages:,} backlog, RSS growth",
            "MB",
            zeroqueue,
            median(growth["raw"]),
            "raw",
            f"< {MEMORY_TARGET_MB:.0f} MB",
            zeroqueue < MEMORY_TARGET_MB,
        ),
    ]


# -- entry points -------------------------------------------------------------------


def run(
    rounds: int,
    quick: bool,
    *,
    messages: int | None = None,
    io_messages: int | None = None,
    memory_messages: int | None = None,
    parts: tuple[str, ...] = PARTS,
) -> list[Result]:
    """The consume benchmarks in ``parts``, on one embedded broker."""
    results: list[Result] = []
    with broker() as brokers:
        if "throughput" in parts:
            count = messages or (20_000 if quick else 200_000)
            results.append(throughput(brokers, count, rounds))
        if "io" in parts:
            results += io_bound(brokers, io_messages or (400 if quick else 4000), rounds)
        if "memory" in parts:
            count = memory_messages or (100_000 if quick else 1_000_000)
            results += memory(brokers, count, rounds)
    return results


def main() -> None:
    parser = base_parser(__doc__.splitlines()[0] if __doc__ else "consume benchmark")
    parser.add_argument("--messages", type=int, help="throughput backlog (default 200000)")
    parser.add_argument(
        "--io-messages", type=int, help="I/O messages at Processors=8, scaled by P (default 4000)"
    )
    parser.add_argument("--memory-messages", type=int, help="memory backlog (default 1000000)")
    parser.add_argument("--only", nargs="+", choices=PARTS, default=PARTS, help="parts to run")
    args = parser.parse_args()
    results = run(
        args.rounds,
        args.quick,
        messages=args.messages,
        io_messages=args.io_messages,
        memory_messages=args.memory_messages,
        parts=tuple(args.only),
    )
    print_table(results)


if __name__ == "__main__":
    main()
