"""Unit tests of the JSON frames built from domain events."""

import json
import re
from datetime import UTC, datetime, timedelta, timezone

import pytest

from adapters.notification.frames import MAX_MESSAGE_LENGTH, event_to_frame
from domain.delivery import DeliveryStatus
from domain.events import CodeSent, DeliveryStatusChanged, Event, SendFailed, SendFailureReason

OCCURRED_AT = datetime(2025, 3, 4, 5, 6, 7, 890000, tzinfo=UTC)
FULL_PHONE = "+593991234567"
COMMON_KEYS = {"event", "verification_id", "ok", "message", "occurred_at"}


def code_sent() -> CodeSent:
    return CodeSent("ver-1", "+593******567", "SM0001", OCCURRED_AT)


def send_failed(
    reason: SendFailureReason = SendFailureReason.REJECTED_BY_PROVIDER,
    detail: str = "Template not approved",
    error_code: str | None = "63016",
) -> SendFailed:
    return SendFailed("ver-2", reason, detail, OCCURRED_AT, error_code)


def delivery_status(
    status: DeliveryStatus,
    error_code: str | None = None,
    error_message: str | None = None,
) -> DeliveryStatusChanged:
    return DeliveryStatusChanged("ver-3", "SM0003", status, OCCURRED_AT, error_code, error_message)


def test_code_sent_frame_carries_sid_and_masked_phone() -> None:
    frame = event_to_frame(code_sent())

    assert frame == {
        "event": "code_sent",
        "verification_id": "ver-1",
        "ok": True,
        "message": "The verification code has been sent",
        "occurred_at": "2025-03-04T05:06:07.890000Z",
        "message_sid": "SM0001",
        "phone": "+593******567",
    }


def test_send_failed_frame_carries_reason_and_error_code() -> None:
    frame = event_to_frame(send_failed())

    assert frame["event"] == "send_failed"
    assert frame["verification_id"] == "ver-2"
    assert frame["ok"] is False
    assert frame["reason"] == "rejected_by_provider"
    assert frame["error_code"] == "63016"
    assert frame["message"] == "The provider rejected the message: Template not approved"


@pytest.mark.parametrize("reason", list(SendFailureReason))
def test_send_failed_message_covers_every_reason(
    reason: SendFailureReason,
) -> None:
    frame = event_to_frame(send_failed(reason=reason, detail="", error_code=None))

    assert frame["ok"] is False
    assert frame["reason"] == str(reason)
    assert frame["error_code"] is None
    assert isinstance(frame["message"], str)
    assert frame["message"].startswith("The ")
    assert ":" not in frame["message"]


def test_send_failed_frame_shortens_long_detail() -> None:
    frame = event_to_frame(send_failed(detail="provider said " + "x" * 1000))

    assert isinstance(frame["message"], str)
    assert len(frame["message"]) == MAX_MESSAGE_LENGTH
    assert frame["message"].endswith("…")


@pytest.mark.parametrize(
    ("status", "message"),
    [
        (DeliveryStatus.QUEUED, "The message is queued at the provider"),
        (DeliveryStatus.SENDING, "The message is being sent"),
        (DeliveryStatus.SENT, "The message was sent to WhatsApp"),
        (DeliveryStatus.DELIVERED, "The message was delivered"),
        (DeliveryStatus.READ, "The message was read"),
    ],
)
def test_delivery_status_frame_reports_progress_as_ok(status: DeliveryStatus, message: str) -> None:
    frame = event_to_frame(delivery_status(status))

    assert frame == {
        "event": "delivery_status",
        "verification_id": "ver-3",
        "ok": True,
        "message": message,
        "occurred_at": "2025-03-04T05:06:07.890000Z",
        "delivery_status": str(status),
        "message_sid": "SM0003",
    }


@pytest.mark.parametrize("status", [DeliveryStatus.FAILED, DeliveryStatus.UNDELIVERED])
def test_delivery_failure_frame_carries_error_code_and_message(status: DeliveryStatus) -> None:
    frame = event_to_frame(delivery_status(status, "63024", "Invalid message recipient"))

    assert frame["ok"] is False
    assert frame["delivery_status"] == str(status)
    assert frame["error_code"] == "63024"
    assert frame["error_message"] == "Invalid message recipient"
    assert isinstance(frame["message"], str)
    assert frame["message"].endswith(": Invalid message recipient")


def test_delivery_failure_omits_missing_error_message() -> None:
    frame = event_to_frame(delivery_status(DeliveryStatus.UNDELIVERED))

    assert frame["ok"] is False
    assert frame["error_code"] is None
    assert "error_message" not in frame
    assert frame["message"] == "The message was not delivered"


def test_every_frame_has_common_keys_and_is_json() -> None:
    events: list[Event] = [
        code_sent(),
        send_failed(),
        delivery_status(DeliveryStatus.DELIVERED),
        delivery_status(DeliveryStatus.FAILED, "30008", "Unknown error"),
    ]

    for event in events:
        frame = event_to_frame(event)
        assert COMMON_KEYS <= frame.keys(), event
        assert json.loads(json.dumps(frame)) == frame


def test_occurred_at_is_converted_to_utc() -> None:
    five_hours_behind = timezone(timedelta(hours=-5))
    event = CodeSent(
        "ver-1", "+593******567", "SM1", datetime(2025, 3, 4, 0, 6, 7, 0, five_hours_behind)
    )

    frame = event_to_frame(event)

    assert frame["occurred_at"] == "2025-03-04T05:06:07.000000Z"


def test_naive_occurred_at_raises_value_error() -> None:
    event = CodeSent("ver-1", "+593******567", "SM1", datetime(2025, 3, 4, 5, 6, 7))

    with pytest.raises(ValueError, match="without a time zone"):
        event_to_frame(event)


def test_frames_never_contain_full_phone() -> None:
    events: list[Event] = [
        code_sent(),
        # The phone parser puts the raw input into the error that becomes the detail.
        send_failed(
            SendFailureReason.INVALID_PHONE,
            f"invalid E.164 phone number '{FULL_PHONE}': expected '+' and 7 to 15 digits",
            None,
        ),
        send_failed(
            SendFailureReason.REJECTED_BY_PROVIDER, "To +593 99 123 4567 is not a WhatsApp user"
        ),
        delivery_status(DeliveryStatus.FAILED, "63024", f"Recipient {FULL_PHONE[1:]} unreachable"),
        # A masked number passed where the full one never belongs is masked again.
        CodeSent("ver-4", FULL_PHONE, "SM4", OCCURRED_AT),
    ]
    seven_digits_in_a_row = re.compile(r"\d(?:[ .\-()]*\d){6,}")

    for event in events:
        frame = event_to_frame(event)
        # The timestamp is the only field where seven digits in a row belong.
        del frame["occurred_at"]
        text = json.dumps(frame)
        assert seven_digits_in_a_row.search(text) is None, text
        assert "991234" not in text.replace(" ", ""), text


def test_masked_phone_keeps_prefix_and_last_digits() -> None:
    frame = event_to_frame(send_failed(SendFailureReason.INVALID_PHONE, f"bad {FULL_PHONE}", None))

    assert frame["message"] == "The phone number is invalid: bad +593******567"
