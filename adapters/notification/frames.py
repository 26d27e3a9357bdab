"""Conversion of domain events into the JSON frames that notifiers send to other services."""

import re
from datetime import UTC, datetime
from typing import assert_never

from domain.delivery import DeliveryStatus
from domain.events import (
    CheckApproved,
    CheckFailed,
    CheckFailureReason,
    CodeSent,
    DeliveryStatusChanged,
    Event,
    SendFailed,
    SendFailureReason,
    SendRejected,
    SendRejectionReason,
)
from domain.phone import mask_phone

MAX_MESSAGE_LENGTH = 300

_SEND_FAILURE_MESSAGES = {
    SendFailureReason.INVALID_PHONE: "The phone number is invalid",
    SendFailureReason.INVALID_REQUEST: "The verification request is invalid",
    SendFailureReason.REJECTED_BY_PROVIDER: "The provider rejected the message",
    SendFailureReason.PROVIDER_UNAVAILABLE: "The provider could not be reached",
}

_SEND_REJECTION_MESSAGES = {
    SendRejectionReason.COOLDOWN: "A code was sent moments ago; wait before requesting another",
    SendRejectionReason.PHONE_HOURLY_LIMIT: "Too many codes for this phone in the last hour",
    SendRejectionReason.PHONE_DAILY_LIMIT: "Too many codes for this phone in the last day",
    SendRejectionReason.GLOBAL_LIMIT: "Too many codes are being sent right now",
    SendRejectionReason.COUNTRY_NOT_ALLOWED: "Codes are not sent to this country",
    SendRejectionReason.STALE_REQUEST: "The request is too old to send a code for",
}

_CHECK_FAILURE_MESSAGES = {
    CheckFailureReason.INCORRECT: "The code is incorrect",
    CheckFailureReason.EXPIRED: "The code has expired or was already used",
    CheckFailureReason.NOT_FOUND: "No verification was found",
    CheckFailureReason.TOO_MANY_ATTEMPTS: "Too many incorrect attempts; request a new code",
}

_DELIVERY_STATUS_MESSAGES = {
    DeliveryStatus.QUEUED: "The message is queued at the provider",
    DeliveryStatus.SENDING: "The message is being sent",
    DeliveryStatus.SENT: "The message was sent to WhatsApp",
    DeliveryStatus.DELIVERED: "The message was delivered",
    DeliveryStatus.READ: "The message was read",
    DeliveryStatus.FAILED: "The message could not be sent",
    DeliveryStatus.UNDELIVERED: "The message was not delivered",
}

# Seven or more digits, optionally after a plus sign and split by spaces, dots, dashes
# or brackets, as people write phone numbers. Twilio error codes have five digits.
_PHONE_LIKE = re.compile(r"\+?\d(?:[ .\-()]*\d){6,}")


def event_to_frame(event: Event) -> dict[str, object]:
    """Convert `event` into a JSON-ready frame for other services.

    Every frame has `event`, `verification_id`, `ok`, `message` and `occurred_at`
    (ISO 8601 in UTC with a `Z` suffix). The other keys depend on `event`:

    - `code_sent`: `message_sid` and `phone`, the masked number.
    - `send_failed`: `reason` and `error_code`, which is None when unknown.
    - `delivery_status`: `delivery_status` and `message_sid`. Frames for `failed` and
      `undelivered` also have `error_code`, which may be None, and `error_message`
      when the provider gave one.

    Free text from the event (the failure detail and the provider's error message) has
    every run of seven or more digits masked, because an invalid phone number in a
    request ends up in the failure detail. No frame contains the code.

    Raises `ValueError` when `event.occurred_at` has no time zone.
    """
    match event:
        case CodeSent():
            return _code_sent_frame(event)
        case SendFailed():
            return _send_failed_frame(event)
        case DeliveryStatusChanged():
            return _delivery_status_frame(event)
        case SendRejected():
            return _send_rejected_frame(event)
        case CheckApproved():
            message = "The code was approved"
            return _base_frame(
                "check_approved", event.verification_id, True, message, event.occurred_at
            )
        case CheckFailed():
            return _check_failed_frame(event)
        case _:
            assert_never(event)


def _code_sent_frame(event: CodeSent) -> dict[str, object]:
    message = "The verification code has been sent"
    return {
        **_base_frame("code_sent", event.verification_id, True, message, event.occurred_at),
        "message_sid": event.message_sid,
        # Already masked by the domain; masking again guards against a caller that
        # passes a full number by mistake.
        "phone": mask_phone_numbers(event.masked_phone),
    }


def _send_failed_frame(event: SendFailed) -> dict[str, object]:
    summary = _SEND_FAILURE_MESSAGES.get(event.reason, "The code could not be sent")
    message = _join_message(summary, event.detail)
    return {
        **_base_frame("send_failed", event.verification_id, False, message, event.occurred_at),
        "reason": str(event.reason),
        "error_code": event.error_code,
    }


def _send_rejected_frame(event: SendRejected) -> dict[str, object]:
    message = _SEND_REJECTION_MESSAGES.get(event.reason, "The code was not sent")
    return {
        **_base_frame("send_rejected", event.verification_id, False, message, event.occurred_at),
        "reason": str(event.reason),
        "retry_after_seconds": event.retry_after_seconds,
    }


def _check_failed_frame(event: CheckFailed) -> dict[str, object]:
    message = _CHECK_FAILURE_MESSAGES.get(event.reason, "The code was not approved")
    return {
        **_base_frame("check_failed", event.verification_id, False, message, event.occurred_at),
        "reason": str(event.reason),
        "attempts_remaining": event.attempts_remaining,
    }


def _delivery_status_frame(event: DeliveryStatusChanged) -> dict[str, object]:
    status = event.delivery_status
    ok = not status.is_failure
    summary = _DELIVERY_STATUS_MESSAGES.get(status, "The message status changed")
    message = summary if ok else _join_message(summary, event.error_message)
    frame: dict[str, object] = {
        **_base_frame("delivery_status", event.verification_id, ok, message, event.occurred_at),
        "delivery_status": str(status),
        "message_sid": event.message_sid,
    }
    if not ok:
        frame["error_code"] = event.error_code
        if event.error_message:
            frame["error_message"] = mask_phone_numbers(event.error_message)
    return frame


def _base_frame(
    event_name: str, verification_id: str, ok: bool, message: str, occurred_at: datetime
) -> dict[str, object]:
    return {
        "event": event_name,
        "verification_id": verification_id,
        "ok": ok,
        "message": message,
        "occurred_at": format_timestamp(occurred_at),
    }


def _join_message(summary: str, detail: str | None) -> str:
    if not detail or not detail.strip():
        return summary
    message = summary + ": " + mask_phone_numbers(" ".join(detail.split()))
    if len(message) > MAX_MESSAGE_LENGTH:
        message = message[: MAX_MESSAGE_LENGTH - 1] + "…"
    return message


def format_timestamp(moment: datetime) -> str:
    """Format an aware datetime as ISO 8601 in UTC with microseconds and a `Z` suffix."""
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError(
            f"invalid event time {moment.isoformat()!r} without a time zone: "
            "pass an aware datetime such as datetime.now(UTC)"
        )
    utc_text = moment.astimezone(UTC).isoformat(timespec="microseconds")
    return utc_text.removesuffix("+00:00") + "Z"


def mask_phone_numbers(text: str) -> str:
    """Mask every phone-like run of seven or more digits in `text` with `mask_phone`."""
    return _PHONE_LIKE.sub(lambda match: mask_phone(match.group()), text)
