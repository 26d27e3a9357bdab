"""Send rules against the fakes: cooldown, abuse limits, countries, idempotency, legacy."""

import asyncio

import pytest
from dependency_injector import providers

from adapters.memory.sender import RecordingMessageSender
from application.errors import ProviderUnavailable, RequestInProgress
from application.ports import OutgoingMessage, SentMessage
from application.request_verification import RequestOutcome, VerificationRequest
from domain.code import VerificationCode
from domain.events import CodeSent, SendRejected, SendRejectionReason
from tests.unit.conftest import CODE, Fakes

PHONE = "+593991234567"


def _request(verification_id: str = "user-1", key: str | None = None) -> VerificationRequest:
    return VerificationRequest(verification_id, PHONE, request_key=key)


async def _execute(fakes: Fakes, request: VerificationRequest, owner: str) -> RequestOutcome:
    return await fakes.container.request_verification().execute(request, owner)


def _rejections(fakes: Fakes) -> list[SendRejected]:
    return [event for event in fakes.notifier.events if isinstance(event, SendRejected)]


async def test_resend_within_cooldown_sends_nothing(fakes: Fakes) -> None:
    await _execute(fakes, _request(), "owner-1")
    before = await fakes.store.get("user-1")
    fakes.clock.advance(10)

    outcome = await _execute(fakes, _request(), "owner-2")

    assert outcome is RequestOutcome.REJECTED_BY_RULE
    assert len(fakes.sender.sent) == 1
    [rejection] = _rejections(fakes)
    assert rejection.reason is SendRejectionReason.COOLDOWN
    assert rejection.retry_after_seconds == 20
    assert await fakes.store.get("user-1") == before


async def test_resend_after_cooldown_replaces_code(fakes: Fakes) -> None:
    await _execute(fakes, _request(), "owner-1")
    fakes.clock.advance(30)

    outcome = await _execute(fakes, _request(), "owner-2")

    assert outcome is RequestOutcome.SENT
    assert len(fakes.sender.sent) == 2
    stored = await fakes.store.get("user-1")
    assert stored is not None
    digester = fakes.container.digester()
    assert not digester.matches(VerificationCode(CODE), "user-1", stored.code_digest)


async def test_sixth_send_in_an_hour_is_rejected(fakes: Fakes) -> None:
    for number in range(5):
        assert await _execute(fakes, _request(f"user-{number}"), f"owner-{number}") is (
            RequestOutcome.SENT
        )

    outcome = await _execute(fakes, _request("user-5"), "owner-5")

    assert outcome is RequestOutcome.REJECTED_BY_RULE
    assert len(fakes.sender.sent) == 5
    [rejection] = _rejections(fakes)
    assert rejection.reason is SendRejectionReason.PHONE_HOURLY_LIMIT
    assert rejection.retry_after_seconds == 3600
    assert await fakes.store.get("user-5") is None


async def test_eleventh_send_in_a_day_is_rejected(fakes: Fakes) -> None:
    for number in range(10):
        fakes.clock.advance(3600 if number % 5 == 0 else 1)
        await _execute(fakes, _request(f"user-{number}"), f"owner-{number}")
    fakes.clock.advance(3600)

    outcome = await _execute(fakes, _request("user-10"), "owner-10")

    assert outcome is RequestOutcome.REJECTED_BY_RULE
    assert len(fakes.sender.sent) == 10
    assert _rejections(fakes)[-1].reason is SendRejectionReason.PHONE_DAILY_LIMIT


@pytest.mark.parametrize("settings_overrides", [{"MAX_SENDS_PER_MINUTE": 2}])
async def test_global_limit_applies_across_phones(fakes: Fakes) -> None:
    for number, phone in enumerate(["+593991234567", "+593991234568"]):
        await fakes.container.request_verification().execute(
            VerificationRequest(f"user-{number}", phone), f"owner-{number}"
        )

    outcome = await fakes.container.request_verification().execute(
        VerificationRequest("user-3", "+593991234569"), "owner-3"
    )

    assert outcome is RequestOutcome.REJECTED_BY_RULE
    assert _rejections(fakes)[-1].reason is SendRejectionReason.GLOBAL_LIMIT


@pytest.mark.parametrize("settings_overrides", [{"ALLOWED_COUNTRIES": "co, pe"}])
async def test_country_outside_allow_list_is_rejected(fakes: Fakes) -> None:
    outcome = await _execute(fakes, _request(), "owner-1")

    assert outcome is RequestOutcome.REJECTED_BY_RULE
    assert fakes.sender.sent == []
    assert _rejections(fakes)[-1].reason is SendRejectionReason.COUNTRY_NOT_ALLOWED


@pytest.mark.parametrize("settings_overrides", [{"ALLOWED_COUNTRIES": "EC"}])
async def test_country_on_allow_list_is_sent(fakes: Fakes) -> None:
    assert await _execute(fakes, _request(), "owner-1") is RequestOutcome.SENT


async def test_redelivered_request_sends_once(fakes: Fakes) -> None:
    request = _request(key="Verification:0:7")
    await _execute(fakes, request, "owner-1")
    stored = await fakes.store.get("user-1")
    fakes.clock.advance(2)

    outcome = await _execute(fakes, request, "owner-2")

    assert outcome is RequestOutcome.DUPLICATE
    assert len(fakes.sender.sent) == 1
    assert await fakes.store.get("user-1") == stored
    assert [type(event) for event in fakes.notifier.events] == [CodeSent]


async def test_same_owner_retries_its_own_send(fakes: Fakes) -> None:
    request = _request(key="Verification:0:8")
    fakes.sender.fail_next(ProviderUnavailable("HTTP 503"))
    with pytest.raises(ProviderUnavailable):
        await _execute(fakes, request, "owner-1")

    outcome = await _execute(fakes, request, "owner-1")

    assert outcome is RequestOutcome.SENT
    assert len(fakes.sender.sent) == 1


async def test_started_send_waits_for_live_owner(fakes: Fakes) -> None:
    request = _request(key="Verification:0:9")
    fakes.sender.fail_next(ProviderUnavailable("timed out"))
    with pytest.raises(ProviderUnavailable):
        await _execute(fakes, request, "owner-1")

    with pytest.raises(RequestInProgress):
        await _execute(fakes, request, "owner-2")

    assert fakes.sender.sent == []


async def test_crashed_send_at_provider_is_recovered(fakes: Fakes) -> None:
    request = _request(key="Verification:0:12")
    fakes.sender.accept_then_fail_next()
    with pytest.raises(ConnectionResetError):
        await _execute(fakes, request, "owner-1")
    fakes.clock.advance(121)

    outcome = await _execute(fakes, request, "owner-2")

    assert outcome is RequestOutcome.RECOVERED
    assert len(fakes.sender.provider_messages) == 1
    stored = await fakes.store.get("user-1")
    assert stored is not None
    assert stored.message_sid == fakes.sender.provider_messages[0][1].sid
    assert [type(event) for event in fakes.notifier.events] == [CodeSent]
    assert await _execute(fakes, request, "owner-3") is RequestOutcome.DUPLICATE


async def test_crashed_send_missing_at_provider_is_sent(fakes: Fakes) -> None:
    request = _request(key="Verification:0:13")
    fakes.sender.fail_next(ConnectionResetError("the process died before the request left"))
    with pytest.raises(ConnectionResetError):
        await _execute(fakes, request, "owner-1")
    fakes.clock.advance(121)

    outcome = await _execute(fakes, request, "owner-2")

    assert outcome is RequestOutcome.SENT
    assert len(fakes.sender.sent) == 1


async def test_live_claim_of_other_worker_is_in_progress(fakes: Fakes) -> None:
    await fakes.ledger.claim("Verification:0:10", "owner-1", 120)

    with pytest.raises(RequestInProgress):
        await _execute(fakes, _request(key="Verification:0:10"), "owner-2")


async def test_expired_claim_before_send_is_taken_over(fakes: Fakes) -> None:
    await fakes.ledger.claim("Verification:0:11", "owner-1", 120)
    fakes.clock.advance(121)

    outcome = await _execute(fakes, _request(key="Verification:0:11"), "owner-2")

    assert outcome is RequestOutcome.SENT


async def test_rejected_resend_keeps_live_code(fakes: Fakes) -> None:
    await _execute(fakes, _request(), "owner-1")
    live = await fakes.store.get("user-1")
    for number in range(4):
        fakes.clock.advance(31)
        await _execute(fakes, _request(f"other-{number}"), f"other-{number}")
    fakes.clock.advance(1)

    outcome = await _execute(fakes, _request(), "owner-9")

    assert outcome is RequestOutcome.REJECTED_BY_RULE
    assert _rejections(fakes)[-1].reason is SendRejectionReason.PHONE_HOURLY_LIMIT
    current = await fakes.store.get("user-1")
    assert current is not None and live is not None
    assert current.code_digest == live.code_digest


async def test_plain_code_stored_only_with_legacy_setting(fakes: Fakes) -> None:
    await _execute(fakes, _request(), "owner-1")

    assert fakes.plain_codes.codes == {}


@pytest.mark.parametrize("settings_overrides", [{"LEGACY_PLAIN_CODE": True}])
async def test_legacy_setting_stores_plain_code(fakes: Fakes) -> None:
    await _execute(fakes, _request(), "owner-1")

    assert fakes.plain_codes.codes == {"user-1": (CODE, 300)}


class _HeldSender(RecordingMessageSender):
    """Holds every send until `release` is set, like a slow provider."""

    def __init__(self) -> None:
        super().__init__()
        self.release = asyncio.Event()

    async def send(self, message: OutgoingMessage) -> SentMessage:
        await self.release.wait()
        return await super().send(message)


async def test_two_requests_at_once_send_one_code(fakes: Fakes) -> None:
    sender = _HeldSender()
    fakes.container.sender.override(providers.Object(sender))
    fakes.container.request_verification.reset()
    use_case = fakes.container.request_verification()

    first = asyncio.create_task(use_case.execute(_request(key="Verification:0:20"), "owner-1"))
    await asyncio.sleep(0)
    second = asyncio.create_task(use_case.execute(_request(key="Verification:1:20"), "owner-2"))
    await asyncio.sleep(0.01)
    sender.release.set()
    outcomes = {await first, await second}

    assert outcomes == {RequestOutcome.SENT, RequestOutcome.REJECTED_BY_RULE}
    assert len(sender.sent) == 1
    stored = await fakes.store.get("user-1")
    assert stored is not None
    assert stored.message_sid is not None
    assert _rejections(fakes)[-1].reason is SendRejectionReason.COOLDOWN
