"""CheckVerification: compare the code a person typed with the stored digest, safely."""

import logging
from dataclasses import dataclass
from enum import StrEnum

from application.errors import VerificationNotFound
from application.policy import VerificationPolicy
from application.ports import Clock, Notifier, PlainCodeStore, VerificationStore
from domain.code import CodeDigester, VerificationCode
from domain.events import CheckApproved, CheckFailed, CheckFailureReason
from domain.verification import Verification

logger = logging.getLogger(__name__)

# Separators people type inside a code, as in "123 456" or "123-456".
_SEPARATORS = str.maketrans("", "", " -\t")


class CheckResult(StrEnum):
    APPROVED = "approved"
    INCORRECT = "incorrect"
    EXPIRED = "expired"
    NOT_FOUND = "not_found"
    TOO_MANY_ATTEMPTS = "too_many_attempts"


@dataclass(frozen=True, slots=True)
class CheckOutcome:
    """The result of one check, with what the caller may do next."""

    result: CheckResult
    attempts_remaining: int
    # Seconds until a new code may be requested, for results that end this code.
    retry_after_seconds: int | None = None


class CheckVerification:
    """Approves a verification when the right code arrives within the attempt limit."""

    def __init__(
        self,
        store: VerificationStore,
        notifier: Notifier,
        clock: Clock,
        digester: CodeDigester,
        plain_codes: PlainCodeStore,
        policy: VerificationPolicy,
    ) -> None:
        self._store = store
        self._notifier = notifier
        self._clock = clock
        self._digester = digester
        self._plain_codes = plain_codes
        self._policy = policy

    async def execute(self, verification_id: str, typed_code: str) -> CheckOutcome:
        """Check `typed_code` and publish `CheckApproved` or `CheckFailed`.

        Every check of an open code counts as one attempt before the comparison, so
        concurrent checks cannot share the last attempt. Once the limit is reached
        the code is dead, even for the right code.
        """
        now = self._clock.now()
        verification = await self._store.get(verification_id)
        if verification is None:
            return await self._fail(verification_id, CheckResult.NOT_FOUND, 0)
        if not verification.is_open(now):
            return await self._fail(verification_id, CheckResult.EXPIRED, 0)

        try:
            attempts = await self._store.record_attempt(verification_id)
        except VerificationNotFound:
            return await self._fail(verification_id, CheckResult.NOT_FOUND, 0)
        remaining = max(self._policy.max_check_attempts - attempts, 0)
        if attempts > self._policy.max_check_attempts:
            return await self._fail(
                verification_id, CheckResult.TOO_MANY_ATTEMPTS, 0, self._resend_wait(verification)
            )

        code = VerificationCode(typed_code.translate(_SEPARATORS))
        if not self._digester.matches(code, verification_id, verification.code_digest):
            return await self._fail(verification_id, CheckResult.INCORRECT, remaining)

        return await self._approve(verification, remaining)

    async def _approve(self, verification: Verification, remaining: int) -> CheckOutcome:
        now = self._clock.now()

        def approve(current: Verification) -> Verification | None:
            # A resend may have replaced the code since it was read: only the
            # digest that matched may be approved.
            if current.code_digest != verification.code_digest:
                return None
            return current.approve(now)

        try:
            approved = await self._store.update(verification.id, approve)
        except VerificationNotFound:
            approved = None
        if approved is None:
            return await self._fail(verification.id, CheckResult.EXPIRED, 0)

        if self._policy.legacy_plain_code:
            await self._plain_codes.delete(verification.id)
        await self._notifier.publish(CheckApproved(verification.id, now))
        logger.info("check_approved", extra={"verification_id": verification.id})
        return CheckOutcome(CheckResult.APPROVED, remaining)

    def _resend_wait(self, verification: Verification) -> int:
        return verification.resend_wait_seconds(self._clock.now(), self._policy.resend_cooldown)

    async def _fail(
        self,
        verification_id: str,
        result: CheckResult,
        remaining: int,
        retry_after_seconds: int | None = None,
    ) -> CheckOutcome:
        reason = CheckFailureReason(result.value)
        await self._notifier.publish(
            CheckFailed(verification_id, reason, remaining, self._clock.now())
        )
        logger.info(
            "check_failed",
            extra={
                "verification_id": verification_id,
                "reason": str(reason),
                "attempts_remaining": remaining,
            },
        )
        return CheckOutcome(result, remaining, retry_after_seconds)
