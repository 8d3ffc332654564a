"""OpenTelemetry tracing: W3C trace context in Kafka headers, a span per push and per handling.

On when the ``opentelemetry-api`` package is installed (the ``tracing`` extra)
and an SDK tracer provider is set (``trace.set_tracer_provider(...)``) before a
Pusher, Queue or Server is built; otherwise nothing is added to any push or
handling. Context crosses through the global propagator, as go-queue and
kratos-transport use it: with go-zero's default (trace context and baggage) the
headers are ``traceparent``, ``tracestate`` and ``baggage``, as text.
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Awaitable, Iterator, Mapping, Sequence
from typing import Any

from confluent_kafka import Message as KafkaMessage

from zeroqueue._kafka.headers import decode_int, last
from zeroqueue._telemetry import setup_telemetry
from zeroqueue.engine.handlers import HandlerSpec
from zeroqueue.message import ATTEMPTS_HEADER

__all__ = [
    "PushTracer",
    "end_span",
    "forwarding",
    "inject_current",
    "push_tracer",
    "setup_telemetry",
    "traced_handler",
    "tracing_enabled",
    "use_tracer_provider",
]

try:
    from opentelemetry import context as otel_context
    from opentelemetry import propagate, trace
    from opentelemetry.trace import SpanKind, Status, StatusCode
except ImportError:  # the tracing extra is not installed: tracing stays off
    trace = None  # type: ignore[assignment]

_INSTRUMENTATION = "zeroqueue"

HeaderPairs = list[tuple[str, str | bytes | None]]


# A provider zeroqueue uses instead of the global one (use_tracer_provider).
_own_provider: list[Any] = []


def use_tracer_provider(provider: Any) -> None:
    """Trace with ``provider`` instead of OpenTelemetry's global one; ``None``: the global again.

    For tests and for services that keep zeroqueue's spans apart. Faces built
    afterwards use it (a Pusher or Queue decides when it is built).
    """
    _own_provider[:] = [] if provider is None else [provider]


def _provider() -> Any:
    return _own_provider[0] if _own_provider else trace.get_tracer_provider()


def _tracer() -> Any:
    return _provider().get_tracer(_INSTRUMENTATION)


def tracing_enabled() -> bool:
    """Whether an OpenTelemetry SDK is there to record spans (checked when a face is built)."""
    if trace is None:
        return False
    provider = _provider()
    return not isinstance(provider, (trace.ProxyTracerProvider, trace.NoOpTracerProvider))


def _pairs(headers: Mapping[str, Any] | Sequence[tuple[str, Any]] | None) -> HeaderPairs:
    if headers is None:
        return []
    items = headers.items() if isinstance(headers, Mapping) else headers
    return list(items)


def _carrier(headers: HeaderPairs) -> dict[str, str]:
    """Headers as the text map a propagator reads (the last of a name wins, as in go-queue)."""
    carrier: dict[str, str] = {}
    for name, value in headers:
        if isinstance(value, bytes):
            try:
                carrier[name.lower()] = value.decode()
            except UnicodeDecodeError:
                continue
        elif isinstance(value, str):
            carrier[name.lower()] = value
    return carrier


def _key_text(key: str | bytes | None) -> str | None:
    if isinstance(key, bytes):
        try:
            return key.decode()
        except UnicodeDecodeError:
            return None
    return key


def inject_current(headers: HeaderPairs, context: Any = None) -> HeaderPairs:
    """``headers`` with ``context``'s (default: the current one's) trace headers in place."""
    carrier: dict[str, str] = {}
    propagate.inject(carrier, context=context)
    if not carrier:
        return headers
    parent = carrier.get("traceparent")
    if parent is not None and len(parent) == 55:
        # Only the sampled flag: newer SDKs also set 0x02 (a random trace id, Trace
        # Context level 2), and the OpenTelemetry Go that go-zero and go-queue pin
        # drops a version-00 traceparent with any flag above 0x02 set as invalid.
        carrier["traceparent"] = f"{parent[:53]}{int(parent[53:], 16) & 0x01:02x}"
    kept = [(name, value) for name, value in headers if name.lower() not in carrier]
    return kept + [(name, value.encode()) for name, value in carrier.items()]


class PushTracer:
    """Spans for the pushes to one topic: ``send <topic>``, its context in the headers."""

    def __init__(self, topic: str) -> None:
        self._tracer = _tracer()
        self._name = f"send {topic}"
        self._attributes: dict[str, Any] = {
            "messaging.system": "kafka",
            "messaging.destination.name": topic,
            "messaging.operation.type": "send",
            "messaging.operation.name": "send",
        }

    def start(
        self,
        key: str | bytes | None,
        headers: Mapping[str, Any] | Sequence[tuple[str, Any]] | None,
        delay: float | None = None,
    ) -> tuple[Any, HeaderPairs]:
        """Start a producer span for one push; return it and the headers to send.

        The caller ends it (:func:`end_span`) once the push returned or raised.
        """
        attributes = self._attributes.copy()
        text = _key_text(key)
        if text is not None:
            attributes["messaging.kafka.message.key"] = text
        if delay is not None:
            attributes["zeroqueue.delay"] = delay
        pairs = _pairs(headers)
        # No span is current but the headers carry a context (a message passed on by
        # hand): the push continues that trace rather than starting one.
        parent = None
        if pairs and not trace.get_current_span().get_span_context().is_valid:
            parent = propagate.extract(_carrier(pairs))
        span = self._tracer.start_span(
            self._name, context=parent, kind=SpanKind.PRODUCER, attributes=attributes
        )
        return span, inject_current(pairs, trace.set_span_in_context(span, parent))


def end_span(span: Any, error: BaseException | None = None) -> None:
    """End a span :meth:`PushTracer.start` began, recording ``error`` if the push raised."""
    if error is not None:
        _failed(span, error)
    span.end()


@contextlib.contextmanager
def forwarding(
    topic: str, key: str | bytes | None, headers: Sequence[tuple[str, Any]]
) -> Iterator[HeaderPairs]:
    """A ``send <topic>`` span for a message pushed on (to a retry or dead-letter topic).

    Its parent is the context the message carries, so the retry's handling
    stays in the trace its first push started; yields the headers with the
    span's context in place of the old. Without tracing, the headers as they are.
    """
    pairs = list(headers)
    if not tracing_enabled():
        yield pairs
        return
    parent = propagate.extract(_carrier(pairs))
    attributes: dict[str, Any] = {
        "messaging.system": "kafka",
        "messaging.destination.name": topic,
        "messaging.operation.type": "send",
        "messaging.operation.name": "send",
    }
    text = _key_text(key)
    if text is not None:
        attributes["messaging.kafka.message.key"] = text
    tracer = _tracer()
    with tracer.start_as_current_span(
        f"send {topic}", context=parent, kind=SpanKind.PRODUCER, attributes=attributes
    ):
        yield inject_current(pairs)


def push_tracer(topic: str) -> PushTracer | None:
    """A tracer for pushes to ``topic``, or None when tracing is off."""
    return PushTracer(topic) if tracing_enabled() else None


@dataclasses.dataclass(frozen=True)
class _TracedHandler(HandlerSpec):
    """A handler whose every call runs in a ``process <topic>`` span, under the pushed context."""

    inner: HandlerSpec = dataclasses.field(default=None)  # type: ignore[assignment]
    group: str = ""
    tracer: Any = None

    def call(self, record: KafkaMessage, attempt: int = 1) -> Any:
        """Call the handler inside a consumer span whose parent is the message's context."""
        span, token, parent = self._start(record, attempt)
        try:
            result = self.inner.call(record, attempt)
        except BaseException as error:
            _failed(span, error)
            span.end()
            raise
        finally:
            otel_context.detach(token)
        if self.inner.is_async:
            return self._finish_async(result, span, parent)
        span.end()
        return result

    def _start(self, record: KafkaMessage, attempt: int) -> tuple[Any, Any, Any]:
        headers: HeaderPairs = record.headers() or []  # type: ignore[assignment]
        parent = propagate.extract(_carrier(headers))
        topic = record.topic() or ""
        attributes: dict[str, Any] = {
            "messaging.system": "kafka",
            "messaging.destination.name": topic,
            "messaging.operation.type": "process",
            "messaging.operation.name": "process",
            "messaging.consumer.group.name": self.group,
            "messaging.destination.partition.id": str(record.partition()),
            "messaging.kafka.offset": record.offset() or 0,
        }
        key = _key_text(record.key())
        if key is not None:
            attributes["messaging.kafka.message.key"] = key
        # Counting earlier deliveries too (a retry topic's message records them).
        earlier = last(headers, ATTEMPTS_HEADER)  # type: ignore[arg-type]  # Kafka's are bytes
        attempt += decode_int(earlier if isinstance(earlier, bytes) else None) or 0
        if attempt > 1:
            attributes["zeroqueue.attempt"] = attempt
        span = self.tracer.start_span(
            f"process {topic}", context=parent, kind=SpanKind.CONSUMER, attributes=attributes
        )
        token = otel_context.attach(trace.set_span_in_context(span, parent))
        return span, token, parent

    async def _finish_async(self, result: Awaitable[Any], span: Any, parent: Any) -> Any:
        # The coroutine runs on the event loop after call() returned: it gets the
        # span as its current context there, with what the message carried (baggage).
        token = otel_context.attach(trace.set_span_in_context(span, parent))
        try:
            return await result
        except BaseException as error:
            _failed(span, error)
            raise
        finally:
            otel_context.detach(token)
            span.end()


def _failed(span: Any, error: BaseException) -> None:
    span.record_exception(error)
    span.set_status(Status(StatusCode.ERROR, f"{type(error).__name__}: {error}"))


def traced_handler(handler: HandlerSpec, group: str) -> HandlerSpec:
    """``handler`` in consumer spans when tracing is on; else ``handler`` itself."""
    if not tracing_enabled():
        return handler
    return _TracedHandler(
        func=handler.func,
        is_async=handler.is_async,
        takes_message=True,  # not the engine's (key, value) fast path: it skips call()
        name=handler.name,
        # A run handler (the delay releasers') keeps its runs: no span per message then.
        handle_run=handler.handle_run,
        inner=handler,
        group=group,
        tracer=_tracer(),
    )
