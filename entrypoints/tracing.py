"""Sets up the OpenTelemetry tracer provider from the SDK's standard OTEL_* variables."""

import logging
from collections.abc import Mapping

from opentelemetry import trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter, SpanExporter
from opentelemetry.sdk.trace.sampling import ALWAYS_OFF

logger = logging.getLogger(__name__)

# The path that OTLP/HTTP receivers serve traces on. It is appended to the base endpoint,
# as the SDK's exporter does with OTEL_EXPORTER_OTLP_ENDPOINT.
OTLP_TRACES_PATH = "/v1/traces"
# The only OTLP protocol of the installed exporter, because gRPC needs another package.
OTLP_PROTOCOL = "http/protobuf"


def configure_tracing(environ: Mapping[str, str], service_name: str) -> TracerProvider:
    """Install `build_tracer_provider(environ, service_name)` as the global tracer provider."""
    provider = build_tracer_provider(environ, service_name)
    trace.set_tracer_provider(provider)
    return provider


def build_tracer_provider(environ: Mapping[str, str], service_name: str) -> TracerProvider:
    """Return a tracer provider whose exporter the OTEL_* variables in `environ` pick.

    `OTEL_TRACES_EXPORTER=console` prints spans on standard output. OTLP over HTTP is
    used when `OTEL_EXPORTER_OTLP_ENDPOINT` or `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` is
    set. Without either, spans exist for log correlation only and are not recorded,
    unlike the SDK's default, which would send OTLP to localhost:4318.
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
    requested = {
        name.strip() for name in environ.get("OTEL_TRACES_EXPORTER", "").split(",") if name.strip()
    }
    if requested == {"none"}:
        return None
    names = requested - {"none"}
    endpoint = _otlp_traces_endpoint(environ)
    if "console" in names:
        logger.info("tracing_configured", extra={"exporter": "console"})
        return ConsoleSpanExporter(formatter=_one_line)
    if endpoint and names <= {"otlp"}:
        return _otlp_exporter(environ, endpoint)
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


def _otlp_exporter(environ: Mapping[str, str], endpoint: str) -> SpanExporter | None:
    protocol = environ.get("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL") or environ.get(
        "OTEL_EXPORTER_OTLP_PROTOCOL", OTLP_PROTOCOL
    )
    if protocol != OTLP_PROTOCOL:
        logger.warning(
            "tracing_protocol_unsupported",
            extra={
                "protocol": protocol,
                "endpoint": endpoint,
                "effect": "no span is exported",
                "fix": f"set OTEL_EXPORTER_OTLP_PROTOCOL={OTLP_PROTOCOL} and point the "
                "endpoint at the collector's OTLP/HTTP port, usually 4318",
            },
        )
        return None
    # Imported here because the exporter loads protobuf and requests, which a process
    # that exports nothing does not need.
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

    logger.info("tracing_configured", extra={"exporter": "otlp", "endpoint": endpoint})
    # The endpoint comes from `environ`. The exporter reads its other settings
    # (OTEL_EXPORTER_OTLP_HEADERS, _TIMEOUT, _COMPRESSION, _CERTIFICATE) from
    # os.environ itself.
    return OTLPSpanExporter(endpoint=endpoint)


def _otlp_traces_endpoint(environ: Mapping[str, str]) -> str | None:
    """Return the URL that OTLP traces go to: the traces variable as it is, else base + path."""
    if traces_endpoint := environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"):
        return traces_endpoint
    if base_endpoint := environ.get("OTEL_EXPORTER_OTLP_ENDPOINT"):
        return base_endpoint.rstrip("/") + OTLP_TRACES_PATH
    return None


def _one_line(span: ReadableSpan) -> str:
    # The SDK's default indents each span over about 40 lines.
    return span.to_json(indent=None) + "\n"
