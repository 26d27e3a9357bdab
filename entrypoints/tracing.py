"""Sets up the OpenTelemetry tracer provider from the SDK's standard OTEL_* variables."""

import importlib
import logging
from collections.abc import Mapping

from opentelemetry import trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter, SpanExporter
from opentelemetry.sdk.trace.sampling import ALWAYS_OFF

logger = logging.getLogger(__name__)

OTLP_EXPORTER_MODULE = "opentelemetry.exporter.otlp.proto.http.trace_exporter"


def configure_tracing(environ: Mapping[str, str], service_name: str) -> TracerProvider:
    """Install `build_tracer_provider(environ, service_name)` as the global tracer provider."""
    provider = build_tracer_provider(environ, service_name)
    trace.set_tracer_provider(provider)
    return provider


def build_tracer_provider(environ: Mapping[str, str], service_name: str) -> TracerProvider:
    """Return a tracer provider whose exporter the OTEL_* variables in `environ` pick.

    `OTEL_TRACES_EXPORTER=console` prints spans on standard output. OTLP is used only
    when `OTEL_EXPORTER_OTLP_ENDPOINT` (or its traces variant) is set and the
    `opentelemetry-exporter-otlp-proto-http` package is installed; the exporter reads
    the endpoint itself. Without either, spans exist for log correlation only and are
    not recorded, unlike the SDK's default, which would send OTLP to localhost:4318.
    """
    # Resource.create reads OTEL_SERVICE_NAME and OTEL_RESOURCE_ATTRIBUTES; this name
    # is used when neither sets one.
    attributes = {} if environ.get("OTEL_SERVICE_NAME") else {"service.name": service_name}
    exporter = _exporter(environ)
    # With nowhere to send spans, none is recorded: spans still carry trace and span
    # ids for the logs, and an incoming traceparent's trace id, at a fraction of the
    # cost. OTEL_TRACES_SAMPLER still decides when it is set.
    sampler = None if exporter is not None or environ.get("OTEL_TRACES_SAMPLER") else ALWAYS_OFF
    provider = TracerProvider(resource=Resource.create(attributes), sampler=sampler)
    if exporter is not None:
        provider.add_span_processor(BatchSpanProcessor(exporter))
    return provider


def _exporter(environ: Mapping[str, str]) -> SpanExporter | None:
    names = {
        name.strip()
        for name in environ.get("OTEL_TRACES_EXPORTER", "").split(",")
        if name.strip() and name.strip() != "none"
    }
    endpoint = environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") or environ.get(
        "OTEL_EXPORTER_OTLP_ENDPOINT"
    )
    if "console" in names:
        logger.info("tracing_configured", extra={"exporter": "console"})
        return ConsoleSpanExporter()
    if endpoint and names <= {"otlp"}:
        try:
            module = importlib.import_module(OTLP_EXPORTER_MODULE)
        except ImportError:
            logger.warning(
                "tracing_exporter_missing",
                extra={
                    "endpoint": endpoint,
                    "fix": "pip install opentelemetry-exporter-otlp-proto-http, "
                    "or unset OTEL_EXPORTER_OTLP_ENDPOINT",
                },
            )
            return None
        logger.info("tracing_configured", extra={"exporter": "otlp", "endpoint": endpoint})
        exporter: SpanExporter = module.OTLPSpanExporter()
        return exporter
    if names:
        logger.warning(
            "tracing_exporter_unsupported",
            extra={
                "exporters": sorted(names),
                "fix": "set OTEL_TRACES_EXPORTER to console, or to otlp together with "
                "OTEL_EXPORTER_OTLP_ENDPOINT",
            },
        )
    return None
