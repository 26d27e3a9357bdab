"""RequestVerification: draw a code, store its digest and send it to the person's WhatsApp."""

import contextlib
import logging
from dataclasses import dataclass
from datetime import timedelta
from enum import StrEnum

from application.errors import MessageRejected, PortError, VerificationNotFound
from application.ports import (
    Clock,
    CodeGenerator,
    MessageSender,
    Notifier,
    OutgoingMessage,
    PhoneNumberParser,
    VerificationStore,
)
from domain.code import CodeDigester, VerificationCode
from domain.delivery import DeliveryStatus
from domain.errors import InvalidPhoneNumber, InvalidVerificationId
from domain.events import CodeSent, SendFailed, SendFailureReason
from domain.verification import Verification, check_verification_id

logger = logging.getLogger(__name__)

CODE_PLACEHOLDER = "{code}"


@dataclass(frozen=True, slots=True)
class VerificationRequest:
    """A request from another service to verify a phone, as read from the topic."""

    verification_id: str
    phone: str
    locale: str | None = None


class RequestOutcome(StrEnum):
    SENT = "sent"
    INVALID_REQUEST = "invalid_request"
    REJECTED_BY_PROVIDER = "rejected_by_provider"


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


class RequestVerification:
    """Sends a fresh code for a verification request."""

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
        code_time_to_live: timedelta,
    ) -> None:
        self._store = store
        self._sender = sender
        self._notifier = notifier
        self._clock = clock
        self._codes = codes
        self._phones = phones
        self._digester = digester
        self._template = template
        self._code_time_to_live = code_time_to_live

    async def execute(self, request: VerificationRequest) -> RequestOutcome:
        """Send a code for `request` and publish `CodeSent` or `SendFailed`.

        Raises the retriable `PortError`s of the store and sender unchanged, so the
        caller can retry the whole request. A retry draws a new code, which replaces
        the stored one.
        """
        try:
            verification_id = check_verification_id(request.verification_id)
            phone = self._phones.parse(request.phone)
        except (InvalidVerificationId, InvalidPhoneNumber) as error:
            await self._reject_input(request, error)
            return RequestOutcome.INVALID_REQUEST

        code = self._codes.generate()
        verification = Verification.start(
            verification_id,
            phone,
            self._digester.digest(code, verification_id),
            self._clock.now(),
            self._code_time_to_live,
            request.locale,
        )
        # Stored before sending, so a status callback that overtakes the send call's
        # response finds the record.
        await self._store.create(verification)

        message = OutgoingMessage(verification_id, phone, self._template.render(code))
        try:
            receipt = await self._sender.send(message)
        except MessageRejected as error:
            await self._record_failure(
                verification_id,
                SendFailureReason.REJECTED_BY_PROVIDER,
                error.detail,
                error.error_code,
            )
            return RequestOutcome.REJECTED_BY_PROVIDER

        now = self._clock.now()
        await self._store.update(
            verification_id,
            lambda current: current.accept_message(receipt.sid, receipt.status, now),
        )
        await self._notifier.publish(CodeSent(verification_id, phone.masked(), receipt.sid, now))
        logger.info(
            "code_sent",
            extra={"verification_id": verification_id, "message_sid": receipt.sid},
        )
        return RequestOutcome.SENT

    async def reject_invalid(self, verification_id: str, detail: str) -> None:
        """Publish `SendFailed` for a request that could not be read, without sending."""
        await self._notifier.publish(
            SendFailed(
                verification_id, SendFailureReason.INVALID_REQUEST, detail, self._clock.now()
            )
        )

    async def abandon(self, request: VerificationRequest, error: PortError) -> None:
        """Record that retries for `request` ran out, and publish `SendFailed`."""
        error_code = getattr(error, "error_code", None)
        await self._record_failure(
            request.verification_id,
            SendFailureReason.PROVIDER_UNAVAILABLE,
            str(error),
            error_code,
        )

    async def _reject_input(self, request: VerificationRequest, error: Exception) -> None:
        reason = (
            SendFailureReason.INVALID_PHONE
            if isinstance(error, InvalidPhoneNumber)
            else SendFailureReason.INVALID_REQUEST
        )
        logger.warning(
            "request_rejected",
            extra={"verification_id": request.verification_id[:40], "reason": str(reason)},
        )
        if request.verification_id:
            await self._notifier.publish(
                SendFailed(request.verification_id, reason, str(error), self._clock.now())
            )

    async def _record_failure(
        self,
        verification_id: str,
        reason: SendFailureReason,
        detail: str,
        error_code: str | None,
    ) -> None:
        now = self._clock.now()
        # The record may have expired while the send was retried; the event still goes out.
        with contextlib.suppress(VerificationNotFound):
            await self._store.update(
                verification_id,
                lambda current: current.record_delivery(
                    DeliveryStatus.FAILED, now, error_code=error_code, error_message=detail
                ),
            )
        await self._notifier.publish(SendFailed(verification_id, reason, detail, now, error_code))
        logger.warning(
            "send_failed",
            extra={
                "verification_id": verification_id,
                "reason": str(reason),
                "error_code": error_code,
            },
        )
