"""The webhook app over real HTTP: signatures, proxies, malformed bodies, callback outcomes."""

from collections.abc import AsyncIterator
from dataclasses import dataclass
from urllib.parse import urlencode

import httpx
import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from twilio.request_validator import RequestValidator

from adapters.memory.store import InMemoryVerificationStore
from adapters.notification.recording import RecordingNotifier
from application.request_verification import VerificationRequest
from domain.delivery import DeliveryStatus
from domain.events import DeliveryStatusChanged
from tests.settings import TEST_AUTH_TOKEN
from tests.support.fake_app import fake_app
from tests.support.tracing import TRACE_ID, TRACEPARENT

PUBLIC_URL = "https://verify.example.test"


@dataclass
class Webhook:
    client: httpx.AsyncClient
    store: InMemoryVerificationStore
    notifier: RecordingNotifier
    message_sid: str


@pytest.fixture
async def webhook() -> AsyncIterator[Webhook]:
    async with fake_app(WEBHOOK_PUBLIC_URL=PUBLIC_URL) as app:
        await app.container.request_verification().execute(
            VerificationRequest("user-1", "+593991234567"), "owner-1"
        )
        stored = await app.store.get("user-1")
        assert stored is not None and stored.message_sid is not None
        app.notifier.clear()
        yield Webhook(app.client, app.store, app.notifier, stored.message_sid)


def _callback_span(spans: InMemorySpanExporter) -> ReadableSpan:
    [span] = [span for span in spans.get_finished_spans() if span.kind is trace.SpanKind.SERVER]
    return span


def _callback(sid: str, status: str, **extra: str) -> dict[str, str]:
    fields = {
        "MessageSid": sid,
        "SmsSid": sid,
        "AccountSid": "AC" + "0123456789abcdef" * 2,
        "From": "whatsapp:+14155550100",
        "To": "whatsapp:+593991234567",
        "MessageStatus": status,
        "SmsStatus": status,
        "ApiVersion": "2010-04-01",
        "ChannelPrefix": "whatsapp",
    }
    fields.update(extra)
    return fields


async def _post_signed(
    webhook: Webhook,
    fields: dict[str, str],
    path: str = "/twilio/status",
    query: str = "",
    headers: dict[str, str] | None = None,
) -> httpx.Response:
    target = path + (f"?{query}" if query else "")
    signature = RequestValidator(TEST_AUTH_TOKEN).compute_signature(PUBLIC_URL + target, fields)
    return await _post_form(
        webhook, target, fields, {"X-Twilio-Signature": signature, **(headers or {})}
    )


async def _post_form(
    webhook: Webhook, target: str, fields: dict[str, str], headers: dict[str, str]
) -> httpx.Response:
    return await webhook.client.post(
        target,
        content=urlencode(fields),
        headers={"Content-Type": "application/x-www-form-urlencoded", **headers},
    )


async def _status(webhook: Webhook) -> DeliveryStatus | None:
    stored = await webhook.store.get("user-1")
    assert stored is not None
    return stored.delivery_status


async def test_signed_callback_behind_proxy_is_applied(webhook: Webhook) -> None:
    response = await _post_signed(
        webhook, _callback(webhook.message_sid, "delivered"), query="verification_id=user-1"
    )

    assert response.status_code == 204
    assert await _status(webhook) is DeliveryStatus.DELIVERED
    [event] = webhook.notifier.events
    assert isinstance(event, DeliveryStatusChanged)


async def test_legacy_root_path_accepts_callbacks(webhook: Webhook) -> None:
    response = await _post_signed(webhook, _callback(webhook.message_sid, "sent"), path="/")

    assert response.status_code == 204
    assert await _status(webhook) is DeliveryStatus.SENT


async def test_changed_field_after_signing_is_forbidden(webhook: Webhook) -> None:
    fields = _callback(webhook.message_sid, "sent")
    url = f"{PUBLIC_URL}/twilio/status"
    signature = RequestValidator(TEST_AUTH_TOKEN).compute_signature(url, fields)
    fields["MessageStatus"] = "read"

    response = await webhook.client.post(
        "/twilio/status",
        content=urlencode(fields),
        headers={
            "Content-Type": "application/x-www-form-urlencoded",
            "X-Twilio-Signature": signature,
        },
    )

    assert response.status_code == 403
    assert await _status(webhook) is DeliveryStatus.QUEUED
    assert webhook.notifier.events == []


async def test_missing_signature_is_forbidden(webhook: Webhook) -> None:
    response = await webhook.client.post(
        "/twilio/status",
        content=urlencode(_callback(webhook.message_sid, "read")),
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )

    assert response.status_code == 403
    assert await _status(webhook) is DeliveryStatus.QUEUED


async def test_signature_for_internal_url_is_forbidden(webhook: Webhook) -> None:
    fields = _callback(webhook.message_sid, "read")
    internal_url = f"{webhook.client.base_url}/twilio/status"
    signature = RequestValidator(TEST_AUTH_TOKEN).compute_signature(internal_url, fields)

    response = await webhook.client.post(
        "/twilio/status",
        content=urlencode(fields),
        headers={
            "Content-Type": "application/x-www-form-urlencoded",
            "X-Twilio-Signature": signature,
        },
    )

    assert response.status_code == 403


async def test_signed_callback_without_sid_is_bad_request(webhook: Webhook) -> None:
    fields = _callback(webhook.message_sid, "sent")
    del fields["MessageSid"]
    del fields["SmsSid"]

    response = await _post_signed(webhook, fields)

    assert response.status_code == 400
    assert "MessageSid is missing" in response.json()["error"]


async def test_non_form_body_is_unsupported(webhook: Webhook) -> None:
    response = await webhook.client.post("/twilio/status", json={"MessageStatus": "read"})

    assert response.status_code == 415


async def test_invalid_utf8_form_is_bad_request(webhook: Webhook) -> None:
    response = await webhook.client.post(
        "/twilio/status",
        content=b"MessageSid=\xff\xfe",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )

    assert response.status_code == 400


@pytest.mark.parametrize(
    ("status", "extra"),
    [("teleported", {}), ("undelivered", {"ErrorCode": "30008"})],
)
async def test_odd_callbacks_never_fail(
    webhook: Webhook, status: str, extra: dict[str, str]
) -> None:
    response = await _post_signed(webhook, _callback(webhook.message_sid, status, **extra))

    assert response.status_code == 204


async def test_undelivered_30008_recorded_as_failure(webhook: Webhook) -> None:
    await _post_signed(webhook, _callback(webhook.message_sid, "undelivered", ErrorCode="30008"))

    stored = await webhook.store.get("user-1")
    assert stored is not None
    assert stored.delivery_status is DeliveryStatus.UNDELIVERED
    assert stored.error_code == "30008"


async def test_unknown_message_sid_gets_2xx(webhook: Webhook) -> None:
    response = await _post_signed(webhook, _callback("SM" + "e" * 32, "delivered"))

    assert response.status_code == 204
    assert webhook.notifier.events == []


async def test_callback_sequences_from_the_field(webhook: Webhook) -> None:
    statuses = [
        (await _post_signed(webhook, _callback(webhook.message_sid, status))).status_code
        for status in ("sent", "read", "delivered", "delivered")
    ]

    assert statuses == [204, 204, 204, 204]
    assert await _status(webhook) is DeliveryStatus.READ
    published = [
        event.delivery_status
        for event in webhook.notifier.events
        if isinstance(event, DeliveryStatusChanged)
    ]
    assert published == [DeliveryStatus.SENT, DeliveryStatus.READ]


async def test_healthz_answers_ok(webhook: Webhook) -> None:
    response = await webhook.client.get("/healthz")

    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


async def test_callback_span_links_signed_traceparent(
    webhook: Webhook, spans: InMemorySpanExporter
) -> None:
    query = urlencode({"verification_id": "user-1", "traceparent": TRACEPARENT})

    response = await _post_signed(webhook, _callback(webhook.message_sid, "sent"), query=query)

    assert response.status_code == 204
    span = _callback_span(spans)
    assert span.name == "POST /twilio/status"
    assert span.attributes is not None
    assert span.attributes["url.path"] == "/twilio/status"
    assert span.attributes["http.response.status_code"] == 204
    [link] = span.links
    assert trace.format_trace_id(link.context.trace_id) == TRACE_ID
    assert trace.format_span_id(link.context.span_id) == TRACEPARENT.split("-")[2]
    assert link.context.is_remote


@pytest.mark.parametrize(
    "traceparent",
    [
        "garbage",
        "00-00000000000000000000000000000000-b7ad6b7169203331-01",
        f"00-{TRACE_ID}-0000000000000000-01",
        f"ff-{TRACE_ID}-b7ad6b7169203331-01",
        f"00-{TRACE_ID}-b7ad6b7169203331",
        "",
    ],
)
async def test_malformed_traceparent_is_ignored(
    webhook: Webhook, spans: InMemorySpanExporter, traceparent: str
) -> None:
    query = urlencode({"verification_id": "user-1", "traceparent": traceparent})

    response = await _post_signed(webhook, _callback(webhook.message_sid, "sent"), query=query)

    assert response.status_code == 204
    assert await _status(webhook) is DeliveryStatus.SENT
    assert _callback_span(spans).links == ()


async def test_repeated_traceparent_is_ignored(
    webhook: Webhook, spans: InMemorySpanExporter
) -> None:
    query = urlencode(
        [("verification_id", "user-1"), ("traceparent", TRACEPARENT), ("traceparent", TRACEPARENT)]
    )

    response = await _post_signed(webhook, _callback(webhook.message_sid, "sent"), query=query)

    assert response.status_code == 204
    assert _callback_span(spans).links == ()


async def test_changed_traceparent_after_signing_is_forbidden(
    webhook: Webhook, spans: InMemorySpanExporter
) -> None:
    fields = _callback(webhook.message_sid, "read")
    signed_query = urlencode({"verification_id": "user-1", "traceparent": TRACEPARENT})
    signature = RequestValidator(TEST_AUTH_TOKEN).compute_signature(
        f"{PUBLIC_URL}/twilio/status?{signed_query}", fields
    )
    other_parent = f"00-{'1' * 32}-{'2' * 16}-01"
    sent_query = urlencode({"verification_id": "user-1", "traceparent": other_parent})

    response = await _post_form(
        webhook, f"/twilio/status?{sent_query}", fields, {"X-Twilio-Signature": signature}
    )

    assert response.status_code == 403
    assert await _status(webhook) is DeliveryStatus.QUEUED
    span = _callback_span(spans)
    assert span.links == ()
    assert span.attributes is not None
    assert span.attributes["http.response.status_code"] == 403


async def test_traceparent_header_parents_callback_span(
    webhook: Webhook, spans: InMemorySpanExporter
) -> None:
    response = await _post_signed(
        webhook, _callback(webhook.message_sid, "sent"), headers={"traceparent": TRACEPARENT}
    )

    assert response.status_code == 204
    span = _callback_span(spans)
    assert span.parent is not None
    assert trace.format_trace_id(span.parent.trace_id) == TRACE_ID
    assert trace.format_span_id(span.parent.span_id) == TRACEPARENT.split("-")[2]


async def test_legacy_root_callback_span_route(
    webhook: Webhook, spans: InMemorySpanExporter
) -> None:
    response = await _post_signed(webhook, _callback(webhook.message_sid, "sent"), path="/")

    assert response.status_code == 204
    span = _callback_span(spans)
    assert span.name == "POST /"
    assert span.attributes is not None
    assert span.attributes["http.route"] == "/"
    assert span.attributes["url.path"] == "/"
    assert span.links == ()
    assert span.context is not None
    store_spans = [
        child
        for child in spans.get_finished_spans()
        if child.parent is not None and child.parent.span_id == span.context.span_id
    ]
    assert {child.name for child in store_spans} >= {
        "VerificationStore.find_id_by_message_sid",
        "VerificationStore.update",
    }
