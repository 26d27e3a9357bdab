"""Events that tell the rest of the system what happened to a verification."""

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from domain.delivery import DeliveryStatus


class SendFailureReason(StrEnum):
    """Reason a code could not be sent."""

    INVALID_PHONE = "invalid_phone"
    INVALID_REQUEST = "invalid_request"
    REJECTED_BY_PROVIDER = "rejected_by_provider"
    PROVIDER_UNAVAILABLE = "provider_unavailable"


@dataclass(frozen=True, slots=True)
class CodeSent:
    """The provider accepted the message carrying the code."""

    verification_id: str
    masked_phone: str
    message_sid: str
    occurred_at: datetime


@dataclass(frozen=True, slots=True)
class SendFailed:
    """No code reached the provider, or the provider rejected it."""

    verification_id: str
    reason: SendFailureReason
    detail: str
    occurred_at: datetime
    error_code: str | None = None


@dataclass(frozen=True, slots=True)
class DeliveryStatusChanged:
    """The provider reported a new delivery status for the message."""

    verification_id: str
    message_sid: str
    delivery_status: DeliveryStatus
    occurred_at: datetime
    error_code: str | None = None
    error_message: str | None = None


class SendRejectionReason(StrEnum):
    """Rule that stopped a code from being sent."""

    COOLDOWN = "cooldown"
    PHONE_HOURLY_LIMIT = "phone_hourly_limit"
    PHONE_DAILY_LIMIT = "phone_daily_limit"
    GLOBAL_LIMIT = "global_limit"
    COUNTRY_NOT_ALLOWED = "country_not_allowed"
    STALE_REQUEST = "stale_request"


@dataclass(frozen=True, slots=True)
class SendRejected:
    """A rule stopped the send: nothing was sent and the live code, if any, is kept."""

    verification_id: str
    reason: SendRejectionReason
    occurred_at: datetime
    retry_after_seconds: int | None = None


class CheckFailureReason(StrEnum):
    """Reason a checked code was not approved."""

    INCORRECT = "incorrect"
    EXPIRED = "expired"
    NOT_FOUND = "not_found"
    TOO_MANY_ATTEMPTS = "too_many_attempts"


@dataclass(frozen=True, slots=True)
class CheckApproved:
    """The person typed the right code; the verification is consumed."""

    verification_id: str
    occurred_at: datetime


@dataclass(frozen=True, slots=True)
class CheckFailed:
    """A check did not approve the verification."""

    verification_id: str
    reason: CheckFailureReason
    attempts_remaining: int
    occurred_at: datetime


Event = CodeSent | SendFailed | DeliveryStatusChanged | SendRejected | CheckApproved | CheckFailed
