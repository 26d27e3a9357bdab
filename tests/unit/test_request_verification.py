"""RequestVerification against the fakes: what is stored, sent and published."""

import asyncio
import time

from adapters.kafka.consumer import ConsumedMessage
from adapters.kafka.dead_letters import DeadLetterReason, DeadLetterUnavailable
from application.errors import MessageRejected, ProviderUnavailable
from application.request_verification import RequestOutcome, VerificationRequest
from domain.code import VerificationCode
from domain.delivery import DeliveryStatus
from domain.events import (
    CodeSent,
    SendFailed,
    SendFailureReason,
    SendRejected,
    SendRejectionReason,
)
from tests.unit.conftest import CODE, Fakes


async def test_request_sends_code_to_parsed_number(fakes: Fakes) -> None:
    use_case = fakes.container.request_verification()

    outcome = await use_case.execute(VerificationRequest("user-1", "0991234567"), "owner-1")

    assert outcome is RequestOutcome.SENT
    [message] = fakes.sender.sent
    assert message.to.e164 == "+593991234567"
    assert message.body == f"Your verification code is: {CODE}"


async def test_request_stores_digest_not_code(fakes: Fakes) -> None:
    use_case = fakes.container.request_verification()

    await use_case.execute(VerificationRequest("user-1", "+593991234567", locale="es"), "owner-1")

    stored = await fakes.store.get("user-1")
    assert stored is not None
    assert CODE not in repr(stored)
    assert fakes.container.digester().matches(VerificationCode(CODE), "user-1", stored.code_digest)
    assert stored.delivery_status is DeliveryStatus.QUEUED
    assert stored.message_sid is not None
    assert stored.locale == "es"
    assert (stored.expires_at - stored.created_at).total_seconds() == 300


async def test_request_publishes_code_sent_with_masked_phone(fakes: Fakes) -> None:
    use_case = fakes.container.request_verification()

    await use_case.execute(VerificationRequest("user-1", "+593991234567"), "owner-1")

    [event] = fakes.notifier.events
    assert isinstance(event, CodeSent)
    assert event.masked_phone == "+593******567"


async def test_invalid_phone_sends_and_stores_nothing(fakes: Fakes) -> None:
    use_case = fakes.container.request_verification()

    outcome = await use_case.execute(VerificationRequest("user-1", "12345"), "owner-1")

    assert outcome is RequestOutcome.INVALID_REQUEST
    assert fakes.sender.sent == []
    assert await fakes.store.get("user-1") is None
    [event] = fakes.notifier.events
    assert isinstance(event, SendFailed)
    assert event.reason is SendFailureReason.INVALID_PHONE


async def test_unsafe_verification_id_is_rejected(fakes: Fakes) -> None:
    use_case = fakes.container.request_verification()

    outcome = await use_case.execute(VerificationRequest("user 1/{x}", "+593991234567"), "owner-1")

    assert outcome is RequestOutcome.INVALID_REQUEST
    assert fakes.sender.sent == []
    [event] = fakes.notifier.events
    assert isinstance(event, SendFailed)
    assert event.reason is SendFailureReason.INVALID_REQUEST


async def test_provider_rejection_marks_verification_failed(fakes: Fakes) -> None:
    fakes.sender.fail_next(MessageRejected("the recipient has unsubscribed", "21610"))
    use_case = fakes.container.request_verification()

    outcome = await use_case.execute(VerificationRequest("user-1", "+593991234567"), "owner-1")

    assert outcome is RequestOutcome.REJECTED_BY_PROVIDER
    stored = await fakes.store.get("user-1")
    assert stored is not None
    assert stored.delivery_status is DeliveryStatus.FAILED
    assert stored.error_code == "21610"
    [event] = fakes.notifier.events
    assert isinstance(event, SendFailed)
    assert event.reason is SendFailureReason.REJECTED_BY_PROVIDER
    assert event.error_code == "21610"


async def test_new_request_replaces_previous_code(fakes: Fakes) -> None:
    use_case = fakes.container.request_verification()
    digester = fakes.container.digester()

    await use_case.execute(VerificationRequest("user-1", "+593991234567"), "owner-1")
    fakes.clock.advance(31)
    await use_case.execute(VerificationRequest("user-1", "+593991234567"), "owner-2")

    stored = await fakes.store.get("user-1")
    assert stored is not None
    assert digester.matches(VerificationCode("480267"), "user-1", stored.code_digest)
    assert not digester.matches(VerificationCode(CODE), "user-1", stored.code_digest)


async def test_handler_retries_unavailable_provider_then_sends(fakes: Fakes) -> None:
    fakes.sender.fail_next(ProviderUnavailable("timeout"), ProviderUnavailable("HTTP 503"))
    handler = fakes.container.request_handler()

    await handler(_message(b'{"Id": "user-1", "Phone": "+593991234567"}'))

    assert len(fakes.sender.sent) == 1
    assert [type(event) for event in fakes.notifier.events] == [CodeSent]


async def test_handler_gives_up_after_max_attempts(fakes: Fakes) -> None:
    fakes.sender.fail_next(*(ProviderUnavailable("HTTP 503", "20503") for _ in range(3)))
    handler = fakes.container.request_handler()

    await handler(_message(b'{"Id": "user-1", "Phone": "+593991234567"}'))

    assert fakes.sender.sent == []
    [event] = fakes.notifier.events
    assert isinstance(event, SendFailed)
    assert event.reason is SendFailureReason.PROVIDER_UNAVAILABLE
    assert event.error_code == "20503"
    stored = await fakes.store.get("user-1")
    assert stored is not None
    assert stored.delivery_status is DeliveryStatus.FAILED
    [letter] = fakes.dead_letters.letters
    assert letter.reason is DeadLetterReason.RETRIES_EXHAUSTED
    assert "20503" in letter.error


async def test_handler_dead_letters_non_json(fakes: Fakes) -> None:
    handler = fakes.container.request_handler()

    await handler(_message(b"not json"))

    assert fakes.sender.sent == []
    assert fakes.notifier.events == []
    [letter] = fakes.dead_letters.letters
    assert letter.reason is DeadLetterReason.INVALID_JSON
    assert letter.message.offset == 7
    assert "not JSON" in letter.error


async def test_object_without_id_is_invalid_request(fakes: Fakes) -> None:
    handler = fakes.container.request_handler()

    await handler(_message(b'{"Phone": "+593991234567"}'))

    [letter] = fakes.dead_letters.letters
    assert letter.reason is DeadLetterReason.INVALID_REQUEST
    assert "Id is missing" in letter.error


async def test_handler_reports_missing_phone_to_requester(fakes: Fakes) -> None:
    handler = fakes.container.request_handler()

    await handler(_message(b'{"Id": "user-1"}'))

    assert fakes.sender.sent == []
    assert [letter.reason for letter in fakes.dead_letters.letters] == [
        DeadLetterReason.INVALID_REQUEST
    ]
    [event] = fakes.notifier.events
    assert isinstance(event, SendFailed)
    assert event.reason is SendFailureReason.INVALID_REQUEST
    assert "Phone is missing" in event.detail


async def test_handler_accepts_snake_case_request(fakes: Fakes) -> None:
    handler = fakes.container.request_handler()

    await handler(_message(b'{"verification_id": "user-2", "phone": "+593991234567", "extra": 1}'))

    [message] = fakes.sender.sent
    assert message.verification_id == "user-2"


def _message(value: bytes) -> ConsumedMessage:
    return ConsumedMessage("Verification", 0, 7, None, value)


async def test_handler_retries_dead_letter_outage(fakes: Fakes) -> None:
    fakes.dead_letters.fail_next(DeadLetterUnavailable("broker away"))
    handler = fakes.container.request_handler()

    await handler(_message(b"not json"))

    assert len(fakes.dead_letters.letters) == 1


async def test_handler_waits_out_retry_after(fakes: Fakes) -> None:
    fakes.sender.fail_next(ProviderUnavailable("too many requests", "20429", 0.2))
    handler = fakes.container.request_handler()
    started = asyncio.get_running_loop().time()

    await handler(_message(b'{"Id": "user-1", "Phone": "+593991234567"}'))

    assert asyncio.get_running_loop().time() - started >= 0.2
    assert len(fakes.sender.sent) == 1


async def test_handler_rejects_stale_request(fakes: Fakes) -> None:
    handler = fakes.container.request_handler()
    published_ms = int((time.time() - 3600) * 1000)
    message = ConsumedMessage(
        "Verification", 0, 8, None, b'{"Id": "user-1", "Phone": "+593991234567"}', (), published_ms
    )

    await handler(message)

    assert fakes.sender.sent == []
    [event] = fakes.notifier.events
    assert isinstance(event, SendRejected)
    assert event.reason is SendRejectionReason.STALE_REQUEST
