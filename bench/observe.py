"""What tracing and metrics cost: push and consume with each off and on, beside the raw client.

python -m bench.observe              # 5 alternating rounds; --quick for a smoke run

Every variant runs in the same rounds, the order flipping each round: the raw
confluent-kafka client, zeroqueue with tracing and metrics off (the figure that
must match the plain push and consume benchmarks), with an OpenTelemetry SDK
recording every span (sampled, batched to an exporter that drops them: the
SDK's cost, not a collector's), and with Prometheus metrics on.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult

from bench import consume, push
from bench._common import (
    Clock,
    Result,
    alternate,
    base_parser,
    broker,
    fill_topic,
    keys,
    log,
    median,
    print_table,
    unique,
)
from zeroqueue import metrics
from zeroqueue.admin import create_topic, delete_topic
from zeroqueue.tracing import use_tracer_provider

# The plain benchmarks' targets hold with observability off; these say what on costs.
PUSH_MESSAGES, CONSUME_MESSAGES = 300_000, 300_000
PARTITIONS = 8


class _Dropped(SpanExporter):
    """Takes every span and keeps none: the SDK's own cost, not a collector's."""

    def export(self, spans: Sequence[Any]) -> SpanExportResult:
        return SpanExportResult.SUCCESS


@contextlib.contextmanager
def tracing_on() -> Iterator[None]:
    provider = TracerProvider()
    provider.add_span_processor(BatchSpanProcessor(_Dropped(), max_queue_size=65_536))
    use_tracer_provider(provider)
    try:
        yield
    finally:
        use_tracer_provider(None)
        provider.shutdown()


@contextlib.contextmanager
def metrics_on() -> Iterator[None]:
    metrics.enable()
    try:
        yield
    finally:
        metrics.disable()


MODES: dict[str, Callable[[], contextlib.AbstractContextManager[None]]] = {
    "off": contextlib.nullcontext,
    "tracing": tracing_on,
    "metrics": metrics_on,
}


def push_rows(brokers: str, messages: int, rounds: int) -> list[Result]:
    scenario = push.Scenario("push 100 B keyed, acks=all idempotent", 100, messages, {})
    names, value = keys(push.KEY_COUNT), b"v" * 100
    failures: list[str] = []
    settings = push.raw_settings(push.pusher_settings(brokers, unique("probe"), {}), failures)

    def on_fresh_topic(run: Callable[[str], float]) -> Callable[[], float]:
        def timed() -> float:
            topic = unique("observe-push")
            create_topic([brokers], topic, partitions=PARTITIONS)
            rate = run(topic)
            delete_topic([brokers], topic)
            if failures:
                raise RuntimeError(f"raw producer failed: {failures[:3]}")
            return rate

        return timed

    def zeroqueue(mode: str) -> Callable[[str], float]:
        def run(topic: str) -> float:
            with MODES[mode]():
                return push.push_zeroqueue(brokers, topic, scenario, names, value)

        return run

    runs = {"raw": on_fresh_topic(lambda t: push.push_raw(settings, t, scenario, names, value))}
    runs |= {mode: on_fresh_topic(zeroqueue(mode)) for mode in MODES}
    rates = alternate("push", rounds, runs)
    return _rows(scenario.label, rates)


def consume_rows(brokers: str, messages: int, rounds: int) -> list[Result]:
    topic = unique("observe-consume")
    create_topic([brokers], topic, partitions=PARTITIONS)
    fill_topic(brokers, topic, messages)
    settings = consume.raw_settings(brokers, topic)

    def zeroqueue(mode: str) -> Callable[[], float]:
        def run() -> float:
            clock = Clock(messages)
            with MODES[mode]():
                queue = consume.make_queue(brokers, topic, consume.PROCESSORS, clock.noop())
                return consume.consume_queue(queue, clock)

        return run

    runs = {"raw": lambda: consume.consume_raw(settings, topic, Clock(messages))}
    runs |= {mode: zeroqueue(mode) for mode in MODES}
    rates = alternate("consume", rounds, runs)
    delete_topic([brokers], topic)
    return _rows(f"consume {messages:,} x 100 B, no-op, P={consume.PROCESSORS}", rates)


def _rows(label: str, rates: dict[str, list[float]]) -> list[Result]:
    raw = median(rates["raw"])
    return [Result(f"{label}, {mode}", "msg/s", median(rates[mode]), raw, "raw") for mode in MODES]


def run(rounds: int, quick: bool, kind: str = "tansu") -> list[Result]:
    push_count = 50_000 if quick else PUSH_MESSAGES
    consume_count = 50_000 if quick else CONSUME_MESSAGES
    with broker(kind) as brokers:
        log("== push with tracing and metrics off and on")
        results = push_rows(brokers, push_count, rounds)
        log("== consume with tracing and metrics off and on")
        results += consume_rows(brokers, consume_count, rounds)
    return results


def main() -> None:
    parser = base_parser(__doc__.splitlines()[0] if __doc__ else "observability cost")
    parser.set_defaults(rounds=5)
    args = parser.parse_args()
    print_table(run(args.rounds, args.quick, args.broker), "tracing and metrics, off and on")


if __name__ == "__main__":
    main()
