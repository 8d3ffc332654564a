"""The peer report: zeroqueue beside the raw client, aiokafka, FastStream and go-queue itself.

One run, one broker, each library at its defaults as its documentation shows it:
push throughput, consume throughput over a filled topic, and end-to-end latency
(p50 / p99) at a fixed rate; alternating rounds, medians. Writes peer.md,
peer.json and peer.png (peer-kafka.* on Apache Kafka) to bench/results/.

    python -m bench.peer                      # the report on the embedded broker
    python -m bench.peer --broker kafka       # on Apache Kafka (Java 17)
    python -m bench.peer --short --gate 0.5   # CI: a short run that fails on a regression

``--gate RATIO`` exits 1 when zeroqueue's sync face pushes or consumes at less
than RATIO times the raw confluent-kafka client (the best round of each). A
contender that fails is reported with its error and the others go on.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, replace
from functools import partial
from pathlib import Path
from typing import Any, TypeVar

from bench import _peer_go, _peers
from bench._common import SESSION_TIMEOUT, base_parser, fill_topic, keys, log, unique
from bench._peer_measure import TopicProbe, consume_rate, latency
from bench._peer_report import Outcome, Report, environment, write_report
from bench._peers import Load
from zeroqueue.admin import create_topic, delete_topic
from zeroqueue.embedded import BrokerProcess, EmbeddedBroker, KafkaBroker

PARTITIONS = 8
KEY_COUNT = 1000
VALUE_SIZE = 100
RATE = 1000.0
RESULTS = Path(__file__).parent / "results"
RAW, ZEROQUEUE, ZEROQUEUE_ASYNC = "confluent-kafka (raw)", "zeroqueue (sync)", "zeroqueue (async)"
GO_QUEUE = "go-queue (Go)"
# Longest a single timed run may take before it is reported failed; the waits
# inside each are shorter, so this fires only if something hangs outright.
GUARD_TIMEOUT = 360.0
MEASURES = ("push", "consume", "latency")
T = TypeVar("T")


@dataclass(frozen=True)
class Plan:
    """Sizes, rounds, measures and contenders of one run."""

    rounds: int = 3
    push_messages: int = 200_000
    consume_messages: int = 300_000
    latency_seconds: float = 3.0
    measures: tuple[str, ...] = MEASURES
    # The contenders to run (None: all); the others are reported as not run.
    only: tuple[str, ...] | None = None


FULL = Plan()
# CI's regression gate: the two contenders it compares and the async face, no Go,
# no latency; counts large enough that the Queue's start-up probe does not weigh.
SHORT = Plan(
    push_messages=100_000,
    consume_messages=500_000,
    measures=("push", "consume"),
    only=(RAW, ZEROQUEUE, ZEROQUEUE_ASYNC),
)


@dataclass(frozen=True)
class Contender:
    """A library's face, with a function per measure (None: it has no such part)."""

    name: str
    push: Callable[[str, Load], float] | None = None
    consume: Callable[[str, str, int], float] | None = None
    latency: Callable[[str, str, int], tuple[float, float]] | None = None
    # Why it is not run at all ("" when it is).
    skipped: str = ""


class StuckError(Exception):
    """A timed run did not return within GUARD_TIMEOUT; its thread is left behind."""


stuck_threads: list[threading.Thread] = []


def guarded(run: Callable[[], T], alive: Callable[[], bool], timeout: float = GUARD_TIMEOUT) -> T:
    """``run()`` on a thread of its own, given up after ``timeout`` or once not ``alive()``."""
    results: list[T] = []
    errors: list[BaseException] = []

    def target() -> None:
        try:
            results.append(run())
        except BaseException as exc:
            errors.append(exc)

    thread = threading.Thread(target=target, name="bench-peer-run", daemon=True)
    thread.start()
    deadline = time.monotonic() + timeout
    while thread.is_alive() and time.monotonic() < deadline and alive():
        thread.join(0.5)
    if thread.is_alive():
        stuck_threads.append(thread)
        if not alive():
            raise StuckError("the broker stopped during the run")
        raise StuckError(f"no result within {timeout:.0f}s")
    if errors:
        raise errors[0]
    return results[0]


def describe(error: BaseException) -> str:
    """One line: the error's type and message."""
    text = " ".join(str(error).split()) or "(no message)"
    return f"{type(error).__name__}: {text[:300]}"


def contenders(
    session: float | None, latency_keys: Sequence[str], go: Path | None, go_skipped: str
) -> list[Contender]:
    """Every contender, each measure bound to its library's code."""
    rate = RATE

    def python(starter: _peers.Starter) -> dict[str, Any]:
        return {
            "consume": lambda brokers, topic, count: consume_rate(
                starter, brokers, topic, count, session
            ),
            "latency": lambda brokers, topic, count: latency(
                starter, brokers, topic, rate=rate, count=count, keys=latency_keys, session=session
            ),
        }

    peers = [
        Contender(RAW, _peers.push_raw, **python(_peers.consume_raw)),
        Contender(ZEROQUEUE, _peers.push_zeroqueue, **python(_peers.consume_zeroqueue)),
        Contender(
            ZEROQUEUE_ASYNC,
            _peers.push_zeroqueue_async,
            **python(_peers.consume_zeroqueue_async),
        ),
        Contender("aiokafka", _peers.push_aiokafka, **python(_peers.consume_aiokafka)),
        Contender("FastStream", _peers.push_faststream, **python(_peers.consume_faststream)),
    ]
    if go is None:
        return [*peers, Contender(GO_QUEUE, skipped=go_skipped)]
    binary = go
    return [
        *peers,
        Contender(
            GO_QUEUE,
            partial(_peer_go.push, binary),
            partial(_peer_go.consume, binary),
            lambda brokers, topic, count: _peer_go.latency(
                binary, brokers, topic, rate=rate, count=count, keys=latency_keys
            ),
        ),
    ]


class Run:
    """One broker, one plan: every measure for every contender, the outcomes kept."""

    def __init__(self, broker: BrokerProcess, plan: Plan, runners: Sequence[Contender]) -> None:
        self.broker = broker
        self.brokers = broker.bootstrap_servers
        self.plan = plan
        self.outcomes = {c.name: {m: Outcome() for m in MEASURES} for c in runners}
        for contender in runners:
            for measure in MEASURES:
                outcome = self.outcomes[contender.name][measure]
                if contender.skipped:
                    outcome.error = f"not run: {contender.skipped}"
                elif getattr(contender, measure) is None or measure not in plan.measures:
                    outcome.error = "not run"
        self.live = [c for c in runners if not c.skipped]

    def alternate(self, measure: str, run: Callable[[Contender], Any]) -> None:
        """Time each contender once per round, the order flipping every round.

        A contender that fails is not run again; a dead broker fails what is left.
        """
        runners = [c for c in self.live if getattr(c, measure) is not None]
        rounds = self.plan.rounds
        for round_ in range(1, rounds + 1):
            for contender in runners if round_ % 2 else list(reversed(runners)):
                outcome = self.outcomes[contender.name][measure]
                if outcome.error:
                    continue
                if not self.broker.is_running():
                    outcome.error = f"the broker stopped (see {self.broker.log_path})"
                    log(f"  {measure}: round {round_} {contender.name:>22}: {outcome.error}")
                    continue
                try:
                    figure = guarded(partial(run, contender), self.broker.is_running)
                except Exception as exc:
                    outcome.error = describe(exc)
                    log(f"  {measure}: round {round_} {contender.name:>22}: FAILED {outcome.error}")
                    continue
                outcome.rounds.append(figure)
                shown = (
                    f"p50 {figure[0]:,.1f} ms, p99 {figure[1]:,.1f} ms"
                    if isinstance(figure, tuple)
                    else f"{figure:>11,.0f} msg/s"
                )
                log(f"  {measure}: round {round_}/{rounds} {contender.name:>22}: {shown}")

    def on_topic(self, prefix: str, use: Callable[[str, TopicProbe], T]) -> T:
        """``use(topic, probe)`` on a fresh topic, writable on every partition; deleted after."""
        topic = unique(prefix)
        create_topic([self.brokers], topic, partitions=PARTITIONS)
        probe = TopicProbe(self.brokers, topic)
        try:
            probe.writable()
            return use(topic, probe)
        finally:
            probe.close()
            with contextlib.suppress(Exception):
                delete_topic([self.brokers], topic)

    def push(self) -> None:
        """Push throughput: a fresh topic each run."""
        count, brokers = self.plan.push_messages, self.brokers
        names, value = keys(KEY_COUNT), b"v" * VALUE_SIZE
        log(f"== push: {count:,} x {VALUE_SIZE} B keyed, a fresh topic each run")

        def run(contender: Contender) -> float:
            assert contender.push is not None
            push = contender.push

            def timed(topic: str, probe: TopicProbe) -> float:
                rate = push(brokers, Load(topic, count, names, value))
                probe.expect(count + 1)  # and the warm-up message
                return rate

            return self.on_topic("peer-push", timed)

        self.alternate("push", run)

    def consume(self) -> None:
        """Consume throughput: one filled topic, a fresh group each run."""
        count, brokers = self.plan.consume_messages, self.brokers

        def drain(topic: str, probe: TopicProbe) -> None:
            started = time.perf_counter()
            fill_topic(brokers, topic, count, value_size=VALUE_SIZE, key_count=KEY_COUNT)
            probe.expect(count)
            took = time.perf_counter() - started
            log(f"== consume: {count:,} x {VALUE_SIZE} B filled in {took:.1f}s; new group per run")

            def run(contender: Contender) -> float:
                assert contender.consume is not None
                return contender.consume(brokers, topic, count)

            self.alternate("consume", run)

        self.on_topic("peer-consume", drain)

    def latency(self) -> None:
        """End-to-end latency at RATE: a fresh topic each run."""
        count, brokers = max(20, int(RATE * self.plan.latency_seconds)), self.brokers
        log(f"== latency: {count:,} stamped messages at {RATE:,.0f} msg/s, a fresh topic each run")

        def run(contender: Contender) -> tuple[float, float]:
            assert contender.latency is not None
            measure = contender.latency
            return self.on_topic("peer-latency", lambda topic, _: measure(brokers, topic, count))

        self.alternate("latency", run)

    def all(self) -> dict[str, dict[str, Outcome]]:
        """Every measure of the plan, in order; the outcomes by contender and measure."""
        for measure in MEASURES:
            if measure in self.plan.measures:
                getattr(self, measure)()
        return self.outcomes


@contextlib.contextmanager
def started_broker(kind: str) -> Iterator[BrokerProcess]:
    """The embedded Tansu broker or Apache Kafka, for the whole run."""
    logging.getLogger("zeroqueue").setLevel(logging.WARNING)
    started = time.perf_counter()
    process: BrokerProcess = EmbeddedBroker() if kind == "tansu" else KafkaBroker()
    with process:
        took = time.perf_counter() - started
        log(f"{process.kind} on {process.bootstrap_servers} (started in {took:.1f}s)")
        yield process


def gate(report: Report, ratio: float) -> list[str]:
    """What falls below ``ratio`` x raw for zeroqueue's sync face (or could not be measured).

    It compares the best round of each: on a shared machine noise only ever
    slows a round (a neighbour's burst took single push rounds to half), and a
    regression slows them all.
    """
    failures = []
    for measure in ("push", "consume"):
        rounds = {n: report.outcomes[n][measure].rounds for n in (ZEROQUEUE, RAW)}
        errors = [(n, report.outcomes[n][measure].error) for n in (ZEROQUEUE, RAW)]
        if any(error for _, error in errors):
            failures += [
                f"{measure}: {name} failed a round ({error})" for name, error in errors if error
            ]
        elif not all(rounds.values()):
            failures.append(f"{measure}: not measured")
        elif (ours := max(rounds[ZEROQUEUE])) < ratio * (raw := max(rounds[RAW])):
            failures.append(
                f"{measure}: {ZEROQUEUE} {ours:,.0f} msg/s is {ours / raw:.2f}x {RAW}"
                f" {raw:,.0f} msg/s (best of {len(rounds[RAW])} rounds each),"
                f" below the gate of {ratio}x"
            )
    return failures


def parse(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = base_parser(__doc__.splitlines()[0] if __doc__ else "peer report")
    parser.set_defaults(rounds=None)
    parser.add_argument(
        "--short",
        action="store_true",
        help="small counts, the other peers one round, no Go, no latency: CI's run (--quick too)",
    )
    parser.add_argument(
        "--gate",
        type=float,
        metavar="RATIO",
        help="exit 1 when zeroqueue (sync) pushes or consumes below RATIO x raw confluent-kafka",
    )
    parser.add_argument(
        "--out",
        type=Path,
        help="where the report files go (default bench/results; with --short: none unless given)",
    )
    parser.add_argument("--messages", type=int, help="messages per push and consume run")
    parser.add_argument(
        "--measures", nargs="+", choices=MEASURES, help="the measures to run (default: all)"
    )
    parser.add_argument("--no-go", action="store_true", help="leave go-queue (Go) out")
    parser.add_argument(
        "--redraw",
        type=Path,
        metavar="JSON",
        help="measure nothing: write the table and chart again from a peer.json",
    )
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse(argv)
    if args.redraw is not None:
        report = Report.from_json(json.loads(args.redraw.read_text()))
        print(report.markdown())
        for path in write_report(report, args.out or args.redraw.parent, args.redraw.stem):
            log(f"wrote {path}")
        return 0
    short = args.short or args.quick
    plan = SHORT if short else FULL
    if args.rounds is not None:
        plan = replace(plan, rounds=args.rounds)
    if args.messages is not None:
        plan = replace(plan, push_messages=args.messages, consume_messages=args.messages)
    if args.measures:
        plan = replace(plan, measures=tuple(args.measures))
    # Tansu holds a JoinGroup for half the session timeout; Apache Kafka answers at once.
    session = SESSION_TIMEOUT if args.broker == "tansu" else None
    go: Path | None = None
    go_skipped = ""
    with_go = not args.no_go and (plan.only is None or GO_QUEUE in plan.only)
    if with_go:
        try:
            started = time.perf_counter()
            go = _peer_go.build()
            log(f"go-queue: built {go} in {time.perf_counter() - started:.1f}s")
        except Exception as exc:
            go_skipped = describe(exc)
            log(f"go-queue (Go) is skipped: {go_skipped}")
    runners = [
        c
        for c in contenders(session, keys(KEY_COUNT), go, go_skipped)
        if (plan.only is None or c.name in plan.only) and (with_go or c.name != GO_QUEUE)
    ]
    env = environment(args.broker)
    began = time.perf_counter()
    with started_broker(args.broker) as broker:
        outcomes = Run(broker, plan, runners).all()
    report = Report(
        contenders=[c.name for c in runners],
        outcomes=outcomes,
        broker=args.broker,
        plan=asdict(plan)
        | {
            "short": short,
            "partitions": PARTITIONS,
            "keys": KEY_COUNT,
            "value_bytes": VALUE_SIZE,
            "rate": RATE,
            "session_timeout": session,
        },
        baseline=RAW,
        seconds=time.perf_counter() - began,
        env=env | {"load_average_after": round(os.getloadavg()[0], 2)},
    )
    print(report.markdown())
    out = args.out if args.out is not None else (None if short else RESULTS)
    if out is not None:
        for path in write_report(report, out, "peer" if args.broker == "tansu" else "peer-kafka"):
            log(f"wrote {path}")
    status = 0
    if args.gate is not None:
        failures = gate(report, args.gate)
        for failure in failures:
            print(f"GATE FAILED: {failure}", file=sys.stderr)
        if failures:
            status = 1
        else:
            log(f"gate passed: {ZEROQUEUE} pushes and consumes at {args.gate}x {RAW} or more")
    if stuck_threads:
        # A client thread that hung would keep the interpreter from exiting.
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(status)
    return status


if __name__ == "__main__":
    sys.exit(main())
