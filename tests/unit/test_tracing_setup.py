"""Which spans the tracer provider records, as the OTEL_* variables choose."""

import json
import os
import subprocess
import sys

import pytest
from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from entrypoints.tracing import build_tracer_provider
from tests.support.tracing import TRACE_ID, TRACEPARENT


def test_unexported_spans_keep_ids() -> None:
    tracer = build_tracer_provider({}, "worker").get_tracer(__name__)

    with tracer.start_as_current_span("process Verification") as span:
        context = span.get_span_context()

    assert not span.is_recording()
    assert context.is_valid


def test_without_exporter_spans_continue_incoming_trace_id() -> None:
    tracer = build_tracer_provider({}, "worker").get_tracer(__name__)
    parent = TraceContextTextMapPropagator().extract({"traceparent": TRACEPARENT}, Context())

    with tracer.start_as_current_span("process Verification", context=parent) as span:
        trace_id = trace.format_trace_id(span.get_span_context().trace_id)

    assert trace_id == TRACE_ID


@pytest.mark.parametrize(
    ("sampler", "exporter", "recorded"),
    [("always_on", "none", True), ("always_off", "console", False)],
)
def test_sampler_variable_decides(
    monkeypatch: pytest.MonkeyPatch, sampler: str, exporter: str, recorded: bool
) -> None:
    # The SDK reads the sampler from the process environment itself.
    monkeypatch.setenv("OTEL_TRACES_SAMPLER", sampler)
    monkeypatch.setenv("OTEL_TRACES_EXPORTER", exporter)
    provider = build_tracer_provider(os.environ, "worker")

    with provider.get_tracer(__name__).start_as_current_span("process") as span:
        assert span.is_recording() is recorded
    provider.shutdown()


def test_console_exporter_records_spans() -> None:
    provider = build_tracer_provider({"OTEL_TRACES_EXPORTER": "console"}, "worker")

    with provider.get_tracer(__name__).start_as_current_span("process") as span:
        assert span.is_recording()
    provider.shutdown()


def test_console_exporter_prints_one_line_per_span() -> None:
    # A child process, because the SDK's console exporter keeps the sys.stdout it was
    # imported with, which pytest's capture does not see.
    script = (
        "from entrypoints.tracing import build_tracer_provider\n"
        "provider = build_tracer_provider({'OTEL_TRACES_EXPORTER': 'console'}, 'worker')\n"
        "with provider.get_tracer('test').start_as_current_span('process Verification'):\n"
        "    pass\n"
        "provider.shutdown()\n"
    )

    printed = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=True
    )

    (line,) = printed.stdout.splitlines()
    assert json.loads(line)["name"] == "process Verification"
