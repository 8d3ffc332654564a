"""End-to-end latency at a fixed rate: the default Queue against the raw consumer.

A producer in this process sends 100-byte values at a fixed rate, each carrying
the time it was sent; the consumer notes when its handler gets it. The raw
consumer runs at librdkafka's defaults (a ``poll()`` loop); the Queue at
zeroqueue's. Both use a 6 s session timeout, so joining the group is quick on
the embedded broker (it holds a JoinGroup for half of it); joining is not timed.

python -m bench.latency                   # embedded broker, 1,000 and 10 msg/s
python -m bench.latency --broker kafka    # Apache Kafka (needs Java 17)
"""

from __future__ import annotations

import statistics
import struct
import threading
import time
from collections.abc import Callable

from confluent_kafka import Consumer, Producer

from bench._common import Result, base_parser, broker, log, median, print_table, unique
from zeroqueue import KqConf, Message, Queue, admin

PARTITIONS = 4
VALUE_SIZE = 100
SESSION_TIMEOUT = 6.0
_STAMP = struct.Struct(">q")


class Latencies:
    """Receive times of stamped messages, from any thread."""

    def __init__(self, expected: int) -> None:
        self.expected = expected
        self.seconds: list[float] = []
        self._lock = threading.Lock()
        self.done = threading.Event()

    def note(self, value: bytes | None) -> None:
        now = time.perf_counter_ns()
        sent = _STAMP.unpack_from(value or b"\0" * 8)[0]
        with self._lock:
            self.seconds.append((now - sent) / 1e9)
            if len(self.seconds) >= self.expected:
                self.done.set()


def _send(brokers: str, topic: str, rate: float, count: int) -> None:
    """Send ``count`` stamped messages at ``rate`` per second, keyed over 100 keys."""
    producer = Producer({"bootstrap.servers": brokers, "linger.ms": 0})
    padding = b"p" * (VALUE_SIZE - _STAMP.size)
    started = time.perf_counter()
    for i in range(count):
        due = started + i / rate
        pause = due - time.perf_counter()
        if pause > 0:
            time.sleep(pause)
        producer.produce(topic, _STAMP.pack(time.perf_counter_ns()) + padding, f"k{i % 100}")
        producer.poll(0)
    if producer.flush(30):
        raise RuntimeError("the latency producer could not deliver within 30s")


def _raw(brokers: str, topic: str, latencies: Latencies) -> Callable[[], None]:
    """Start a raw consumer at librdkafka's defaults; return once assigned, and its stop."""
    assigned, stop = threading.Event(), threading.Event()
    consumer = Consumer(
        {
            "bootstrap.servers": brokers,
            "group.id": unique("lat-raw"),
            "auto.offset.reset": "earliest",
            "session.timeout.ms": int(SESSION_TIMEOUT * 1000),
        }
    )
    consumer.subscribe([topic], on_assign=lambda c, partitions: assigned.set())

    def loop() -> None:
        while not stop.is_set():
            record = consumer.poll(0.1)
            if record is not None and record.error() is None:
                latencies.note(record.value())
        consumer.close()

    thread = threading.Thread(target=loop, daemon=True)
    thread.start()
    if not assigned.wait(60):
        raise RuntimeError("the raw consumer was not assigned within 60s")

    def finish() -> None:
        stop.set()
        thread.join(30)

    return finish


def _queue(brokers: str, topic: str, latencies: Latencies) -> Callable[[], None]:
    """Start a Queue with default options; return once assigned, and its stop."""

    def handle(message: Message) -> None:
        latencies.note(message.value)

    conf = KqConf(Brokers=[brokers], Group=unique("lat-zq"), Topic=topic, Offset="first")
    queue = Queue(conf, handle, session_timeout=SESSION_TIMEOUT, handle_signals=False)
    context = queue.running()
    context.__enter__()
    deadline = time.monotonic() + 60
    while len(queue.assignment()) < PARTITIONS:
        if time.monotonic() > deadline:
            raise RuntimeError("the queue was not assigned within 60s")
        time.sleep(0.02)
    return lambda: context.__exit__(None, None, None)


def measure(brokers: str, consumer: str, rate: float, seconds: float) -> tuple[float, float]:
    """One round: p50 and p99 latency in milliseconds."""
    topic = unique("lat")
    admin.create_topic([brokers], topic, partitions=PARTITIONS)
    count = max(20, int(rate * seconds))
    latencies = Latencies(count)
    stop = (_raw if consumer == "raw" else _queue)(brokers, topic, latencies)
    try:
        _send(brokers, topic, rate, count)
        if not latencies.done.wait(30):
            raise RuntimeError(f"{consumer}: {len(latencies.seconds)} of {count} arrived")
    finally:
        stop()
        admin.delete_topic([brokers], topic)
    ordered = sorted(latencies.seconds)
    p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]
    return statistics.median(ordered) * 1000, p99 * 1000


def run(rounds: int, quick: bool, kind: str = "tansu") -> list[Result]:
    """Alternate raw and Queue rounds at each rate; report median p50 and p99."""
    results: list[Result] = []
    plans = [(1000.0, 2.0 if quick else 5.0), (10.0, 2.0 if quick else 10.0)]
    with broker(kind) as brokers:
        for rate, seconds in plans:
            figures: dict[str, list[tuple[float, float]]] = {"raw": [], "zeroqueue": []}
            order = list(figures)
            for round_ in range(1, rounds + 1):
                for consumer in order if round_ % 2 else reversed(order):
                    p50, p99 = measure(brokers, consumer, rate, seconds)
                    figures[consumer].append((p50, p99))
                    log(
                        f"  latency {rate:,.0f} msg/s: round {round_}/{rounds} "
                        f"{consumer:>9}: p50 {p50:.1f} ms, p99 {p99:.1f} ms"
                    )
            for index, name in ((0, "p50"), (1, "p99")):
                ours = median([f[index] for f in figures["zeroqueue"]])
                raw = median([f[index] for f in figures["raw"]])
                if kind == "kafka":
                    target, passed = "<= 1.2x raw", ours <= 1.2 * raw
                elif name == "p50":
                    target, passed = "< 100 ms", ours < 100
                else:
                    target, passed = "", None
                results.append(
                    Result(
                        f"latency {name} at {rate:,.0f} msg/s ({kind})",
                        "ms",
                        ours,
                        raw,
                        "raw consumer",
                        target,
                        passed,
                    )
                )
    return results


def main() -> None:
    parser = base_parser("End-to-end latency: the default Queue against the raw consumer.")
    args = parser.parse_args()
    results = run(args.rounds, args.quick, args.broker)
    print_table(results, f"latency: median of {args.rounds} round(s) ({args.broker})")


if __name__ == "__main__":
    main()
