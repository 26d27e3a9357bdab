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


Event = CodeSent | SendFailed | DeliveryStatusChanged
