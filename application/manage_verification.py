"""Reading and canceling verifications for the services that requested them."""

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from application.errors import VerificationNotFound
from application.policy import VerificationPolicy
from application.ports import Clock, PlainCodeStore, VerificationStore
from domain.delivery import DeliveryStatus
from domain.verification import StatusChange, VerificationStatus


@dataclass(frozen=True, slots=True)
class VerificationView:
    """Read model of a verification for other services, without the code or full phone."""

    verification_id: str
    status: VerificationStatus
    masked_phone: str
    created_at: datetime
    expires_at: datetime
    delivery_status: DeliveryStatus | None
    delivery_history: tuple[StatusChange, ...]
    attempts_used: int
    attempts_remaining: int
    error_code: str | None
    approved_at: datetime | None
    canceled_at: datetime | None


class CancelOutcome(StrEnum):
    CANCELED = "canceled"
    NOT_FOUND = "not_found"
    NOT_OPEN = "not_open"


class ManageVerification:
    """Shows a verification's state and cancels open verifications."""

    def __init__(
        self,
        store: VerificationStore,
        clock: Clock,
        plain_codes: PlainCodeStore,
        policy: VerificationPolicy,
    ) -> None:
        self._store = store
        self._clock = clock
        self._plain_codes = plain_codes
        self._policy = policy

    async def describe(self, verification_id: str) -> VerificationView | None:
        """Return the view of the verification, or None when none is stored."""
        verification = await self._store.get(verification_id)
        if verification is None:
            return None
        limit = self._policy.max_check_attempts
        used = min(verification.check_attempts, limit)
        return VerificationView(
            verification_id=verification.id,
            status=verification.status(self._clock.now(), limit),
            masked_phone=verification.phone.masked(),
            created_at=verification.created_at,
            expires_at=verification.expires_at,
            delivery_status=verification.delivery_status,
            delivery_history=verification.history,
            attempts_used=used,
            attempts_remaining=limit - used,
            error_code=verification.error_code,
            approved_at=verification.approved_at,
            canceled_at=verification.canceled_at,
        )

    async def cancel(self, verification_id: str) -> CancelOutcome:
        """Cancel an open verification, so its code is no longer accepted."""
        now = self._clock.now()
        try:
            canceled = await self._store.update(
                verification_id, lambda current: current.cancel(now)
            )
        except VerificationNotFound:
            return CancelOutcome.NOT_FOUND
        if canceled is None:
            return CancelOutcome.NOT_OPEN
        if self._policy.legacy_plain_code:
            await self._plain_codes.delete(verification_id)
        return CancelOutcome.CANCELED
