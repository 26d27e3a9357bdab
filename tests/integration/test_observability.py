"""Metrics, readiness and traces over real HTTP, Redis and the Twilio emulator."""

import asyncio
import gzip
import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from logging import WARNING
from urllib.parse import parse_qs, urlencode, urlsplit

import httpx
import pytest
from dependency_injector import providers
from opentelemetry import trace
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from prometheus_client.parser import text_string_to_metric_families
from redis.asyncio import Redis
from twilio.request_validator import RequestValidator

from adapters.kafka.consumer import ConsumedMessage
from adapters.memory.dead_letters import RecordingDeadLetterSink
from adapters.notification.recording import RecordingNotifier
from adapters.observability.health import redis_ping
from devtools.ports import free_port
from entrypoints.container import Container, resolved
from entrypoints.metrics_server import MetricsServer
from entrypoints.tracing import configure_tracing
from entrypoints.webhook import build_server
from tests.settings import TEST_ACCOUNT_SID, TEST_AUTH_TOKEN, TEST_SENDER, make_settings
from tests.support.log_watcher import watching
from tests.support.servers import serving
from tests.support.tracing import TRACE_ID, TRACEPARENT, attribute_values, span_exporter, trace_hex
from twilio_emulator.config import EmulatorConfig
from twilio_emulator.server import RunningEmulator, running_emulator

PHONE = "+593991234567"


class OwnRedis:
    """A redis-server on a free loopback port that a test can stop and start again."""

    def __init__(self) -> None:
        self.port = free_port()
        self._process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self._process = subprocess.Popen(
            [
                "redis-server",
                "--port", str(self.port),
                "--bind", "127.0.0.1",
                "--save", "",
                "--appendonly", "no",
            ],
            stdout=subprocess.DEVNULL,
        )  # fmt: skip
        deadline = time.monotonic() + 10
        while True:
            probe = subprocess.run(
                ["redis-cli", "-p", str(self.port), "PING"], capture_output=True, check=False
            )
            if probe.stdout.strip() == b"PONG":
                return
            if time.monotonic() > deadline:
                raise RuntimeError(f"redis-server on port {self.port} did not answer PING")
            time.sleep(0.05)

    def stop(self) -> None:
        if self._process is not None:
            self._process.terminate()
            self._process.wait(timeout=10)
            self._process = None


@pytest.fixture
def own_redis() -> Iterator[OwnRedis]:
    server = OwnRedis()
    server.start()
    yield server
    server.stop()


@dataclass(frozen=True)
class OtlpRequest:
    path: str
    content_type: str
    body: bytes


class OtlpReceiver:
    """An OTLP/HTTP endpoint on a free loopback port that stores every request it gets."""

    def __init__(self) -> None:
        self.requests: list[OtlpRequest] = []
        received = self.requests

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                if self.headers.get("Content-Encoding") == "gzip":
                    body = gzip.decompress(body)
                received.append(OtlpRequest(self.path, self.headers.get("Content-Type", ""), body))
                # An empty ExportTraceServiceResponse, which accepts every span.
                self.send_response(200)
                self.send_header("Content-Type", "application/x-protobuf")
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: object) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def __enter__(self) -> "OtlpReceiver":
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)


@pytest.fixture
def otlp_receiver() -> Iterator[OtlpReceiver]:
    with OtlpReceiver() as receiver:
        yield receiver


def _emulator_config(callback_statuses: tuple[str, ...]) -> EmulatorConfig:
    return EmulatorConfig(
        account_sid=TEST_ACCOUNT_SID,
        auth_token=TEST_AUTH_TOKEN,
        whatsapp_sender=TEST_SENDER,
        default_callback_statuses=callback_statuses,
    )


@pytest.fixture
async def emulator() -> AsyncIterator[RunningEmulator]:
    async with running_emulator(_emulator_config(())) as running:
        yield running


@pytest.fixture
async def calling_emulator() -> AsyncIterator[RunningEmulator]:
    """An emulator that posts `sent` and `delivered` callbacks for every message."""
    async with running_emulator(_emulator_config(("sent", "delivered"))) as running:
        yield running


async def _get(url: str) -> httpx.Response:
    async with httpx.AsyncClient(timeout=5.0) as client:
        return await client.get(url)


async def _until_status(url: str, status: int, timeout: float = 10.0) -> httpx.Response:
    async with asyncio.timeout(timeout):
        while True:
            response = await _get(url)
            if response.status_code == status:
                return response
            await asyncio.sleep(0.1)


def _samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


async def _metrics(url: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    response = await _get(url)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain; version=")
    return _samples(response.text)


def _real_container(
    redis_port: int, prefix: str, emulator: RunningEmulator, **settings_overrides: object
) -> Container:
    settings = make_settings(
        REDIS_CONNECTION=f"127.0.0.1:{redis_port}",
        REDIS_KEY_PREFIX=prefix,
        TWILIO_API_BASE_URL=emulator.base_url,
        TWILIO_MAX_MPS=0,
        **settings_overrides,
    )
    container = Container(settings=providers.Object(settings))
    container.notifier.override(providers.Object(RecordingNotifier()))
    container.dead_letters.override(providers.Object(RecordingDeadLetterSink()))
    return container


async def test_traceparent_reaches_twilio_and_redis_spans(
    emulator: RunningEmulator, spans: InMemorySpanExporter, unique: str
) -> None:
    container = _real_container(6379, f"otel-{unique}", emulator)
    handler = await resolved(container.request_handler())
    value = json.dumps({"Id": f"user-{unique}", "Phone": PHONE}).encode()
    message = ConsumedMessage(
        "Verification", 0, 5, None, value, (("traceparent", TRACEPARENT.encode()),)
    )
    try:
        await handler(message)
    finally:
        await resolved(container.shutdown_resources())

    finished = spans.get_finished_spans()
    [http] = [span for span in finished if span.name == "POST"]
    assert http.kind is trace.SpanKind.CLIENT
    assert http.attributes is not None
    assert http.attributes["http.request.method"] == "POST"
    assert http.attributes["http.response.status_code"] == 201
    assert http.attributes["server.address"] == "127.0.0.1"
    redis_spans = [s for s in finished if (s.attributes or {}).get("db.system.name") == "redis"]
    assert redis_spans
    assert trace_hex(http) == TRACE_ID
    assert {trace_hex(span) for span in redis_spans} == {TRACE_ID}
    [sent] = emulator.state.messages.values()
    code = sent.body.rsplit(" ", 1)[-1]
    values = attribute_values(finished)
    assert not [value for value in values if code in value]
    assert not [value for value in values if "991234567" in value]


async def test_status_callback_span_links_to_send(
    calling_emulator: RunningEmulator, spans: InMemorySpanExporter, unique: str
) -> None:
    port = free_port()
    worker = _real_container(
        6379,
        f"otel-link-{unique}",
        calling_emulator,
        WEBHOOK_PORT=port,
        WEBHOOK_PUBLIC_URL=f"http://127.0.0.1:{port}",
    )
    handler = await resolved(worker.request_handler())
    value = json.dumps({"Id": f"user-{unique}", "Phone": PHONE}).encode()
    message = ConsumedMessage(
        "Verification", 0, 5, None, value, (("traceparent", TRACEPARENT.encode()),)
    )
    try:
        async with serving(build_server(worker.settings())):
            await handler(message)
            [sent] = calling_emulator.state.messages.values()
            await calling_emulator.state.wait_for(
                lambda state: len([a for a in sent.callbacks if a.http_status]) == 2, 10.0
            )
    finally:
        await resolved(worker.shutdown_resources())

    assert [attempt.http_status for attempt in sent.callbacks] == [204, 204]
    assert parse_qs(urlsplit(sent.callbacks[0].url).query)["traceparent"]
    finished = spans.get_finished_spans()
    [consumer] = [span for span in finished if span.kind is trace.SpanKind.CONSUMER]
    assert consumer.context is not None
    callback_spans = [span for span in finished if span.kind is trace.SpanKind.SERVER]
    assert len(callback_spans) == 2
    for callback in callback_spans:
        assert callback.name == "POST /twilio/status"
        assert callback.parent is None
        assert trace_hex(callback) != TRACE_ID
        assert callback.attributes is not None
        assert callback.attributes["http.request.method"] == "POST"
        assert callback.attributes["http.route"] == "/twilio/status"
        assert callback.attributes["url.path"] == "/twilio/status"
        assert callback.attributes["http.response.status_code"] == 204
        assert callback.attributes["verification.id"] == f"user-{unique}"
        [link] = callback.links
        assert trace.format_trace_id(link.context.trace_id) == TRACE_ID
        # The span current at the send, whose context the callback URL carries.
        assert link.context.span_id == consumer.context.span_id
        assert callback.context is not None
        children = [
            span
            for span in finished
            if span.parent is not None and span.parent.span_id == callback.context.span_id
        ]
        assert [s for s in children if (s.attributes or {}).get("db.system.name") == "redis"]
        assert {trace_hex(span) for span in children} == {trace_hex(callback)}

    code = sent.body.rsplit(" ", 1)[-1]
    secrets = [code, "991234567", TEST_AUTH_TOKEN, *(a.signature for a in sent.callbacks)]
    values = attribute_values(finished)
    for secret in secrets:
        assert not [value for value in values if secret in value]


async def test_callback_span_records_store_outage(spans: InMemorySpanExporter) -> None:
    port = free_port()
    settings = make_settings(
        REDIS_CONNECTION=f"127.0.0.1:{free_port()}",
        WEBHOOK_PORT=port,
        WEBHOOK_PUBLIC_URL=f"http://127.0.0.1:{port}",
    )
    query = urlencode({"verification_id": "user-1", "traceparent": TRACEPARENT})
    url = f"http://127.0.0.1:{port}/twilio/status?{query}"
    fields = {"MessageSid": "SM" + "a" * 32, "MessageStatus": "delivered"}
    signature = RequestValidator(TEST_AUTH_TOKEN).compute_signature(url, fields)

    async with serving(build_server(settings)), httpx.AsyncClient(timeout=10.0) as client:
        response = await client.post(
            url,
            content=urlencode(fields),
            headers={
                "Content-Type": "application/x-www-form-urlencoded",
                "X-Twilio-Signature": signature,
            },
        )

    assert response.status_code == 503
    [callback] = [s for s in spans.get_finished_spans() if s.kind is trace.SpanKind.SERVER]
    assert callback.status.status_code is trace.StatusCode.ERROR
    assert callback.attributes is not None
    assert callback.attributes["http.response.status_code"] == 503
    assert callback.attributes["error.type"] == "503"
    [link] = callback.links
    assert trace.format_trace_id(link.context.trace_id) == TRACE_ID


def _export_one_span(monkeypatch: pytest.MonkeyPatch, variables: dict[str, str]) -> None:
    """Configure tracing from `variables` alone, end one span and flush the exporter."""
    # OpenTelemetry sets the global provider once, so the in-memory one stays global and
    # configure_tracing's provider is used only through the handle it returns.
    span_exporter()
    global_provider = trace.get_tracer_provider()
    for name in [n for n in os.environ if n.startswith("OTEL_") or n.lower().endswith("_proxy")]:
        monkeypatch.delenv(name)
    monkeypatch.setenv("NO_PROXY", "*")
    for name, value in variables.items():
        monkeypatch.setenv(name, value)

    provider = configure_tracing(os.environ, "verification-otlp-test")
    try:
        with provider.get_tracer(__name__).start_as_current_span("otlp check"):
            pass
        assert provider.force_flush(timeout_millis=10_000)
    finally:
        provider.shutdown()
    assert trace.get_tracer_provider() is global_provider


def test_otlp_endpoint_receives_spans(
    otlp_receiver: OtlpReceiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    endpoint = f"http://127.0.0.1:{otlp_receiver.port}/"

    _export_one_span(monkeypatch, {"OTEL_EXPORTER_OTLP_ENDPOINT": endpoint})

    [request] = otlp_receiver.requests
    assert request.path == "/v1/traces"
    assert request.content_type == "application/x-protobuf"
    exported = ExportTraceServiceRequest.FromString(request.body)
    [resource_spans] = exported.resource_spans
    resource = {item.key: item.value.string_value for item in resource_spans.resource.attributes}
    assert resource["service.name"] == "verification-otlp-test"
    names = [span.name for scope in resource_spans.scope_spans for span in scope.spans]
    assert names == ["otlp check"]


def test_otlp_traces_endpoint_is_used_unchanged(
    otlp_receiver: OtlpReceiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    endpoint = f"http://127.0.0.1:{otlp_receiver.port}/collector/traces"

    _export_one_span(monkeypatch, {"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": endpoint})

    assert [request.path for request in otlp_receiver.requests] == ["/collector/traces"]


@pytest.mark.parametrize(
    ("variable", "value", "warning"),
    [
        ("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc", "tracing_protocol_unsupported"),
        ("OTEL_TRACES_EXPORTER", "none", None),
    ],
)
def test_otlp_endpoint_unused_when_turned_off(
    otlp_receiver: OtlpReceiver,
    monkeypatch: pytest.MonkeyPatch,
    variable: str,
    value: str,
    warning: str | None,
) -> None:
    endpoint = f"http://127.0.0.1:{otlp_receiver.port}"

    with watching("entrypoints.tracing") as logs:
        _export_one_span(monkeypatch, {"OTEL_EXPORTER_OTLP_ENDPOINT": endpoint, variable: value})

    assert otlp_receiver.requests == []
    warnings = [record for record in logs.records if record.levelno >= WARNING]
    assert [record.getMessage() for record in warnings] == ([warning] if warning else [])
    assert [record.protocol for record in warnings] == ([value] if warning else [])


def test_exit_writes_pending_repeat_counts() -> None:
    program = """
import logging
from entrypoints.logs import configure_logging

configure_logging("INFO", "json")
logger = logging.getLogger("repeats")
for attempt in range(3):
    logger.warning("store_unavailable", extra={"error": "TimeoutError()", "attempt": attempt})
"""
    finished = subprocess.run(
        [sys.executable, "-c", program], capture_output=True, text=True, timeout=60, check=True
    )

    lines = [json.loads(line) for line in finished.stderr.splitlines()]
    assert [line["event"] for line in lines] == ["store_unavailable", "store_unavailable"]
    assert [line.get("repeated") for line in lines] == [None, 2]
    assert [line["attempt"] for line in lines] == [0, 1]


async def test_worker_metrics_endpoint_reports_known_counts(
    emulator: RunningEmulator, unique: str
) -> None:
    container = _real_container(6379, f"metrics-{unique}", emulator)
    handler = await resolved(container.request_handler())
    server = MetricsServer("127.0.0.1", 0, {})
    await server.start()
    url = f"http://127.0.0.1:{server.port}/metrics"
    try:
        before = await _metrics(url)
        for offset in range(3):
            value = json.dumps({"Id": f"user-{unique}-{offset}", "Phone": PHONE}).encode()
            await handler(ConsumedMessage("Verification", 0, offset, None, value))
        await handler(ConsumedMessage("Verification", 0, 9, None, b"not json"))
        after = await _metrics(url)
    finally:
        await server.stop()
        await resolved(container.shutdown_resources())

    def delta(name: str, **labels: str) -> float:
        key = (name, tuple(sorted(labels.items())))
        return after.get(key, 0.0) - before.get(key, 0.0)

    assert delta("verification_requests_consumed_total", outcome="handled") == 3
    assert delta("verification_requests_consumed_total", outcome="invalid") == 1
    assert delta("verification_sends_total", outcome="accepted", error_code="") == 3
    assert delta("verification_dead_letters_total", reason="invalid_json") == 1
    assert (
        delta(
            "verification_twilio_request_duration_seconds_count", method="POST", status_code="201"
        )
        == 3
    )


async def test_worker_readyz_follows_redis(own_redis: OwnRedis) -> None:
    client = Redis(host="127.0.0.1", port=own_redis.port, socket_connect_timeout=0.5)

    async def redis_client() -> Redis:
        return client

    server = MetricsServer("127.0.0.1", 0, {"redis": redis_ping(redis_client)})
    await server.start()
    base = f"http://127.0.0.1:{server.port}"
    try:
        assert (await _get(f"{base}/readyz")).status_code == 200
        assert (await _get(f"{base}/healthz")).json() == {"status": "ok"}

        own_redis.stop()
        failed = await _until_status(f"{base}/readyz", 503)
        assert set(failed.json()["failures"]) == {"redis"}
        assert (await _get(f"{base}/healthz")).status_code == 200

        own_redis.start()
        await _until_status(f"{base}/readyz", 200)
    finally:
        await server.stop()
        await client.aclose()


async def test_webhook_readyz_and_metrics_follow_redis(own_redis: OwnRedis) -> None:
    settings = make_settings(
        REDIS_CONNECTION=f"127.0.0.1:{own_redis.port}", WEBHOOK_PORT=free_port()
    )
    base = f"http://127.0.0.1:{settings.WEBHOOK_PORT}"
    async with serving(build_server(settings)):
        ready = await _get(f"{base}/readyz")
        assert ready.status_code == 200
        assert ready.json() == {"status": "ok"}
        samples = await _metrics(f"{base}/metrics")
        assert ("verification_in_flight", ()) in samples

        own_redis.stop()
        failed = await _until_status(f"{base}/readyz", 503)
        assert failed.json()["status"] == "unavailable"
        assert set(failed.json()["failures"]) == {"redis"}

        own_redis.start()
        await _until_status(f"{base}/readyz", 200)
