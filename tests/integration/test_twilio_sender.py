"""TwilioMessageSender through the official SDK against the Twilio emulator over HTTP."""

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qs, urlsplit

import pytest
from opentelemetry import trace

from adapters.twilio.sender import TwilioMessageSender
from application.errors import MessageRejected, ProviderUnavailable
from application.ports import OutgoingMessage
from domain.delivery import DeliveryStatus
from domain.phone import PhoneNumber
from tests.settings import TEST_ACCOUNT_SID, TEST_AUTH_TOKEN, TEST_SENDER
from tests.support.tracing import span_exporter
from twilio_emulator.config import EmulatorConfig
from twilio_emulator.server import RunningEmulator, running_emulator
from twilio_emulator.state import RecipientScript, ScriptedError

TO = PhoneNumber("+12025550143")
CALLBACK_BASE = "https://verify.example.test"


@pytest.fixture
async def emulator() -> AsyncIterator[RunningEmulator]:
    config = EmulatorConfig(
        account_sid=TEST_ACCOUNT_SID,
        auth_token=TEST_AUTH_TOKEN,
        whatsapp_sender=TEST_SENDER,
        default_callback_statuses=(),
    )
    async with running_emulator(config) as running:
        yield running


def _sender(
    emulator: RunningEmulator,
    sender_number: str = TEST_SENDER,
    auth_token: str = TEST_AUTH_TOKEN,
    timeout_seconds: float = 5.0,
) -> TwilioMessageSender:
    return TwilioMessageSender(
        account_sid=TEST_ACCOUNT_SID,
        auth_token=auth_token,
        sender_number=sender_number,
        status_callback_base_url=CALLBACK_BASE,
        api_base_url=emulator.base_url,
        timeout_seconds=timeout_seconds,
    )


async def _send(sender: TwilioMessageSender, verification_id: str = "user-1") -> str:
    try:
        receipt = await sender.send(OutgoingMessage(verification_id, TO, "Your code is: 907153"))
    finally:
        await sender.close()
    assert receipt.status is DeliveryStatus.QUEUED
    return receipt.sid


@pytest.mark.parametrize("sender_number", [TEST_SENDER, f"whatsapp:{TEST_SENDER}"])
async def test_send_uses_whatsapp_addresses_once(
    emulator: RunningEmulator, sender_number: str
) -> None:
    sid = await _send(_sender(emulator, sender_number))

    message = emulator.state.messages[sid]
    assert message.to == "whatsapp:+12025550143"
    assert message.from_ == f"whatsapp:{TEST_SENDER}"
    assert message.body == "Your code is: 907153"


async def test_send_asks_for_callbacks_with_verification_id(emulator: RunningEmulator) -> None:
    sid = await _send(_sender(emulator), verification_id="user-7")

    callback = emulator.state.messages[sid].status_callback
    assert callback is not None
    parts = urlsplit(callback)
    assert f"{parts.scheme}://{parts.netloc}{parts.path}" == f"{CALLBACK_BASE}/twilio/status"
    assert parse_qs(parts.query) == {"verification_id": ["user-7"]}


async def test_send_in_span_adds_its_traceparent(emulator: RunningEmulator) -> None:
    span_exporter()
    tracer = trace.get_tracer(__name__)

    with tracer.start_as_current_span("handle request") as span:
        sid = await _send(_sender(emulator), verification_id="user-7")

    callback = emulator.state.messages[sid].status_callback
    assert callback is not None
    query = parse_qs(urlsplit(callback).query)
    assert query["verification_id"] == ["user-7"]
    context = span.get_span_context()
    trace_id = trace.format_trace_id(context.trace_id)
    span_id = trace.format_span_id(context.span_id)
    flags = f"{context.trace_flags:02x}"
    assert query["traceparent"] == [f"00-{trace_id}-{span_id}-{flags}"]


async def test_sid_has_twilio_message_format(emulator: RunningEmulator) -> None:
    sid = await _send(_sender(emulator))

    assert sid.startswith("SM")
    assert len(sid) == 34


@pytest.mark.parametrize(
    ("code", "http_status"), [(21211, 400), (21610, 400), (21408, 400), (63016, 400)]
)
async def test_permanent_errors_are_rejections(
    emulator: RunningEmulator, code: int, http_status: int
) -> None:
    emulator.state.set_script(
        TO.e164, RecipientScript(error=ScriptedError(code=code, http_status=http_status))
    )

    with pytest.raises(MessageRejected) as caught:
        await _send(_sender(emulator))

    assert caught.value.error_code == str(code)
    assert emulator.state.messages == {}


async def test_wrong_token_is_rejection_20003(emulator: RunningEmulator) -> None:
    with pytest.raises(MessageRejected) as caught:
        await _send(_sender(emulator, auth_token="wrong-token"))

    assert caught.value.error_code == "20003"


@pytest.mark.parametrize(("code", "http_status"), [(20429, 429), (20500, 500), (20503, 503)])
async def test_transient_errors_are_unavailable(
    emulator: RunningEmulator, code: int, http_status: int
) -> None:
    emulator.state.set_script(
        TO.e164, RecipientScript(error=ScriptedError(code=code, http_status=http_status))
    )

    with pytest.raises(ProviderUnavailable) as caught:
        await _send(_sender(emulator))

    assert caught.value.error_code == str(code)


async def test_slow_api_times_out_as_unavailable(emulator: RunningEmulator) -> None:
    emulator.state.response_delay_ms = 2_000

    with pytest.raises(ProviderUnavailable, match=r"timed out after 0\.3 s"):
        await _send(_sender(emulator, timeout_seconds=0.3))


async def test_unreachable_api_is_unavailable(emulator: RunningEmulator) -> None:
    sender = TwilioMessageSender(
        account_sid=TEST_ACCOUNT_SID,
        auth_token=TEST_AUTH_TOKEN,
        sender_number=TEST_SENDER,
        status_callback_base_url=CALLBACK_BASE,
        api_base_url="http://127.0.0.1:9",
    )

    with pytest.raises(ProviderUnavailable, match="could not be reached"):
        await _send(sender)


async def test_retry_after_header_reaches_error(emulator: RunningEmulator) -> None:
    emulator.state.set_script(
        TO.e164,
        RecipientScript(error=ScriptedError(code=20429, http_status=429, retry_after_seconds=7)),
    )

    with pytest.raises(ProviderUnavailable) as caught:
        await _send(_sender(emulator))

    assert caught.value.retry_after_seconds == 7


async def test_concurrent_sends_keep_their_own_retry_after(emulator: RunningEmulator) -> None:
    emulator.state.set_script(
        TO.e164,
        RecipientScript(error=ScriptedError(code=20429, http_status=429, retry_after_seconds=3)),
    )
    sender = _sender(emulator)
    other = PhoneNumber("+12025550199")

    async def send(to: PhoneNumber) -> object:
        try:
            return await sender.send(OutgoingMessage("user-1", to, "Your code is: 1"))
        except ProviderUnavailable as error:
            return error

    try:
        failed, sent = await asyncio.gather(send(TO), send(other))
    finally:
        await sender.close()

    assert isinstance(failed, ProviderUnavailable)
    assert failed.retry_after_seconds == 3
    assert not isinstance(sent, ProviderUnavailable)


async def test_find_recent_lists_messages_to_phone(emulator: RunningEmulator) -> None:
    before = datetime.now(UTC) - timedelta(seconds=5)
    first = await _send(_sender(emulator), verification_id="user-1")
    sender = _sender(emulator)
    try:
        await sender.send(OutgoingMessage("user-2", PhoneNumber("+12025550199"), "Other: 1"))
        found = await sender.find_recent(TO, before)
        later = await sender.find_recent(TO, datetime.now(UTC) + timedelta(minutes=5))
    finally:
        await sender.close()

    assert [message.sid for message in found] == [first]
    assert found[0].body == "Your code is: 907153"
    assert found[0].status is DeliveryStatus.QUEUED
    assert later == []
