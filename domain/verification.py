"""The verification aggregate: one code sent to one phone, and what became of the message."""

import re
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from enum import StrEnum

from domain.delivery import DeliveryStatus, advances
from domain.errors import InvalidVerificationId
from domain.phone import PhoneNumber

MAX_VERIFICATION_ID_LENGTH = 128

# Ids end up in Redis keys, URL paths and log lines. Braces are excluded because
# Redis Cluster reads `{...}` in a key as a hash tag.
_VERIFICATION_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:@~+-]*")


def check_verification_id(verification_id: str) -> str:
    """Return `verification_id` unchanged, or raise `InvalidVerificationId`."""
    if not verification_id or len(verification_id) > MAX_VERIFICATION_ID_LENGTH:
        raise InvalidVerificationId(
            f"invalid verification id {verification_id[:40]!r}: "
            f"use 1 to {MAX_VERIFICATION_ID_LENGTH} characters"
        )
    if not _VERIFICATION_ID.fullmatch(verification_id):
        raise InvalidVerificationId(
            f"invalid verification id {verification_id[:40]!r}: use letters, digits and "
            "._:@~+- only, starting with a letter or digit"
        )
    return verification_id


@dataclass(frozen=True, slots=True)
class StatusChange:
    """One delivery status as it was applied, with the time it was recorded."""

    status: DeliveryStatus
    recorded_at: datetime
    error_code: str | None = None


class VerificationStatus(StrEnum):
    """Lifecycle status of a verification, as the requesting service sees it."""

    PENDING = "pending"
    APPROVED = "approved"
    EXPIRED = "expired"
    FAILED = "failed"
    CANCELED = "canceled"


@dataclass(frozen=True, slots=True)
class Verification:
    """A code sent to a phone, stored as a digest until it expires.

    `check_attempts` counts the checks made against this code. The store keeps it
    apart from the record so it can be incremented atomically, and fills it in on read.
    """

    id: str
    phone: PhoneNumber
    code_digest: str
    created_at: datetime
    expires_at: datetime
    locale: str | None = None
    message_sid: str | None = None
    delivery_status: DeliveryStatus | None = None
    error_code: str | None = None
    error_message: str | None = None
    history: tuple[StatusChange, ...] = ()
    check_attempts: int = 0
    approved_at: datetime | None = None
    canceled_at: datetime | None = None
    # The request that drew this code, so its own retries are not mistaken for a resend.
    request_key: str | None = None

    @classmethod
    def start(
        cls,
        verification_id: str,
        phone: PhoneNumber,
        code_digest: str,
        now: datetime,
        time_to_live: timedelta,
        locale: str | None = None,
        request_key: str | None = None,
    ) -> "Verification":
        """Create a verification whose code has not been handed to the provider yet."""
        return cls(
            id=check_verification_id(verification_id),
            phone=phone,
            code_digest=code_digest,
            created_at=now,
            expires_at=now + time_to_live,
            locale=locale,
            request_key=request_key,
        )

    def is_expired(self, now: datetime) -> bool:
        return now >= self.expires_at

    def status(self, now: datetime, max_attempts: int) -> VerificationStatus:
        """Return the lifecycle status at `now`, given the allowed number of checks."""
        if self.approved_at is not None:
            return VerificationStatus.APPROVED
        if self.canceled_at is not None:
            return VerificationStatus.CANCELED
        if self.is_expired(now):
            return VerificationStatus.EXPIRED
        if self.check_attempts >= max_attempts:
            return VerificationStatus.FAILED
        if self.delivery_status is not None and self.delivery_status.is_failure:
            return VerificationStatus.FAILED
        return VerificationStatus.PENDING

    def is_open(self, now: datetime) -> bool:
        """Tell whether the code can still be checked: not approved, canceled or expired."""
        return self.approved_at is None and self.canceled_at is None and not self.is_expired(now)

    def resend_wait_seconds(
        self, now: datetime, cooldown: timedelta, request_key: str | None = None
    ) -> int:
        """Return the whole seconds until another request's code may replace this one, or 0.

        An open code drawn less than `cooldown` ago blocks a resend, also while its
        send is still running, so two requests at once send one code. A failed send
        never blocks, so the requester can try again at once, and the request that
        drew this code (`request_key`) is never blocked by it, so it can retry.
        """
        if not self.is_open(now):
            return 0
        if self.delivery_status is None and request_key is not None:
            if request_key == self.request_key:
                return 0
        elif self.delivery_status is None or self.delivery_status.is_failure:
            return 0
        remaining = (self.created_at + cooldown - now).total_seconds()
        return max(int(remaining + 0.999), 0)

    def approve(self, now: datetime) -> "Verification | None":
        """Return the verification marked approved, or None when it is no longer open."""
        if not self.is_open(now):
            return None
        return replace(self, approved_at=now)

    def cancel(self, now: datetime) -> "Verification | None":
        """Return the verification marked canceled, or None when it is not open."""
        if not self.is_open(now):
            return None
        return replace(self, canceled_at=now)

    def seconds_to_live(self, now: datetime) -> int:
        """Return whole seconds until expiry, at least 1 so a store TTL is never zero."""
        return max(int((self.expires_at - now).total_seconds()), 1)

    def accept_message(
        self, message_sid: str, status: DeliveryStatus, now: datetime
    ) -> "Verification":
        """Return the verification with the provider's message attached.

        A status report may have arrived before the send call returned, so the status
        the provider gave on acceptance applies only if it is further along.
        """
        attached = replace(self, message_sid=message_sid)
        return attached.record_delivery(status, now) or attached

    def record_delivery(
        self,
        status: DeliveryStatus,
        now: datetime,
        message_sid: str | None = None,
        error_code: str | None = None,
        error_message: str | None = None,
    ) -> "Verification | None":
        """Return the verification with `status` applied, or None when it changes nothing.

        Duplicate and out-of-order reports change nothing (see `delivery.advances`).
        """
        if not advances(self.delivery_status, status):
            return None
        return replace(
            self,
            message_sid=self.message_sid or message_sid,
            delivery_status=status,
            error_code=error_code if status.is_failure else self.error_code,
            error_message=error_message if status.is_failure else self.error_message,
            history=(*self.history, StatusChange(status, now, error_code)),
        )
