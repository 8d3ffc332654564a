"""How late delayed messages come: Kafka delay tiers, and the beanstalkd delay queue.

1,000 messages, each delayed 1 to 5 s (spread evenly), are pushed at once; the
handler notes when each arrives. Lateness is arrival minus the due time asked
for (push time + delay), so a negative figure is a message that came early.

- Kafka: ``Pusher.push_with_key(..., delay=...)`` to an 8-partition topic, a
  plain ``Queue`` of it releasing (embedded broker, or ``--broker kafka``);
- dq: ``zeroqueue.dq.Producer.delay`` on two beanstalkd nodes and a Redis (the
  servers this benchmark starts), ``zeroqueue.dq.Consumer`` handling;
- raw beanstalkd, for comparison: the same jobs reserved and handled as soon as
  beanstalkd makes them ready, as go-queue's consumer does (beanstalkd counts
  whole seconds).

The Kafka burst runs ``--rounds`` times (3) on one broker: the first burst meets a
broker just started, whose JVM is not warm yet; the later ones are pooled in a
row of their own, a broker as production runs it.

python -m bench.delay                 # embedded broker; needs beanstalkd and redis-server
python -m bench.delay --broker kafka  # Apache Kafka (needs Java 17)
"""

from __future__ import annotations

import contextlib
import shutil
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import greenstalk

from bench._common import base_parser, broker, log, unique
from zeroqueue import KqConf, Pusher, Queue, admin
from zeroqueue._process import ManagedProcess, free_port, wait_for_port
from zeroqueue.delay import create_tiers
from zeroqueue.dq import Beanstalk, Consumer, DqConf, Producer, RedisConf

COUNT = 1_000
SHORTEST, LONGEST = 1.0, 5.0


class Arrivals:
    """Notes when each message arrives, and wakes the waiter once all did."""

    def __init__(self, count: int) -> None:
        self.count = count
        self.at: dict[str, float] = {}
        self._done = threading.Event()
        self._lock = threading.Lock()

    def arrived(self, name: str) -> None:
        with self._lock:
            self.at.setdefault(name, time.time())
            if len(self.at) >= self.count:
                self._done.set()

    def wait(self, timeout: float) -> None:
        if not self._done.wait(timeout):
            raise RuntimeError(f"only {len(self.at)} of {self.count} arrived within {timeout}s")


def _delays(count: int) -> list[float]:
    return [SHORTEST + (LONGEST - SHORTEST) * index / (count - 1) for index in range(count)]


def _lateness(due: dict[str, float], arrivals: Arrivals) -> list[float]:
    return sorted(arrivals.at[name] - when for name, when in due.items())


def kafka(kind: str, count: int, rounds: int) -> list[list[float]]:
    """Lateness of ``count`` messages delayed on Kafka, for each of ``rounds`` bursts.

    The bursts run one after the other on the same broker, topic and Queue: the
    first meets a broker just started (a JVM not yet warm), the later ones a
    broker as production runs it.
    """
    with broker(kind) as brokers:
        topic = unique("delay")
        admin.create_topic([brokers], topic, partitions=8)
        create_tiers([brokers], topic)
        arrivals = Arrivals(count)
        conf = KqConf(Brokers=[brokers], Group=unique("delay-g"), Topic=topic, Offset="first")
        queue = Queue(
            conf,
            lambda message: arrivals.arrived(message.value_str),
            session_timeout=6.0,
            max_wait=0.1,
            handle_signals=False,
        )
        found: list[list[float]] = []
        with queue.running(), Pusher([brokers], topic) as pusher:
            _wait_for(lambda: queue.releasing == [topic], "the releaser")
            for round_number in range(rounds):
                arrivals = Arrivals(count)
                due: dict[str, float] = {}
                for index, delay in enumerate(_delays(count)):
                    name = f"r{round_number}-m{index}"
                    due[name] = time.time() + delay
                    pusher.push_with_key(f"user-{index % 100}", name, delay=delay)
                pusher.flush()
                arrivals.wait(LONGEST + 60)
                found.append(_lateness(due, arrivals))
        return found


@contextlib.contextmanager
def _servers() -> Iterator[DqConf]:
    """Two beanstalkd nodes and a Redis on free ports, stopped afterwards."""
    for binary in ("beanstalkd", "redis-server"):
        if shutil.which(binary) is None:
            raise RuntimeError(f"{binary} is not installed (apt-get install -y {binary})")
    with tempfile.TemporaryDirectory() as directory:
        started: list[ManagedProcess] = []
        ports = [free_port(), free_port()]
        redis_port = free_port()
        commands = [["beanstalkd", "-l", "127.0.0.1", "-p", str(port)] for port in ports]
        commands.append(
            ["redis-server", "--port", str(redis_port), "--bind", "127.0.0.1", "--save", ""]
        )
        try:
            for command, port in zip(commands, [*ports, redis_port], strict=True):
                process = ManagedProcess(command, Path(directory) / f"{command[0]}-{port}.log")
                process.start()
                started.append(process)
                if not wait_for_port("127.0.0.1", port, 15.0, alive=process.is_running):
                    raise RuntimeError(f"{command[0]} did not start:\n{process.log_tail()}")
            yield DqConf(
                beanstalks=[Beanstalk(endpoint=f"127.0.0.1:{p}", tube="bench") for p in ports],
                redis=RedisConf(host=f"127.0.0.1:{redis_port}"),
            )
        finally:
            for process in started:
                process.stop()


def dq(count: int) -> tuple[list[float], list[float]]:
    """Lateness of ``count`` jobs on beanstalkd: with zeroqueue's consumer, and raw."""
    with _servers() as conf:
        arrivals = Arrivals(count)
        due: dict[str, float] = {}
        with Consumer(conf, lambda body: arrivals.arrived(body.decode()), processors=8).running():
            with Producer.from_conf(conf) as producer:
                for index, delay in enumerate(_delays(count)):
                    name = f"j{index}"
                    due[name] = time.time() + delay
                    producer.delay(name, delay)
            arrivals.wait(LONGEST + 60)
        ours = _lateness(due, arrivals)

        node = conf.beanstalks[0]
        raw = Arrivals(count)
        raw_due: dict[str, float] = {}
        with greenstalk.Client(node.host_port, encoding=None, use="raw", watch="raw") as client:
            for index, delay in enumerate(_delays(count)):
                name = f"r{index}"
                raw_due[name] = time.time() + delay
                client.put(name.encode(), delay=int(delay))  # beanstalkd takes whole seconds
            while len(raw.at) < count:
                job = client.reserve(timeout=int(LONGEST) + 10)
                raw.arrived(job.body.decode())
                client.delete(job)
        return ours, _lateness(raw_due, raw)


def _wait_for(ready: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + 60
    while not ready():
        if time.monotonic() > deadline:
            raise RuntimeError(f"{what} did not start within 60s")
        time.sleep(0.05)


def _percentile(values: list[float], share: float) -> float:
    return values[min(len(values) - 1, int(share * len(values)))]


def _row(name: str, lateness: list[float]) -> str:
    early = sum(1 for value in lateness if value < 0)
    return (
        f"| {name} | {1000 * _percentile(lateness, 0.5):.0f} ms"
        f" | {1000 * _percentile(lateness, 0.99):.0f} ms | {1000 * lateness[-1]:.0f} ms"
        f" | {1000 * lateness[0]:+.0f} ms | {early} |"
    )


def main() -> None:
    parser = base_parser("How late delayed messages come.")
    args = parser.parse_args()
    count = 200 if args.quick else COUNT
    log(f"{count} messages delayed {SHORTEST:g}-{LONGEST:g} s each")
    first, *later = kafka(args.broker, count, max(1, args.rounds))
    rows = [_row(f"Kafka delay tiers ({args.broker}), first burst", first)]
    if later:
        pooled = [late for lateness in later for late in lateness]
        rows.append(_row(f"Kafka delay tiers ({args.broker}), {len(later)} later bursts", pooled))
    ours, raw = dq(count)
    rows += [_row("dq on beanstalkd + Redis", ours), _row("raw beanstalkd (go-queue's way)", raw)]
    print(f"\nlateness of {count} delayed messages (arrival - due)\n")
    print("| kind | p50 | p99 | max | earliest | early |")
    print("|---|---:|---:|---:|---:|---:|")
    for row in rows:
        print(row)


if __name__ == "__main__":
    main()
