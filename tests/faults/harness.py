"""What the fault scenarios share: consumer processes, pushes, committed-offset readings.

Everything here feeds :mod:`tests.faults.oracle`: :class:`Run` is one consumer
process and its log, :class:`Progress` follows what all runs handled (so a
scenario waits on a condition, never a bare sleep), :class:`CommitSampler`
reads the group's committed offsets every 0.1 s and on demand, and the pushers
record each message with its key's sequence number and its fate.
"""

from __future__ import annotations

import contextlib
import os
import random
import signal
import subprocess
import sys
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

from confluent_kafka import Consumer, KafkaException, TopicPartition

from tests.faults.oracle import CommitSample, Handled, Pushed, read_log
from tests.kafka_helpers import kafka_libs
from zeroqueue import DeliveryError, Message, Pusher, PushError
from zeroqueue.embedded import BrokerProcess, EmbeddedBroker, KafkaBroker

__all__ = [
    "CommitSampler",
    "Progress",
    "Run",
    "SteadyPusher",
    "own_broker",
    "push_all",
]

ROOT = Path(__file__).resolve().parents[2]


class Run:
    """One consumer process (``tests.faults.consumer_process``) and its log file."""

    def __init__(
        self,
        name: str,
        brokers: str,
        topic: str,
        group: str,
        log_dir: Path,
        *,
        args: Sequence[str] = (),
        env: dict[str, str] | None = None,
    ) -> None:
        self.name = name
        self.log = log_dir / f"{name}.log"
        self.log.touch()
        self.stopped_on_purpose = False
        #: Lines of its log read so far (by :class:`Progress`).
        self.handled = 0
        self._read_at = 0
        self._partial = b""
        with (log_dir / f"{name}.err").open("wb") as stderr:
            self.process = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "tests.faults.consumer_process",
                    brokers,
                    topic,
                    group,
                    str(self.log),
                    *args,
                ],
                cwd=ROOT,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=stderr,
                env={**os.environ, **(env or {})},
            )

    @property
    def pid(self) -> int:
        return self.process.pid

    def new_lines(self) -> list[str]:
        """Complete lines written since the last call."""
        with self.log.open("rb") as log:
            log.seek(self._read_at)
            data = log.read()
        self._read_at += len(data)
        data, self._partial = self._partial + data, b""
        lines = data.split(b"\n")
        self._partial = lines.pop()
        return [line.decode() for line in lines]

    def records(self) -> list[Handled]:
        return read_log(self.log, self.name)

    def stderr_tail(self, lines: int = 15) -> str:
        text = self.log.with_suffix(".err").read_text(errors="replace")
        return "\n".join(text.splitlines()[-lines:])

    def assignments(self) -> int:
        """How many rebalances assigned it partitions (maybe none) so far, from its stderr."""
        return self.log.with_suffix(".err").read_text(errors="replace").count("zeroqueue: assigned")

    def died(self) -> bool:
        """Whether it exited without being told to."""
        return not self.stopped_on_purpose and self.process.poll() is not None

    def kill(self) -> None:
        """SIGKILL it and reap it."""
        self.stopped_on_purpose = True
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(10)

    def terminate(self, timeout: float = 30.0) -> int:
        """SIGTERM it (the Queue drains, commits and leaves) and return its exit status."""
        self.signal_stop()
        return self.wait(timeout)

    def signal_stop(self) -> None:
        """SIGTERM it once it handles SIGTERM (before that, the signal would kill it)."""
        self.stopped_on_purpose = True
        ready = self.log.with_name(f"{self.log.name}.ready")
        deadline = time.monotonic() + 30.0
        while not ready.exists() and self.process.poll() is None:
            if time.monotonic() > deadline:
                break
            time.sleep(0.01)
        self.process.send_signal(signal.SIGTERM)

    def wait(self, timeout: float) -> int:
        """Wait for its exit after a SIGTERM (a second one would cut the drain short)."""
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(10)
            raise AssertionError(
                f"{self.name} did not stop within {timeout}s of SIGTERM:\n{self.stderr_tail()}"
            ) from None

    def ensure_gone(self) -> None:
        """For a finally block: whatever happened, leave no process behind."""
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)


class Progress:
    """What the runs handled so far, read from their logs as they grow."""

    def __init__(self, seed: int) -> None:
        self.seed = seed
        self.runs: list[Run] = []
        self.values: set[str] = set()
        self.lines = 0

    def add(self, run: Run) -> Run:
        self.runs.append(run)
        return run

    def poll(self) -> None:
        for run in self.runs:
            for line in run.new_lines():
                self.values.add(line.split(" ", 4)[3])
                self.lines += 1
                run.handled += 1

    def wait_for(
        self,
        ready: Callable[[Progress], bool],
        timeout: float,
        what: str,
        *,
        quiet: float | None = None,
        must: bool = True,
    ) -> bool:
        """Poll the logs until ``ready(self)``; fail naming ``what``, the count and the seed.

        With ``must=False`` give up quietly instead (return False): the caller lets
        the oracle say what is missing. With ``quiet``, give up too once handling
        began and nothing more was handled for that many seconds.
        """
        deadline = time.monotonic() + timeout
        lines, last_news, began = self.lines, time.monotonic(), False
        while True:
            self.poll()
            if ready(self):
                return True
            now = time.monotonic()
            if self.lines != lines:
                lines, last_news, began = self.lines, now, True
            dead = [run for run in self.runs if run.died()]
            if dead:
                run = dead[0]
                raise AssertionError(
                    f"{run.name} exited with status {run.process.returncode} while waiting for"
                    f" {what} (seed {self.seed}):\n{run.stderr_tail()}"
                )
            stalled = quiet is not None and began and now - last_news > quiet
            if now > deadline or stalled:
                if not must:
                    return False
                raise AssertionError(
                    f"no {what} within {timeout}s: {len(self.values)} distinct messages handled"
                    f" (seed {self.seed})"
                )
            time.sleep(0.02)

    def handled(self, count: int) -> Callable[[Progress], bool]:
        return lambda progress: len(progress.values) >= count

    def all_of(self, values: Sequence[str]) -> Callable[[Progress], bool]:
        wanted = set(values)
        return lambda progress: wanted <= progress.values

    def records(self) -> list[Handled]:
        return [record for run in self.runs for record in run.records()]


class CommitSampler:
    """Reads the group's committed offsets every ``interval`` s, and when asked to."""

    def __init__(
        self, brokers: str, group: str, topic: str, partitions: int, interval: float = 0.1
    ):
        self.samples: list[CommitSample] = []
        self._partitions = [TopicPartition(topic, p) for p in range(partitions)]
        self._consumer = Consumer({"bootstrap.servers": brokers, "group.id": group})
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._started = time.monotonic()
        self._interval = interval
        self._thread = threading.Thread(target=self._loop, name="commit-sampler", daemon=True)
        self._thread.start()

    def sample(self, label: str, timeout: float = 10.0) -> CommitSample:
        with self._lock:
            committed = self._consumer.committed(self._partitions, timeout=timeout)
            reading = CommitSample(
                time.monotonic_ns(), {tp.partition: tp.offset for tp in committed}, label
            )
            self.samples.append(reading)
        return reading

    def _loop(self) -> None:
        while not self._stop.wait(self._interval):
            # During a freeze or a restart of the broker a reading fails: skip it.
            with contextlib.suppress(KafkaException):
                self.sample(f"the reading at {time.monotonic() - self._started:.1f}s", 2.0)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(10)
        with self._lock:
            self._consumer.close()


def _keyed(rng: random.Random, count: int, keys: int, first: int = 0) -> Iterator[tuple[str, str]]:
    for number in range(first, first + count):
        yield f"k{rng.randrange(keys)}", str(number)


def push_all(brokers: str, topic: str, rng: random.Random, count: int, keys: int) -> list[Pushed]:
    """Push ``count`` messages over ``keys`` keys chosen by ``rng``; every one acknowledged."""
    pushed: list[Pushed] = []
    seq: dict[str, int] = defaultdict(int)
    with Pusher([brokers], topic) as pusher:
        for key, value in _keyed(rng, count, keys):
            pusher.push_with_key(key, value)
            pushed.append(Pushed(key, seq[key], value))
            seq[key] += 1
    return pushed


class SteadyPusher:
    """Pushes keyed messages at about ``rate`` a second on a thread, until :meth:`finish`.

    Each message's fate is recorded: acknowledged, or raised (by ``push``, or as a
    failed delivery that ``error_handler`` heard and ``flush`` raised).
    """

    def __init__(
        self,
        brokers: str,
        topic: str,
        seed: int,
        keys: int,
        rate: float,
        **options: Any,
    ) -> None:
        self._rng = random.Random(seed)
        self._keys = keys
        self._rate = rate
        self._sent: list[tuple[str, str]] = []
        self.raised: set[str] = set()
        self.failed: set[str] = set()
        self.delivery_error: DeliveryError | None = None
        self._pushed: list[Pushed] | None = None
        self._pusher = Pusher([brokers], topic, error_handler=self._on_error, **options)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="steady-pusher", daemon=True)
        self._thread.start()

    @property
    def count(self) -> int:
        return len(self._sent)

    def _on_error(self, message: Message, error: PushError) -> None:
        self.failed.add((message.value or b"").decode())

    def _loop(self) -> None:
        started, number = time.monotonic(), 0
        while not self._stop.is_set():
            due = int((time.monotonic() - started) * self._rate)
            while number < due and not self._stop.is_set():
                key, value = f"k{self._rng.randrange(self._keys)}", str(number)
                number += 1
                try:
                    self._pusher.push_with_key(key, value)
                except PushError:
                    self.raised.add(value)
                self._sent.append((key, value))
            self._stop.wait(0.01)

    def finish(self, timeout: float = 60.0) -> list[Pushed]:
        """Stop pushing, close the Pusher and return every push with its fate (once)."""
        if self._pushed is not None:
            return self._pushed
        self._stop.set()
        self._thread.join(10)
        try:
            self._pusher.close(timeout)
        except DeliveryError as exc:
            self.delivery_error = exc
        pushed: list[Pushed] = []
        seq: dict[str, int] = defaultdict(int)
        for key, value in self._sent:
            fine = value not in self.raised and value not in self.failed
            pushed.append(Pushed(key, seq[key], value, acknowledged=fine))
            seq[key] += 1
        self._pushed = pushed
        return pushed


@contextlib.contextmanager
def own_broker(kind: str, tmp_path: Path, **options: Any) -> Iterator[BrokerProcess]:
    """A broker of ``kind`` for one test, which it may freeze or kill without harming others."""
    log = tmp_path / f"{kind}.log"
    broker: BrokerProcess = (
        EmbeddedBroker(log_path=log)
        if kind == "tansu"
        else KafkaBroker(log_path=log, libs=kafka_libs(), **options)
    )
    with broker:
        yield broker


def stop_all(runs: Sequence[Run], timeout: float = 30.0) -> None:
    """SIGTERM every run still alive at once, and require a clean exit of each."""
    alive = [run for run in runs if run.process.poll() is None]
    for run in alive:
        run.signal_stop()
    for run in alive:
        status = run.wait(timeout)
        assert status == 0, f"{run.name} exited with {status}:\n{run.stderr_tail()}"
