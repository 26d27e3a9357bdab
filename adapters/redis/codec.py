"""JSON encoding of the verification records that the Redis store keeps."""

import json
from datetime import UTC, datetime
from typing import Any

from domain.delivery import DeliveryStatus
from domain.errors import InvalidPhoneNumber
from domain.phone import PhoneNumber
from domain.verification import StatusChange, Verification

# Stored in every record, so that a reader can detect records in a later layout.
RECORD_VERSION = 1


def encode_verification(verification: Verification) -> bytes:
    """Encode `verification` as UTF-8 JSON, with datetimes in ISO 8601 UTC.

    The id is not part of the record because the key carries it, and neither is
    `check_attempts`, which the store keeps in a counter of its own. Raises
    `ValueError` for a naive datetime, whose moment in time is unknown.
    """
    record = {
        "version": RECORD_VERSION,
        "phone": verification.phone.e164,
        "code_digest": verification.code_digest,
        "created_at": _encode_time(verification.created_at, "created_at"),
        "expires_at": _encode_time(verification.expires_at, "expires_at"),
        "locale": verification.locale,
        "request_key": verification.request_key,
        "message_sid": verification.message_sid,
        "delivery_status": _encode_status(verification.delivery_status),
        "error_code": verification.error_code,
        "error_message": verification.error_message,
        "history": [
            {
                "status": change.status.value,
                "recorded_at": _encode_time(change.recorded_at, "history.recorded_at"),
                "error_code": change.error_code,
            }
            for change in verification.history
        ],
        "approved_at": _encode_optional_time(verification.approved_at, "approved_at"),
        "canceled_at": _encode_optional_time(verification.canceled_at, "canceled_at"),
    }
    return json.dumps(record, ensure_ascii=False, separators=(",", ":")).encode()


def decode_verification(
    key: str, verification_id: str, raw: bytes | str, check_attempts: int = 0
) -> Verification:
    """Decode the record stored at `key`, or raise `ValueError` naming the key.

    `check_attempts` comes from the store's attempt counter, because the record does
    not contain it.
    """
    try:
        return _verification_from_record(verification_id, json.loads(raw), check_attempts)
    except ValueError as error:
        raise ValueError(
            f"cannot decode the verification record at Redis key {key!r}: {error}. "
            "Delete the key or store a record in the current layout."
        ) from error


def _verification_from_record(
    verification_id: str, record: Any, check_attempts: int
) -> Verification:
    if not isinstance(record, dict):
        raise ValueError("the value is not a JSON object")
    version = record.get("version")
    if version != RECORD_VERSION:
        raise ValueError(f"record version {version!r} is not supported, expected {RECORD_VERSION}")

    history = record.get("history")
    if not isinstance(history, list):
        raise ValueError("field 'history' is missing or not a list")

    return Verification(
        id=verification_id,
        phone=_phone(record),
        code_digest=_text(record, "code_digest"),
        created_at=_time(record, "created_at"),
        expires_at=_time(record, "expires_at"),
        locale=_optional_text(record, "locale"),
        request_key=_optional_text(record, "request_key"),
        message_sid=_optional_text(record, "message_sid"),
        delivery_status=_optional_status(record, "delivery_status"),
        error_code=_optional_text(record, "error_code"),
        error_message=_optional_text(record, "error_message"),
        history=tuple(_status_change(entry) for entry in history),
        check_attempts=check_attempts,
        # Records written before approval and cancellation existed lack both fields.
        approved_at=_optional_time(record, "approved_at"),
        canceled_at=_optional_time(record, "canceled_at"),
    )


def _status_change(entry: Any) -> StatusChange:
    if not isinstance(entry, dict):
        raise ValueError("an entry of 'history' is not a JSON object")
    status = _optional_status(entry, "status")
    if status is None:
        raise ValueError("field 'history.status' is missing")
    return StatusChange(
        status=status,
        recorded_at=_time(entry, "recorded_at"),
        error_code=_optional_text(entry, "error_code"),
    )


def _phone(record: dict[str, Any]) -> PhoneNumber:
    try:
        return PhoneNumber(_text(record, "phone"))
    except InvalidPhoneNumber:
        # The domain error shows the number, which must not reach logs.
        raise ValueError("field 'phone' is not an E.164 number") from None


def _text(record: dict[str, Any], name: str) -> str:
    value = record.get(name)
    if not isinstance(value, str):
        raise ValueError(f"field {name!r} is missing or not a string")
    return value


def _optional_text(record: dict[str, Any], name: str) -> str | None:
    value = record.get(name)
    if value is not None and not isinstance(value, str):
        raise ValueError(f"field {name!r} is not a string or null")
    return value


def _optional_status(record: dict[str, Any], name: str) -> DeliveryStatus | None:
    value = _optional_text(record, name)
    if value is None:
        return None
    try:
        return DeliveryStatus(value)
    except ValueError:
        raise ValueError(f"field {name!r} has the unknown status {value[:40]!r}") from None


def _time(record: dict[str, Any], name: str) -> datetime:
    text = _text(record, name)
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(f"field {name!r} is not an ISO 8601 datetime") from None
    if moment.tzinfo is None:
        raise ValueError(f"field {name!r} has no UTC offset")
    return moment.astimezone(UTC)


def _optional_time(record: dict[str, Any], name: str) -> datetime | None:
    if record.get(name) is None:
        return None
    return _time(record, name)


def _encode_time(moment: datetime, name: str) -> str:
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError(
            f"cannot store {name} {moment.isoformat()!r} without a time zone: "
            "use an aware datetime such as datetime.now(UTC)"
        )
    return moment.astimezone(UTC).isoformat(timespec="microseconds")


def _encode_optional_time(moment: datetime | None, name: str) -> str | None:
    return None if moment is None else _encode_time(moment, name)


def _encode_status(status: DeliveryStatus | None) -> str | None:
    return None if status is None else status.value
