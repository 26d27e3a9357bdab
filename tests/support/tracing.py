"""One in-memory span exporter for the test process, installed as the global tracer provider."""

from functools import cache

from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

# The W3C example trace context: version, trace id, parent span id, sampled flag.
TRACE_ID = "0af7651916cd43dd8448eb211c80319c"
TRACEPARENT = f"00-{TRACE_ID}-b7ad6b7169203331-01"


@cache
def span_exporter() -> InMemorySpanExporter:
    """Return the exporter that records every finished span of this process.

    OpenTelemetry lets a process set its global tracer provider once, so every test
    shares this one and clears it before use.
    """
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    trace.set_tracer_provider(provider)
    return exporter


def trace_hex(span: ReadableSpan) -> str:
    """Return the span's trace id as 32 hex digits."""
    assert span.context is not None
    return trace.format_trace_id(span.context.trace_id)


def attribute_values(spans: tuple[ReadableSpan, ...]) -> list[str]:
    """Return every attribute value of `spans` as text, for leak checks."""
    return [str(value) for span in spans for value in (span.attributes or {}).values()]
