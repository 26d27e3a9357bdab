"""child_span: a span under the current one, skipped inside a trace that is not recorded."""

from opentelemetry import trace
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from adapters.observability.spans import child_span

tracer = trace.get_tracer(__name__)
ATTRIBUTES = {"db.system.name": "redis"}


def test_child_of_recorded_span_is_recorded(spans: InMemorySpanExporter) -> None:
    with (
        tracer.start_as_current_span("process") as parent,
        child_span(tracer, "VerificationStore.get", trace.SpanKind.CLIENT, ATTRIBUTES),
    ):
        pass

    (child, _) = spans.get_finished_spans()
    assert child.name == "VerificationStore.get"
    assert child.parent is not None
    assert child.parent.span_id == parent.get_span_context().span_id
    assert child.attributes == ATTRIBUTES


def test_child_of_unrecorded_span_is_skipped(spans: InMemorySpanExporter) -> None:
    dropped = trace.NonRecordingSpan(
        trace.SpanContext(0xABC, 0xDEF, is_remote=False, trace_flags=trace.TraceFlags(0))
    )

    with (
        trace.use_span(dropped),
        child_span(tracer, "VerificationStore.get", trace.SpanKind.CLIENT, ATTRIBUTES) as span,
    ):
        current = trace.get_current_span()

    assert span is trace.INVALID_SPAN
    assert current is dropped
    assert spans.get_finished_spans() == ()


def test_span_without_parent_is_left_to_the_sampler(spans: InMemorySpanExporter) -> None:
    with child_span(tracer, "VerificationStore.get", trace.SpanKind.CLIENT, ATTRIBUTES):
        pass

    (span,) = spans.get_finished_spans()
    assert span.parent is None
