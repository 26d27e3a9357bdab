"""Twilio status callbacks: signature check, parsing, and the RecordDeliveryStatus call."""

import logging
from urllib.parse import parse_qs, parse_qsl

from litestar import Request, Response, post
from litestar.datastructures import State
from litestar.status_codes import (
    HTTP_200_OK,
    HTTP_204_NO_CONTENT,
    HTTP_400_BAD_REQUEST,
    HTTP_403_FORBIDDEN,
    HTTP_415_UNSUPPORTED_MEDIA_TYPE,
)
from opentelemetry import trace
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from adapters.twilio.signature import TwilioSignatureValidator
from application.record_delivery_status import DeliveryReport, RecordDeliveryStatus
from domain.verification import MAX_VERIFICATION_ID_LENGTH
from entrypoints.http.errors import error_response
from entrypoints.http.server_spans import ServerSpanMiddleware

logger = logging.getLogger(__name__)
_propagator = TraceContextTextMapPropagator()

FORM_CONTENT_TYPE = "application/x-www-form-urlencoded"
MAX_CALLBACK_BYTES = 64 * 1024


class MalformedCallback(ValueError):
    """A status callback body that is not a Twilio status report."""


def _parse_form(body: bytes) -> list[tuple[str, str]]:
    try:
        return parse_qsl(body.decode("utf-8"), keep_blank_values=True, strict_parsing=bool(body))
    except (UnicodeDecodeError, ValueError) as error:
        raise MalformedCallback(f"the body is not valid form data: {error}") from error


def _report_from(fields: dict[str, str], query: str) -> DeliveryReport:
    message_sid = fields.get("MessageSid") or fields.get("SmsSid")
    status = fields.get("MessageStatus") or fields.get("SmsStatus")
    if not message_sid:
        raise MalformedCallback("MessageSid is missing")
    if not status:
        raise MalformedCallback("MessageStatus is missing")
    ids = parse_qs(query).get("verification_id", [])
    verification_id = ids[0] if ids and len(ids[0]) <= MAX_VERIFICATION_ID_LENGTH else None
    return DeliveryReport(
        message_sid=message_sid[:64],
        status=status[:32],
        verification_id=verification_id,
        error_code=fields.get("ErrorCode") or None,
        error_message=fields.get("ErrorMessage") or None,
    )


def _send_span_context(query: str) -> trace.SpanContext | None:
    """Return the span context of the send named by the `traceparent` query parameter.

    The sender adds the parameter. Callbacks of messages sent without it, or with a
    value that is repeated or not a valid W3C `traceparent`, return None.
    """
    values = parse_qs(query).get("traceparent", [])
    if len(values) != 1:
        return None
    context = _propagator.extract({"traceparent": values[0]})
    span_context = trace.get_current_span(context).get_span_context()
    return span_context if span_context.is_valid else None


@post(
    ["/twilio/status", "/"],
    status_code=HTTP_200_OK,
    request_max_body_size=MAX_CALLBACK_BYTES,
    middleware=[ServerSpanMiddleware()],
)
async def twilio_status(request: Request[object, object, State]) -> Response[object]:
    """Apply a signed Twilio status callback. `POST /` serves existing deployments.

    The middleware's SERVER span is current here. It gets a link to the send's span
    when the signed URL names one, and the use case's spans become its children.
    """
    content_type, _ = request.content_type
    if content_type != FORM_CONTENT_TYPE:
        return error_response(
            HTTP_415_UNSUPPORTED_MEDIA_TYPE,
            f"expected {FORM_CONTENT_TYPE}, got {content_type or 'no content type'}",
        )
    body = await request.body()
    try:
        pairs = _parse_form(body)
    except MalformedCallback as error:
        return error_response(HTTP_400_BAD_REQUEST, str(error))

    validator: TwilioSignatureValidator = request.app.state.signature_validator
    query = request.url.query or ""
    if not validator.is_valid(
        request.url.path, query, pairs, request.headers.get("X-Twilio-Signature")
    ):
        logger.warning(
            "callback_signature_invalid",
            extra={
                "path": request.url.path,
                "client": request.client.host if request.client else None,
                "fix": "if Twilio sent it, check that WEBHOOK_PUBLIC_URL is the public URL "
                "Twilio calls and TWILIO_AUTH_TOKEN is the account's token",
            },
        )
        return error_response(HTTP_403_FORBIDDEN, "missing or invalid X-Twilio-Signature")

    # Only a signed URL may name the send's span, so the link is added after the check.
    span = trace.get_current_span()
    send_context = _send_span_context(query)
    if send_context is not None:
        span.add_link(send_context)
    try:
        report = _report_from(dict(pairs), query)
    except MalformedCallback as error:
        logger.warning("callback_malformed", extra={"error": str(error)})
        return error_response(HTTP_400_BAD_REQUEST, str(error))
    if report.verification_id is not None:
        span.set_attribute("verification.id", report.verification_id)

    use_case: RecordDeliveryStatus = request.app.state.record_delivery_status
    outcome = await use_case.execute(report)
    logger.debug(
        "callback_handled",
        extra={"message_sid": report.message_sid, "outcome": str(outcome)},
    )
    return Response(None, status_code=HTTP_204_NO_CONTENT)
