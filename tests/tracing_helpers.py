"""An in-memory OpenTelemetry exporter for tests of trace propagation (the ``spans`` fixture)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from zeroqueue.tracing import use_tracer_provider

__all__ = ["Traced", "spans"]


@dataclass
class Traced:
    """What the spans went to, and a tracer of the same provider for the test's own spans."""

    exporter: InMemorySpanExporter
    tracer: trace.Tracer

    def named(self, name: str) -> list[ReadableSpan]:
        return [span for span in self.exporter.get_finished_spans() if span.name == name]

    def ancestors(self, span: ReadableSpan) -> list[str]:
        """Names of ``span``'s ancestors among the finished spans, nearest first."""
        by_id = {s.context.span_id: s for s in self.exporter.get_finished_spans()}
        names = []
        parent = span.parent
        while parent is not None and parent.span_id in by_id:
            found = by_id[parent.span_id]
            names.append(found.name)
            parent = found.parent
        return names


@pytest.fixture
def spans() -> Iterator[Traced]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    use_tracer_provider(provider)
    try:
        yield Traced(exporter, provider.get_tracer("test"))
    finally:
        use_tracer_provider(None)
        provider.shutdown()
