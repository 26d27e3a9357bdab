"""RequestVerification: draw a code, store its digest and send it to the person's WhatsApp."""

import contextlib
import logging
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from enum import StrEnum

from application.errors import (
    MessageRejected,
    PortError,
    ProviderUnavailable,
    RequestInProgress,
    VerificationNotFound,
)
from application.policy import VerificationPolicy
from application.ports import (
    Claim,
    Clock,
    CodeGenerator,
    MessageSender,
    Notifier,
    OutgoingMessage,
    PhoneNumberParser,
    PlainCodeStore,
    ProviderMessage,
    RequestLedger,
    SendLimiter,
    VerificationStore,
)
from domain.code import CodeDigester, VerificationCode
from domain.delivery import DeliveryStatus
from domain.errors import InvalidPhoneNumber, InvalidVerificationId
from domain.events import (
    CodeSent,
    SendFailed,
    SendFailureReason,
    SendRejected,
    SendRejectionReason,
)
from domain.phone import PhoneNumber
from domain.verification import Verification, check_verification_id

logger = logging.getLogger(__name__)

CODE_PLACEHOLDER = "{code}"

# How far the provider's clock may run behind this service's when messages are
# listed back after a crash.
_PROVIDER_CLOCK_SKEW = timedelta(minutes=1)


@dataclass(frozen=True, slots=True)
class VerificationRequest:
    """A request from another service to verify a phone, as read from the topic.

    `request_key` identifies this request across redeliveries: the producer's
    `request_id`, or the record's topic, partition and offset.
    """

    verification_id: str
    phone: str
    locale: str | None = None
    request_key: str | None = None


class RequestOutcome(StrEnum):
    SENT = "sent"
    RECOVERED = "recovered"
    INVALID_REQUEST = "invalid_request"
    REJECTED_BY_RULE = "rejected_by_rule"
    REJECTED_BY_PROVIDER = "rejected_by_provider"
    DUPLICATE = "duplicate"


@dataclass(frozen=True, slots=True)
class MessageTemplate:
    """The message text, with `{code}` where the code goes."""

    text: str

    def __post_init__(self) -> None:
        if CODE_PLACEHOLDER not in self.text:
            raise ValueError(f"message template {self.text!r} has no {CODE_PLACEHOLDER}")

    def render(self, code: VerificationCode) -> str:
        # Plain replacement, not str.format, so braces elsewhere in the text stay literal.
        return self.text.replace(CODE_PLACEHOLDER, code.value)

    def extract_code(self, body: str) -> VerificationCode | None:
        """Return the code in a message rendered from this template, or None."""
        before, _, after = self.text.partition(CODE_PLACEHOLDER)
        pattern = re.escape(before) + r"([0-9A-Z]{4,10})" + re.escape(after)
        match = re.fullmatch(pattern, body)
        return VerificationCode(match.group(1)) if match else None


class _Rejected(Exception):
    """A rule stopped the send; carries the event to publish."""

    def __init__(self, reason: SendRejectionReason, retry_after_seconds: int | None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.retry_after_seconds = retry_after_seconds


class RequestVerification:
    """Sends a fresh code for a verification request, once per request."""

    def __init__(
        self,
        store: VerificationStore,
        sender: MessageSender,
        notifier: Notifier,
        clock: Clock,
        codes: CodeGenerator,
        phones: PhoneNumberParser,
        digester: CodeDigester,
        template: MessageTemplate,
        ledger: RequestLedger,
        limiter: SendLimiter,
        plain_codes: PlainCodeStore,
        policy: VerificationPolicy,
    ) -> None:
        self._store = store
        self._sender = sender
        self._notifier = notifier
        self._clock = clock
        self._codes = codes
        self._phones = phones
        self._digester = digester
        self._template = template
        self._ledger = ledger
        self._limiter = limiter
        self._plain_codes = plain_codes
        self._policy = policy

    async def execute(self, request: VerificationRequest, owner: str) -> RequestOutcome:
        """Send a code for `request` and publish what happened.

        `owner` names this handling of the request. A retry by the same owner
        proceeds, while a redelivery whose send was already started or that was
        already handled sends nothing and returns DUPLICATE. Raises
        `RequestInProgress` while another owner has claimed the request, and the retriable
        `PortError`s of the store and sender unchanged, so the caller can retry.
        """
        try:
            check_verification_id(request.verification_id)
        except InvalidVerificationId as error:
            await self._reject_input(request, error)
            return RequestOutcome.INVALID_REQUEST

        if request.request_key is not None:
            claim = await self._ledger.claim(
                request.request_key, owner, self._policy.claim_lease.total_seconds()
            )
            if claim is Claim.IN_PROGRESS:
                raise RequestInProgress(f"request {request.request_key} is held by another worker")
            if claim is Claim.SEND_STARTED and await self._recover(request):
                await self._complete(request, owner)
                return RequestOutcome.RECOVERED
            if claim is Claim.COMPLETED:
                logger.info(
                    "request_duplicate",
                    extra={
                        "verification_id": request.verification_id[:128],
                        "request_key": request.request_key,
                        "claim": str(claim),
                    },
                )
                return RequestOutcome.DUPLICATE

        outcome = await self._handle(request, owner)

        await self._complete(request, owner)
        return outcome

    async def _recover(self, request: VerificationRequest) -> bool:
        """Find out whether a crashed worker's send of `request` reached the provider.

        The provider's messages to the phone since the code was stored are compared
        with the stored digest: a match is the crashed worker's message, which is
        recorded as if its send had returned. Returns False when no message matches,
        so the request is sent as new.
        """
        stored = await self._store.get(request.verification_id)
        if stored is None:
            return False
        if stored.message_sid is not None:
            # The crashed worker recorded the send before it died.
            return True
        since = stored.created_at - _PROVIDER_CLOCK_SKEW
        found = await self._sender.find_recent(stored.phone, since)
        match = next((message for message in found if self._is_code_of(message, stored)), None)
        if match is None:
            logger.info("send_not_found_at_provider", extra={"verification_id": stored.id})
            return False

        now = self._clock.now()
        await self._store.update(
            stored.id, lambda current: current.accept_message(match.sid, match.status, now)
        )
        await self._notifier.publish(CodeSent(stored.id, stored.phone.masked(), match.sid, now))
        logger.info(
            "send_recovered", extra={"verification_id": stored.id, "message_sid": match.sid}
        )
        return True

    def _is_code_of(self, message: ProviderMessage, stored: Verification) -> bool:
        code = self._template.extract_code(message.body)
        return code is not None and self._digester.matches(code, stored.id, stored.code_digest)

    async def _handle(self, request: VerificationRequest, owner: str) -> RequestOutcome:
        try:
            verification_id = check_verification_id(request.verification_id)
            phone = self._phones.parse(request.phone)
        except (InvalidVerificationId, InvalidPhoneNumber) as error:
            await self._reject_input(request, error)
            return RequestOutcome.INVALID_REQUEST

        try:
            code, verification = await self._start(verification_id, phone, request, owner)
        except _Rejected as rejection:
            await self._publish_rejection(verification_id, phone, rejection)
            return RequestOutcome.REJECTED_BY_RULE

        if self._policy.legacy_plain_code:
            await self._plain_codes.put(
                verification_id, code, verification.seconds_to_live(self._clock.now())
            )
        if request.request_key is not None:
            await self._ledger.mark_send_started(request.request_key, owner)

        return await self._send(verification, code, owner)

    async def _start(
        self,
        verification_id: str,
        phone: PhoneNumber,
        request: VerificationRequest,
        owner: str,
    ) -> tuple[VerificationCode, Verification]:
        """Apply the send rules, then store the new code's digest. Raises `_Rejected`."""
        now = self._clock.now()
        allowed = self._policy.allowed_countries
        if allowed and phone.region not in allowed:
            raise _Rejected(SendRejectionReason.COUNTRY_NOT_ALLOWED, None)

        cooldown = self._policy.resend_cooldown
        live = await self._store.get(verification_id)
        wait = live.resend_wait_seconds(now, cooldown, request.request_key) if live else 0
        if wait:
            raise _Rejected(SendRejectionReason.COOLDOWN, wait)

        decision = await self._limiter.acquire(phone, owner, now)
        if not decision.allowed:
            raise _Rejected(
                decision.reason or SendRejectionReason.GLOBAL_LIMIT, decision.retry_after_seconds
            )

        code = self._codes.generate()
        verification = Verification.start(
            verification_id,
            phone,
            self._digester.digest(code, verification_id),
            now,
            self._policy.code_time_to_live,
            request.locale,
            request.request_key,
        )
        # Stored before sending, so a status callback that overtakes the send call's
        # response finds the record. The cooldown is tested again atomically here,
        # because another worker may have sent a code since the read above.
        blocking = await self._store.create(
            verification,
            may_replace=lambda current: (
                current.resend_wait_seconds(now, cooldown, request.request_key) == 0
            ),
        )
        if blocking is not None:
            await self._limiter.release(phone, owner)
            raise _Rejected(
                SendRejectionReason.COOLDOWN,
                blocking.resend_wait_seconds(now, cooldown, request.request_key),
            )
        return code, verification

    async def _send(
        self, verification: Verification, code: VerificationCode, owner: str
    ) -> RequestOutcome:
        message = OutgoingMessage(verification.id, verification.phone, self._template.render(code))
        try:
            receipt = await self._sender.send(message)
        except MessageRejected as error:
            await self._record_failure(
                verification.id,
                SendFailureReason.REJECTED_BY_PROVIDER,
                error.detail,
                error.error_code,
                lambda current: current.code_digest == verification.code_digest,
            )
            return RequestOutcome.REJECTED_BY_PROVIDER
        except ProviderUnavailable:
            # The retry counts its own send against the limits again.
            await self._limiter.release(verification.phone, owner)
            raise

        now = self._clock.now()

        def accept(current: Verification) -> Verification | None:
            # Another request may have replaced the code while this send ran; its
            # record must not take this message's SID.
            if current.code_digest != verification.code_digest:
                return None
            return current.accept_message(receipt.sid, receipt.status, now)

        await self._store.update(verification.id, accept)
        await self._notifier.publish(
            CodeSent(verification.id, verification.phone.masked(), receipt.sid, now)
        )
        logger.info(
            "code_sent",
            extra={"verification_id": verification.id, "message_sid": receipt.sid},
        )
        return RequestOutcome.SENT

    async def reject_stale(self, verification_id: str, age_seconds: int) -> None:
        """Publish `SendRejected` for a request read too long after it was made."""
        logger.warning(
            "request_stale",
            extra={"verification_id": verification_id[:128], "age_seconds": age_seconds},
        )
        await self._notifier.publish(
            SendRejected(verification_id, SendRejectionReason.STALE_REQUEST, self._clock.now())
        )

    async def reject_invalid(self, verification_id: str, detail: str) -> None:
        """Publish `SendFailed` for a request that could not be read, without sending."""
        await self._notifier.publish(
            SendFailed(
                verification_id, SendFailureReason.INVALID_REQUEST, detail, self._clock.now()
            )
        )

    async def abandon(self, request: VerificationRequest, owner: str, error: PortError) -> None:
        """Record that retries for `request` ran out, and publish `SendFailed`."""
        error_code = getattr(error, "error_code", None)
        await self._record_failure(
            request.verification_id,
            SendFailureReason.PROVIDER_UNAVAILABLE,
            str(error),
            error_code,
            lambda current: current.request_key == request.request_key,
        )
        await self._complete(request, owner)

    async def _complete(self, request: VerificationRequest, owner: str) -> None:
        if request.request_key is not None:
            await self._ledger.complete(request.request_key, owner)

    async def _reject_input(self, request: VerificationRequest, error: Exception) -> None:
        reason = (
            SendFailureReason.INVALID_PHONE
            if isinstance(error, InvalidPhoneNumber)
            else SendFailureReason.INVALID_REQUEST
        )
        logger.warning(
            "request_rejected",
            extra={
                "verification_id": request.verification_id[:128],
                "reason": str(reason),
                # Both errors mask the phone number they quote.
                "error": str(error),
            },
        )
        if request.verification_id:
            await self._notifier.publish(
                SendFailed(request.verification_id, reason, str(error), self._clock.now())
            )

    async def _publish_rejection(
        self, verification_id: str, phone: PhoneNumber, rejection: _Rejected
    ) -> None:
        logger.warning(
            "send_rejected",
            extra={
                "verification_id": verification_id,
                "phone": phone.masked(),
                "reason": str(rejection.reason),
                "retry_after_seconds": rejection.retry_after_seconds,
            },
        )
        await self._notifier.publish(
            SendRejected(
                verification_id,
                rejection.reason,
                self._clock.now(),
                rejection.retry_after_seconds,
            )
        )

    async def _record_failure(
        self,
        verification_id: str,
        reason: SendFailureReason,
        detail: str,
        error_code: str | None,
        belongs: Callable[[Verification], bool],
    ) -> None:
        now = self._clock.now()

        def fail(current: Verification) -> Verification | None:
            # Only the code this request drew is marked failed, not a newer one.
            if not belongs(current):
                return None
            return current.record_delivery(
                DeliveryStatus.FAILED, now, error_code=error_code, error_message=detail
            )

        # The record may be gone after long retries; the event still goes out.
        with contextlib.suppress(VerificationNotFound):
            await self._store.update(verification_id, fail)
        await self._notifier.publish(SendFailed(verification_id, reason, detail, now, error_code))
        logger.warning(
            "send_failed",
            extra={
                "verification_id": verification_id,
                "reason": str(reason),
                "error_code": error_code,
            },
        )
