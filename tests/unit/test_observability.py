"""Metrics, spans and log correlation of one verification handled through the container."""

import io
import json
import logging
from collections.abc import Iterator

import pytest
import structlog
from opentelemetry import trace
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from adapters.kafka.consumer import ConsumedMessage
from adapters.observability.metrics import REGISTRY
from application.errors import MessageRejected, ProviderUnavailable
from application.record_delivery_status import DeliveryReport
from entrypoints.logs import configure_logging
from tests.support.tracing import TRACE_ID, TRACEPARENT, attribute_values, trace_hex
from tests.unit.conftest import CODE, Fakes

PHONE = "+593991234567"
REQUEST = json.dumps({"Id": "user-1", "Phone": PHONE}).encode()


def sample(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def _message(value: bytes, headers: tuple[tuple[str, bytes], ...] = ()) -> ConsumedMessage:
    return ConsumedMessage("Verification", 3, 41, None, value, headers)


async def test_handled_request_counts_send_and_outcome(fakes: Fakes) -> None:
    before_handled = sample("verification_requests_consumed_total", outcome="handled")
    before_sent = sample("verification_sends_total", outcome="accepted", error_code="")
    handler = fakes.container.request_handler()

    await handler(_message(REQUEST))

    assert sample("verification_requests_consumed_total", outcome="handled") == before_handled + 1
    assert sample("verification_sends_total", outcome="accepted", error_code="") == before_sent + 1


async def test_send_errors_count_by_error_code(fakes: Fakes) -> None:
    rejected = {"outcome": "rejected", "error_code": "63016"}
    unavailable = {"outcome": "unavailable", "error_code": "20503"}
    before_rejected = sample("verification_sends_total", **rejected)
    before_unavailable = sample("verification_sends_total", **unavailable)
    before_retries = sample("verification_retries_total", error="ProviderUnavailable")
    fakes.sender.fail_next(
        ProviderUnavailable("HTTP 503", "20503"), MessageRejected("outside window", "63016")
    )
    handler = fakes.container.request_handler()

    await handler(_message(REQUEST))

    assert sample("verification_sends_total", **rejected) == before_rejected + 1
    assert sample("verification_sends_total", **unavailable) == before_unavailable + 1
    assert sample("verification_retries_total", error="ProviderUnavailable") == before_retries + 1


async def test_exhausted_retries_count_dead_letter(fakes: Fakes) -> None:
    before = sample("verification_dead_letters_total", reason="retries_exhausted")
    before_outcome = sample("verification_requests_consumed_total", outcome="dead_lettered")
    fakes.sender.fail_next(*(ProviderUnavailable("HTTP 503", "20503") for _ in range(3)))
    handler = fakes.container.request_handler()

    await handler(_message(REQUEST))

    assert sample("verification_dead_letters_total", reason="retries_exhausted") == before + 1
    assert (
        sample("verification_requests_consumed_total", outcome="dead_lettered")
        == before_outcome + 1
    )


async def test_invalid_request_counts_outcome(fakes: Fakes) -> None:
    before = sample("verification_requests_consumed_total", outcome="invalid")
    handler = fakes.container.request_handler()

    await handler(_message(b"not json"))

    assert sample("verification_requests_consumed_total", outcome="invalid") == before + 1


async def test_cooldown_counts_rejection(fakes: Fakes) -> None:
    before = sample("verification_send_rejections_total", reason="cooldown")
    handler = fakes.container.request_handler()

    await handler(_message(REQUEST))
    await handler(ConsumedMessage("Verification", 3, 42, None, REQUEST))

    assert sample("verification_send_rejections_total", reason="cooldown") == before + 1


async def test_checks_count_by_result(fakes: Fakes) -> None:
    before_incorrect = sample("verification_checks_total", result="incorrect")
    before_approved = sample("verification_checks_total", result="approved")
    before_missing = sample("verification_checks_total", result="not_found")
    await fakes.container.request_handler()(_message(REQUEST))
    check = fakes.container.check_verification()

    await check.execute("user-1", "000000")
    await check.execute("user-1", CODE)
    await check.execute("nobody", CODE)

    assert sample("verification_checks_total", result="incorrect") == before_incorrect + 1
    assert sample("verification_checks_total", result="approved") == before_approved + 1
    assert sample("verification_checks_total", result="not_found") == before_missing + 1


async def test_delivered_status_counts_and_times(fakes: Fakes) -> None:
    before = sample("verification_delivery_statuses_total", status="delivered")
    before_timed = sample("verification_time_to_delivered_seconds_count")
    await fakes.container.request_handler()(_message(REQUEST))
    [sent] = fakes.sender.provider_messages
    record = fakes.container.record_delivery_status()

    await record.execute(DeliveryReport(sent[1].sid, "delivered", "user-1"))

    assert sample("verification_delivery_statuses_total", status="delivered") == before + 1
    assert sample("verification_time_to_delivered_seconds_count") == before_timed + 1


async def test_traceparent_header_continues_trace(
    fakes: Fakes, spans: InMemorySpanExporter
) -> None:
    handler = fakes.container.request_handler()

    await handler(_message(REQUEST, (("traceparent", TRACEPARENT.encode()),)))

    finished = spans.get_finished_spans()
    names = {span.name for span in finished}
    assert "process Verification" in names
    assert "VerificationStore.create" in names
    assert "RequestLedger.claim" in names
    assert "publish code_sent" in names
    assert {trace_hex(span) for span in finished} == {TRACE_ID}


async def test_consumer_span_is_parent_with_messaging_attributes(
    fakes: Fakes, spans: InMemorySpanExporter
) -> None:
    handler = fakes.container.request_handler()

    await handler(_message(REQUEST))

    finished = spans.get_finished_spans()
    [consumer] = [span for span in finished if span.kind is trace.SpanKind.CONSUMER]
    assert consumer.parent is None
    assert consumer.attributes is not None
    assert consumer.attributes["messaging.system"] == "kafka"
    assert consumer.attributes["messaging.destination.name"] == "Verification"
    assert consumer.attributes["messaging.destination.partition.id"] == "3"
    assert consumer.attributes["messaging.kafka.message.offset"] == 41
    assert consumer.context is not None
    children = [span for span in finished if span is not consumer]
    assert children
    for child in children:
        assert child.parent is not None
        assert child.parent.span_id == consumer.context.span_id


async def test_requests_without_header_start_new_traces(
    fakes: Fakes, spans: InMemorySpanExporter
) -> None:
    handler = fakes.container.request_handler()

    await handler(_message(REQUEST))
    await handler(
        ConsumedMessage("Verification", 3, 42, None, b'{"Id": "u2", "Phone": "+593991234568"}')
    )

    consumers = [s for s in spans.get_finished_spans() if s.kind is trace.SpanKind.CONSUMER]
    trace_ids = {trace_hex(span) for span in consumers}
    assert len(trace_ids) == 2
    assert TRACE_ID not in trace_ids


async def test_spans_hold_no_code_or_phone(fakes: Fakes, spans: InMemorySpanExporter) -> None:
    handler = fakes.container.request_handler()

    await handler(_message(REQUEST, (("traceparent", TRACEPARENT.encode()),)))

    values = attribute_values(spans.get_finished_spans())
    assert values
    assert not [value for value in values if CODE in value]
    assert not [value for value in values if PHONE[1:] in value or "991234567" in value]


@pytest.fixture
def restored_logging() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


def _json_log_lines(**options: float) -> tuple[logging.Handler, io.StringIO]:
    """Configure JSON logging and return its handler, writing to the returned stream."""
    configure_logging("INFO", "json", **options)
    stream = io.StringIO()
    handler = logging.getLogger().handlers[0]
    assert isinstance(handler, logging.StreamHandler)
    handler.setStream(stream)
    return handler, stream


@pytest.mark.usefixtures("restored_logging")
def test_log_lines_in_span_carry_trace_ids(spans: InMemorySpanExporter) -> None:
    _, stream = _json_log_lines()
    logger = logging.getLogger("tests.observability")
    tracer = trace.get_tracer(__name__)

    with tracer.start_as_current_span("work") as span:
        logger.info("inside_span", extra={"verification_id": "user-1"})
    logger.info("outside_span")

    inside, outside = (json.loads(line) for line in stream.getvalue().splitlines())
    context = span.get_span_context()
    assert inside["trace_id"] == trace.format_trace_id(context.trace_id)
    assert inside["span_id"] == trace.format_span_id(context.span_id)
    assert inside["verification_id"] == "user-1"
    assert "trace_id" not in outside


@pytest.mark.usefixtures("restored_logging")
def test_json_log_counts_repeated_warnings() -> None:
    handler, stream = _json_log_lines(repeat_window_seconds=60.0)
    logger = logging.getLogger("tests.repeats")
    before = sample("verification_log_events_suppressed_total", event="store_unavailable")

    for _ in range(4):
        logger.warning("store_unavailable", extra={"error": "TimeoutError()"})
    logger.warning("store_unavailable", extra={"error": "ConnectionError()"})
    logger.info("callback_handled")
    logger.info("callback_handled")
    handler.close()

    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    assert [(line["event"], line.get("error")) for line in lines] == [
        ("store_unavailable", "TimeoutError()"),
        ("store_unavailable", "ConnectionError()"),
        ("callback_handled", None),
        ("callback_handled", None),
        ("store_unavailable", "TimeoutError()"),
    ]
    assert [line.get("repeated") for line in lines] == [None, None, None, None, 3]
    assert lines[-1]["level"] == "warning"
    assert lines[-1]["logger"] == "tests.repeats"
    assert sample("verification_log_events_suppressed_total", event="store_unavailable") == (
        before + 3
    )


@pytest.mark.usefixtures("restored_logging")
def test_json_repeat_summary_keeps_context(spans: InMemorySpanExporter) -> None:
    handler, stream = _json_log_lines(repeat_window_seconds=60.0)
    logger = logging.getLogger("tests.repeats.context")
    tracer = trace.get_tracer(__name__)

    structlog.contextvars.bind_contextvars(topic="Verification", offset=41)
    try:
        with tracer.start_as_current_span("handle") as span:
            for _ in range(3):
                logger.warning("store_unavailable", extra={"error": "TimeoutError()"})
    finally:
        structlog.contextvars.unbind_contextvars("topic", "offset")
    handler.close()

    first, summary = (json.loads(line) for line in stream.getvalue().splitlines())
    context = span.get_span_context()
    assert "repeated" not in first
    assert summary["repeated"] == 2
    assert summary["topic"] == "Verification"
    assert summary["offset"] == 41
    assert summary["trace_id"] == trace.format_trace_id(context.trace_id)
    assert summary["span_id"] == trace.format_span_id(context.span_id)
