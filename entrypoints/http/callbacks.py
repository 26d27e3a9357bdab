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

from adapters.twilio.signature import TwilioSignatureValidator
from application.record_delivery_status import DeliveryReport, RecordDeliveryStatus
from domain.verification import MAX_VERIFICATION_ID_LENGTH
from entrypoints.http.errors import error_response

logger = logging.getLogger(__name__)

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


@post(
    ["/twilio/status", "/"],
    status_code=HTTP_200_OK,
    request_max_body_size=MAX_CALLBACK_BYTES,
)
async def twilio_status(request: Request[object, object, State]) -> Response[object]:
    """Apply a signed Twilio status callback. `POST /` serves existing deployments."""
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
            },
        )
        return error_response(HTTP_403_FORBIDDEN, "missing or invalid X-Twilio-Signature")

    try:
        report = _report_from(dict(pairs), query)
    except MalformedCallback as error:
        logger.warning("callback_malformed", extra={"error": str(error)})
        return error_response(HTTP_400_BAD_REQUEST, str(error))

    use_case: RecordDeliveryStatus = request.app.state.record_delivery_status
    outcome = await use_case.execute(report)
    logger.debug(
        "callback_handled",
        extra={"message_sid": report.message_sid, "outcome": str(outcome)},
    )
    return Response(None, status_code=HTTP_204_NO_CONTENT)
