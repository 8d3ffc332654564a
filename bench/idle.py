"""CPU a consumer burns while it waits: on an idle topic, and with its buffer full.

A consumer that waits should not poll in a busy loop. This measures the CPU time
of this process (the broker runs in its own) over a few seconds of waiting, as a
share of one core, for the raw confluent-kafka consumer and for a Queue:

- idle: subscribed to a topic nobody pushes to;
- buffer full: 5,000 messages of one key behind a handler that blocks on its
  first one, so the Queue's buffer fills and its partitions are paused.

python -m bench.idle                 # embedded broker
python -m bench.idle --broker kafka  # Apache Kafka (needs Java 17)
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from confluent_kafka import Consumer

from bench._common import Result, base_parser, broker, fill_topic, log, median, print_table, unique
from zeroqueue import KqConf, Queue, admin

SESSION_TIMEOUT = 6.0
TARGET = 5.0  # percent of one core


def _cpu_share(seconds: float) -> float:
    """Percent of one core this process used over the next ``seconds``."""
    cpu, wall = time.process_time(), time.perf_counter()
    time.sleep(seconds)  # the waiting being measured
    return 100 * (time.process_time() - cpu) / (time.perf_counter() - wall)


def _raw(brokers: str, topic: str, seconds: float) -> float:
    assigned, stop = threading.Event(), threading.Event()
    consumer = Consumer(
        {
            "bootstrap.servers": brokers,
            "group.id": unique("idle-raw"),
            "auto.offset.reset": "latest",
            "session.timeout.ms": int(SESSION_TIMEOUT * 1000),
        }
    )
    consumer.subscribe([topic], on_assign=lambda c, p: assigned.set())

    def loop() -> None:
        while not stop.is_set():
            consumer.poll(0.1)
        consumer.close()

    thread = threading.Thread(target=loop, daemon=True)
    thread.start()
    if not assigned.wait(60):
        raise RuntimeError("the raw consumer was not assigned within 60s")
    try:
        return _cpu_share(seconds)
    finally:
        stop.set()
        thread.join(30)


def _queue(brokers: str, topic: str, seconds: float, *, full: bool) -> float:
    release = threading.Event()
    entered = threading.Event()

    def handle(key: str, value: str) -> None:
        entered.set()
        release.wait(120)

    conf = KqConf(Brokers=[brokers], Group=unique("idle-zq"), Topic=topic, Offset="first")
    queue = Queue(
        conf,
        handle if full else (lambda key, value: None),
        session_timeout=SESSION_TIMEOUT,
        shutdown_timeout=1.0,
        handle_signals=False,
    )
    with queue.running():
        deadline = time.monotonic() + 60
        while not queue.assignment():
            if time.monotonic() > deadline:
                raise RuntimeError("the queue was not assigned within 60s")
            time.sleep(0.02)
        if full:
            if not entered.wait(30):
                raise RuntimeError("the handler never ran")
            engine = queue.engines[0]
            while not engine._paused:  # the buffer filled and the partition paused
                if time.monotonic() > deadline:
                    raise RuntimeError("the queue never paused its partition")
                time.sleep(0.02)
        try:
            return _cpu_share(seconds)
        finally:
            release.set()


def run(rounds: int, quick: bool, kind: str = "tansu") -> list[Result]:
    """Median CPU share of each way of waiting."""
    seconds = 2.0 if quick else 5.0
    results: list[Result] = []
    with broker(kind) as brokers:
        scenarios: list[tuple[str, Callable[[str], float], Callable[[str], float]]] = [
            (
                "idle topic",
                lambda topic: _queue(brokers, topic, seconds, full=False),
                lambda topic: _raw(brokers, topic, seconds),
            ),
            (
                "buffer full, handler blocked",
                lambda topic: _queue(brokers, topic, seconds, full=True),
                lambda topic: _raw(brokers, topic, seconds),
            ),
        ]
        for name, ours, raw in scenarios:
            figures: dict[str, list[float]] = {"zeroqueue": [], "raw": []}
            for round_ in range(1, rounds + 1):
                topic = unique("idle")
                admin.create_topic([brokers], topic, partitions=1)
                if name.startswith("buffer"):
                    fill_topic(brokers, topic, 5_000, key_count=1)
                for side, measure in (("zeroqueue", ours), ("raw", raw)):
                    figures[side].append(measure(topic))
                    log(f"  {name}: round {round_}/{rounds} {side:>9}: {figures[side][-1]:.1f}%")
                admin.delete_topic([brokers], topic)
            share = median(figures["zeroqueue"])
            results.append(
                Result(
                    f"CPU while waiting, {name} ({kind})",
                    "% of a core",
                    share,
                    median(figures["raw"]),
                    "raw consumer, idle",
                    f"< {TARGET:.0f}%",
                    share < TARGET,
                )
            )
    return results


def main() -> None:
    parser = base_parser("CPU a consumer burns while it waits.")
    args = parser.parse_args()
    print_table(run(args.rounds, args.quick, args.broker), f"waiting: median of {args.rounds}")


if __name__ == "__main__":
    main()
