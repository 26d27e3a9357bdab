"""Integration tests of the Twilio API emulator, driven by the real twilio SDK over HTTP.

Every server here listens on 127.0.0.1: the emulator, and a plain-asyncio HTTP receiver
that records the status callbacks the emulator posts.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import re
import signal
import sys
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

import httpx
import pytest
from hypothesis import given
from hypothesis import strategies as st
from twilio.base.exceptions import TwilioRestException
from twilio.http.async_http_client import AsyncTwilioHttpClient
from twilio.request_validator import RequestValidator
from twilio.rest import Client

from twilio_emulator.callbacks import sign_callback
from twilio_emulator.cli import parse_config
from twilio_emulator.config import ConfigError, EmulatorConfig
from twilio_emulator.server import RunningEmulator, running_emulator
from twilio_emulator.state import EmulatorState

ACCOUNT_SID = "AC" + "0123456789abcdef" * 2
AUTH_TOKEN = "emulator-test-auth-token"
SENDER = "+14155550100"
WHATSAPP_SENDER = "whatsapp:" + SENDER
TIMEOUT_SECONDS = 5.0
REPOSITORY_ROOT = Path(__file__).resolve().parents[2]

SID_PATTERN = re.compile(r"^SM[0-9a-f]{32}$")
_recipient_numbers = itertools.count(1_000_000)


def new_recipient() -> str:
    """Return a WhatsApp address that no other test uses, so scripts never collide."""
    return f"whatsapp:+49151{next(_recipient_numbers):07d}"


@dataclass(frozen=True)
class ReceivedCallback:
    """One status callback request as the receiver saw it."""

    url: str
    params: dict[str, str]
    signature: str
    content_type: str
    idempotency_token: str


class CallbackReceiver:
    """A minimal HTTP/1.1 server on 127.0.0.1 that queues every request it receives.

    It responds 200, or 500 when the request path contains '/fail'.
    """

    def __init__(self) -> None:
        self.received: asyncio.Queue[ReceivedCallback] = asyncio.Queue()
        self.base_url = ""
        self._server: asyncio.Server | None = None

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        port = self._server.sockets[0].getsockname()[1]
        self.base_url = f"http://127.0.0.1:{port}"

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    async def next_callback(self) -> ReceivedCallback:
        return await asyncio.wait_for(self.received.get(), TIMEOUT_SECONDS)

    async def collect(self, count: int) -> list[ReceivedCallback]:
        return [await self.next_callback() for _ in range(count)]

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        request_line = (await reader.readline()).decode("latin-1")
        _, target, _ = request_line.split(" ", 2)
        headers: dict[str, str] = {}
        while True:
            line = (await reader.readline()).decode("latin-1")
            if line in ("\r\n", "\n", ""):
                break
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        body = await reader.readexactly(int(headers.get("content-length", "0")))

        status_line = "500 Internal Server Error" if "/fail" in target else "200 OK"
        writer.write(
            f"HTTP/1.1 {status_line}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n".encode()
        )
        await writer.drain()
        writer.close()
        await writer.wait_closed()

        self.received.put_nowait(
            ReceivedCallback(
                url=self.base_url + target,
                params=dict(parse_qsl(body.decode(), keep_blank_values=True)),
                signature=headers.get("x-twilio-signature", ""),
                content_type=headers.get("content-type", ""),
                idempotency_token=headers.get("i-twilio-idempotency-token", ""),
            )
        )


@pytest.fixture(scope="module")
async def emulator() -> AsyncIterator[RunningEmulator]:
    config = EmulatorConfig(
        account_sid=ACCOUNT_SID,
        auth_token=AUTH_TOKEN,
        whatsapp_sender=SENDER,
        callback_delay_ms=5,
    )
    async with running_emulator(config) as running:
        yield running


@pytest.fixture(scope="module")
async def twilio_http_client() -> AsyncIterator[AsyncTwilioHttpClient]:
    http_client = AsyncTwilioHttpClient()
    yield http_client
    await http_client.close()


@pytest.fixture
def twilio_client(emulator: RunningEmulator, twilio_http_client: AsyncTwilioHttpClient) -> Client:
    return make_client(emulator, twilio_http_client)


@pytest.fixture
async def control(emulator: RunningEmulator) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(
        base_url=emulator.base_url, timeout=TIMEOUT_SECONDS, trust_env=False
    ) as client:
        yield client


@pytest.fixture
async def receiver() -> AsyncIterator[CallbackReceiver]:
    callback_receiver = CallbackReceiver()
    await callback_receiver.start()
    yield callback_receiver
    await callback_receiver.stop()


def make_client(
    emulator: RunningEmulator,
    http_client: AsyncTwilioHttpClient,
    auth_token: str = AUTH_TOKEN,
    account_sid: str | None = None,
) -> Client:
    client = Client(ACCOUNT_SID, auth_token, account_sid=account_sid, http_client=http_client)
    client.api.base_url = emulator.base_url
    return client


async def create_error(client: Client, **parameters: Any) -> TwilioRestException:
    with pytest.raises(TwilioRestException) as caught:
        await client.messages.create_async(**parameters)
    return caught.value


async def wait_for_callback_count(emulator: RunningEmulator, sid: str, count: int) -> None:
    await emulator.state.wait_for(
        lambda state: len(state.messages[sid].callbacks) >= count, TIMEOUT_SECONDS
    )


def assert_signed(callback: ReceivedCallback) -> None:
    assert RequestValidator(AUTH_TOKEN).validate(callback.url, callback.params, callback.signature)


# Creating and fetching messages


async def test_create_returns_queued_whatsapp_message(twilio_client: Client) -> None:
    to = new_recipient()

    message = await twilio_client.messages.create_async(
        to=to, from_=WHATSAPP_SENDER, body="Your code is 123456"
    )

    assert message.sid is not None
    assert SID_PATTERN.fullmatch(message.sid)
    assert message.account_sid == ACCOUNT_SID
    assert message.api_version == "2010-04-01"
    assert message.body == "Your code is 123456"
    assert message.to == to
    assert message.from_ == WHATSAPP_SENDER
    assert message.status == "queued"
    assert message.direction == "outbound-api"
    assert message.date_created is not None
    assert message.date_created.tzinfo is not None
    assert message.date_updated == message.date_created
    assert message.date_sent is None
    assert message.error_code is None
    assert message.error_message is None
    assert message.num_media == "0"
    assert message.num_segments == "1"
    assert message.price is None
    assert message.price_unit == "USD"
    assert message.messaging_service_sid is None
    assert message.uri == f"/2010-04-01/Accounts/{ACCOUNT_SID}/Messages/{message.sid}.json"
    assert message.subresource_uris == {
        "media": f"/2010-04-01/Accounts/{ACCOUNT_SID}/Messages/{message.sid}/Media.json",
        "feedback": f"/2010-04-01/Accounts/{ACCOUNT_SID}/Messages/{message.sid}/Feedback.json",
    }


async def test_create_sends_dates_in_rfc_2822(
    emulator: RunningEmulator, control: httpx.AsyncClient
) -> None:
    response = await control.post(
        f"/2010-04-01/Accounts/{ACCOUNT_SID}/Messages.json",
        data={"To": new_recipient(), "From": WHATSAPP_SENDER, "Body": "hello"},
        auth=(ACCOUNT_SID, AUTH_TOKEN),
    )

    assert response.status_code == 201
    date_created = response.json()["date_created"]
    rfc_2822_utc = r"[A-Z][a-z]{2}, \d{2} [A-Z][a-z]{2} \d{4} \d{2}:\d{2}:\d{2} \+0000"
    assert re.fullmatch(rfc_2822_utc, date_created)
    assert parsedate_to_datetime(date_created).utcoffset() is not None


async def test_create_accepts_sms_from_configured_number(twilio_client: Client) -> None:
    message = await twilio_client.messages.create_async(
        to="+15005550006", from_=SENDER, body="sms body"
    )

    assert message.to == "+15005550006"
    assert message.from_ == SENDER
    assert message.status == "queued"


async def test_create_accepts_body_of_1600_characters(twilio_client: Client) -> None:
    message = await twilio_client.messages.create_async(
        to=new_recipient(), from_=WHATSAPP_SENDER, body="x" * 1600
    )

    assert message.body == "x" * 1600


async def test_create_accepts_media_without_body(twilio_client: Client) -> None:
    message = await twilio_client.messages.create_async(
        to=new_recipient(),
        from_=WHATSAPP_SENDER,
        media_url=["https://example.com/a.png", "https://example.com/b.png"],
    )

    assert message.num_media == "2"


async def test_fetch_returns_latest_status_after_callbacks(
    emulator: RunningEmulator, twilio_client: Client
) -> None:
    created = await twilio_client.messages.create_async(
        to=new_recipient(), from_=WHATSAPP_SENDER, body="fetch me"
    )
    assert created.sid is not None
    await emulator.state.wait_for(
        lambda state: state.messages[created.sid].status == "read", TIMEOUT_SECONDS
    )

    fetched = await twilio_client.messages(created.sid).fetch_async()

    assert fetched.sid == created.sid
    assert fetched.status == "read"
    assert fetched.date_sent is not None
    assert fetched.body == "fetch me"


async def test_fetch_rejects_unknown_sid_with_20404(twilio_client: Client) -> None:
    with pytest.raises(TwilioRestException) as caught:
        await twilio_client.messages("SM" + "0" * 32).fetch_async()

    assert caught.value.status == 404
    assert caught.value.code == 20404


# Authentication


async def test_create_rejects_wrong_token_with_20003(
    emulator: RunningEmulator, twilio_http_client: AsyncTwilioHttpClient
) -> None:
    client = make_client(emulator, twilio_http_client, auth_token="wrong-token")

    error = await create_error(client, to=new_recipient(), from_=WHATSAPP_SENDER, body="hi")

    assert error.status == 401
    assert error.code == 20003


async def test_create_rejects_other_account_in_path_with_20003(
    emulator: RunningEmulator, twilio_http_client: AsyncTwilioHttpClient
) -> None:
    client = make_client(emulator, twilio_http_client, account_sid="AC" + "f" * 32)

    error = await create_error(client, to=new_recipient(), from_=WHATSAPP_SENDER, body="hi")

    assert error.status == 401
    assert error.code == 20003


async def test_create_rejects_missing_auth_with_twilio_error_body(
    control: httpx.AsyncClient,
) -> None:
    response = await control.post(
        f"/2010-04-01/Accounts/{ACCOUNT_SID}/Messages.json",
        data={"To": new_recipient(), "From": WHATSAPP_SENDER, "Body": "hi"},
    )

    assert response.status_code == 401
    assert response.json() == {
        "code": 20003,
        "message": "Authenticate",
        "more_info": "https://www.twilio.com/docs/errors/20003",
        "status": 401,
    }


# Parameter validation

INVALID_PARAMETERS = [
    pytest.param({"to": "", "from_": WHATSAPP_SENDER, "body": "hi"}, 21604, id="missing-to"),
    pytest.param({"from_": WHATSAPP_SENDER, "body": "hi", "to": "   "}, 21604, id="blank-to"),
    pytest.param({"body": "hi"}, 21603, id="missing-from"),
    pytest.param({"from_": WHATSAPP_SENDER}, 21602, id="missing-body"),
    pytest.param({"from_": WHATSAPP_SENDER, "body": "   "}, 21602, id="blank-body"),
    pytest.param({"from_": WHATSAPP_SENDER, "body": "x" * 1601}, 21617, id="body-too-long"),
    pytest.param(
        {"from_": WHATSAPP_SENDER, "body": "\N{GRINNING FACE}" * 801},
        21617,
        id="emoji-body-too-long",
    ),
    pytest.param(
        {"to": "whatsapp:4915112345678", "from_": WHATSAPP_SENDER, "body": "hi"},
        21211,
        id="to-without-plus",
    ),
    pytest.param(
        {"to": "whatsapp:+0123456", "from_": WHATSAPP_SENDER, "body": "hi"},
        21211,
        id="to-with-leading-zero",
    ),
    pytest.param(
        {"to": "messenger:+4915112345678", "from_": WHATSAPP_SENDER, "body": "hi"},
        21211,
        id="to-with-other-channel",
    ),
    pytest.param(
        {"to": "+4915112345678", "from_": WHATSAPP_SENDER, "body": "hi"},
        21910,
        id="sms-to-whatsapp-from",
    ),
    pytest.param({"from_": SENDER, "body": "hi"}, 21910, id="whatsapp-to-sms-from"),
    pytest.param({"from_": "whatsapp:+14155559999", "body": "hi"}, 63007, id="other-whatsapp"),
    pytest.param(
        {"to": "+4915112345678", "from_": "+14155559999", "body": "hi"},
        21606,
        id="other-sms-from",
    ),
    pytest.param(
        {"from_": WHATSAPP_SENDER, "body": "hi", "status_callback": "not a url"},
        21609,
        id="callback-not-url",
    ),
    pytest.param(
        {"from_": WHATSAPP_SENDER, "body": "hi", "status_callback": "ftp://127.0.0.1/cb"},
        21609,
        id="callback-not-http",
    ),
    pytest.param(
        {"from_": WHATSAPP_SENDER, "body": "hi", "status_callback": "http://bad_host/cb"},
        21609,
        id="callback-host-underscore",
    ),
]


@pytest.mark.parametrize(("parameters", "expected_code"), INVALID_PARAMETERS)
async def test_create_rejects_invalid_parameters(
    emulator: RunningEmulator,
    twilio_client: Client,
    parameters: dict[str, Any],
    expected_code: int,
) -> None:
    arguments = {"to": new_recipient(), **parameters}
    rejections_before = len(emulator.state.rejections)

    error = await create_error(twilio_client, **arguments)

    assert error.status == 400
    assert error.code == expected_code
    assert len(emulator.state.rejections) == rejections_before + 1
    assert emulator.state.rejections[-1].code == expected_code


async def test_rejected_create_sends_no_callbacks(
    emulator: RunningEmulator, twilio_client: Client, receiver: CallbackReceiver
) -> None:
    messages_before = len(emulator.state.messages)

    await create_error(
        twilio_client,
        to=new_recipient(),
        from_="whatsapp:+14155559999",
        body="hi",
        status_callback=receiver.base_url + "/status",
    )

    assert len(emulator.state.messages) == messages_before
    assert receiver.received.empty()


# Status callbacks


async def test_callbacks_arrive_signed_in_default_order(
    emulator: RunningEmulator, twilio_client: Client, receiver: CallbackReceiver
) -> None:
    to = new_recipient()
    callback_url = receiver.base_url + "/twilio/status?verification=v-123&attempt=1"

    message = await twilio_client.messages.create_async(
        to=to, from_=WHATSAPP_SENDER, body="Your code is 654321", status_callback=callback_url
    )
    callbacks = await receiver.collect(3)

    assert [callback.params["MessageStatus"] for callback in callbacks] == [
        "sent",
        "delivered",
        "read",
    ]
    for callback in callbacks:
        assert callback.url == callback_url
        assert callback.content_type.startswith("application/x-www-form-urlencoded")
        assert_signed(callback)
        assert callback.params["MessageSid"] == message.sid
        assert callback.params["SmsSid"] == message.sid
        assert callback.params["SmsStatus"] == callback.params["MessageStatus"]
        assert callback.params["AccountSid"] == ACCOUNT_SID
        assert callback.params["From"] == WHATSAPP_SENDER
        assert callback.params["To"] == to
        assert callback.params["ApiVersion"] == "2010-04-01"
        assert callback.params["ChannelPrefix"] == "whatsapp"
        assert callback.params["ChannelToAddress"] == to.removeprefix("whatsapp:")
        assert callback.params["ChannelInstallSid"].startswith("XE")
        assert "ErrorCode" not in callback.params
        assert "ErrorMessage" not in callback.params
    assert len({callback.idempotency_token for callback in callbacks} - {""}) == 3
    assert "EventType" not in callbacks[0].params
    assert callbacks[1].params["EventType"] == "DELIVERED"
    assert callbacks[2].params["EventType"] == "READ"


async def test_callback_signature_rejects_tampered_params(
    twilio_client: Client, receiver: CallbackReceiver
) -> None:
    await twilio_client.messages.create_async(
        to=new_recipient(),
        from_=WHATSAPP_SENDER,
        body="hi",
        status_callback=receiver.base_url + "/status?ref=1",
    )
    callback = await receiver.next_callback()
    validator = RequestValidator(AUTH_TOKEN)

    tampered_status = {**callback.params, "MessageStatus": "delivered"}
    extra_param = {**callback.params, "ErrorCode": "30008"}

    assert validator.validate(callback.url, callback.params, callback.signature)
    assert not validator.validate(callback.url, tampered_status, callback.signature)
    assert not validator.validate(callback.url, extra_param, callback.signature)
    assert not validator.validate(
        receiver.base_url + "/status?ref=2", callback.params, callback.signature
    )
    assert not RequestValidator("other-token").validate(
        callback.url, callback.params, callback.signature
    )


async def test_callbacks_follow_recipient_script_order(
    twilio_client: Client, control: httpx.AsyncClient, receiver: CallbackReceiver
) -> None:
    to = new_recipient()
    script = {
        "callbacks": [
            {"status": "sent"},
            {"status": "read"},
            {"status": "delivered"},
            {"status": "delivered"},
        ]
    }
    response = await control.put(f"/_emulator/recipients/{to}", json=script)
    assert response.status_code == 200

    await twilio_client.messages.create_async(
        to=to, from_=WHATSAPP_SENDER, body="hi", status_callback=receiver.base_url + "/status"
    )
    callbacks = await receiver.collect(4)

    assert [callback.params["MessageStatus"] for callback in callbacks] == [
        "sent",
        "read",
        "delivered",
        "delivered",
    ]
    for callback in callbacks:
        assert_signed(callback)


async def test_failed_callback_carries_error_code_and_message(
    emulator: RunningEmulator,
    twilio_client: Client,
    control: httpx.AsyncClient,
    receiver: CallbackReceiver,
) -> None:
    to = new_recipient()
    await control.put(
        f"/_emulator/recipients/{to}",
        json={"callbacks": [{"status": "failed", "error_code": 63016}]},
    )

    message = await twilio_client.messages.create_async(
        to=to, from_=WHATSAPP_SENDER, body="hi", status_callback=receiver.base_url + "/status"
    )
    callback = await receiver.next_callback()
    assert message.sid is not None
    await wait_for_callback_count(emulator, message.sid, 1)

    assert callback.params["MessageStatus"] == "failed"
    assert callback.params["ErrorCode"] == "63016"
    assert callback.params["ErrorMessage"]
    assert_signed(callback)
    assert receiver.received.empty()
    fetched = await twilio_client.messages(message.sid).fetch_async()
    assert fetched.status == "failed"
    assert fetched.error_code == 63016


async def test_undelivered_callback_can_omit_error_message(
    twilio_client: Client, control: httpx.AsyncClient, receiver: CallbackReceiver
) -> None:
    to = new_recipient()
    await control.put(
        f"/_emulator/recipients/{to}",
        json={
            "callbacks": [
                {"status": "sent"},
                {"status": "undelivered", "error_code": 30008, "omit_error_message": True},
            ]
        },
    )

    await twilio_client.messages.create_async(
        to=to, from_=WHATSAPP_SENDER, body="hi", status_callback=receiver.base_url + "/status"
    )
    sent, undelivered = await receiver.collect(2)

    assert sent.params["MessageStatus"] == "sent"
    assert undelivered.params["MessageStatus"] == "undelivered"
    assert undelivered.params["ErrorCode"] == "30008"
    assert "ErrorMessage" not in undelivered.params
    assert_signed(undelivered)


async def test_sms_callbacks_have_no_channel_parameters(
    twilio_client: Client, control: httpx.AsyncClient, receiver: CallbackReceiver
) -> None:
    to = "+15005550123"
    await control.put(
        f"/_emulator/recipients/{to}",
        json={"callbacks": [{"status": "sent"}, {"status": "failed", "error_code": 30003}]},
    )

    await twilio_client.messages.create_async(
        to=to, from_=SENDER, body="hi", status_callback=receiver.base_url + "/status"
    )
    sent, failed = await receiver.collect(2)

    for callback in (sent, failed):
        assert callback.params["To"] == to
        assert callback.params["From"] == SENDER
        assert "ChannelPrefix" not in callback.params
        assert "ChannelInstallSid" not in callback.params
        assert_signed(callback)
    assert failed.params["ErrorCode"] == "30003"
    assert "ErrorMessage" not in failed.params


async def test_callback_results_are_recorded(
    emulator: RunningEmulator, twilio_client: Client, receiver: CallbackReceiver
) -> None:
    message = await twilio_client.messages.create_async(
        to=new_recipient(),
        from_=WHATSAPP_SENDER,
        body="hi",
        status_callback=receiver.base_url + "/fail",
    )
    assert message.sid is not None
    await wait_for_callback_count(emulator, message.sid, 3)

    attempts = emulator.state.messages[message.sid].callbacks
    assert [attempt.status for attempt in attempts] == ["sent", "delivered", "read"]
    assert [attempt.http_status for attempt in attempts] == [500, 500, 500]
    assert all(attempt.error is None for attempt in attempts)


async def test_unreachable_callback_is_recorded_without_failing_create(
    emulator: RunningEmulator, twilio_client: Client
) -> None:
    # A port that was just free and is now closed refuses the connection.
    closed_receiver = CallbackReceiver()
    await closed_receiver.start()
    closed_url = closed_receiver.base_url + "/status"
    await closed_receiver.stop()

    message = await twilio_client.messages.create_async(
        to=new_recipient(), from_=WHATSAPP_SENDER, body="hi", status_callback=closed_url
    )
    assert message.sid is not None
    await wait_for_callback_count(emulator, message.sid, 3)

    attempts = emulator.state.messages[message.sid].callbacks
    assert [attempt.http_status for attempt in attempts] == [None, None, None]
    assert all(attempt.error for attempt in attempts)
    assert emulator.state.messages[message.sid].status == "read"


# Scripted errors and latency


async def test_scripted_error_fails_create_with_its_code(
    emulator: RunningEmulator, twilio_client: Client, control: httpx.AsyncClient
) -> None:
    to = new_recipient()
    response = await control.put(
        f"/_emulator/recipients/{to}", json={"error": {"http_status": 400, "code": 21610}}
    )
    assert response.json()["error"] == {
        "code": 21610,
        "http_status": 400,
        "message": None,
        "times": None,
        "retry_after_seconds": None,
    }

    first = await create_error(twilio_client, to=to, from_=WHATSAPP_SENDER, body="hi")
    second = await create_error(twilio_client, to=to, from_=WHATSAPP_SENDER, body="hi")

    assert (first.status, first.code) == (400, 21610)
    assert (second.status, second.code) == (400, 21610)
    assert not [record for record in emulator.state.messages.values() if record.to == to]


async def test_scripted_error_uses_code_default_status(
    twilio_client: Client, control: httpx.AsyncClient
) -> None:
    to = new_recipient()
    await control.put(f"/_emulator/recipients/{to}", json={"error": {"code": 21408}})

    error = await create_error(twilio_client, to=to, from_=WHATSAPP_SENDER, body="hi")

    assert error.status == 400
    assert error.code == 21408


async def test_scripted_error_with_times_fails_then_succeeds(
    twilio_client: Client, control: httpx.AsyncClient
) -> None:
    to = new_recipient()
    await control.put(f"/_emulator/recipients/{to}", json={"error": {"code": 20429, "times": 1}})

    error = await create_error(twilio_client, to=to, from_=WHATSAPP_SENDER, body="hi")
    message = await twilio_client.messages.create_async(to=to, from_=WHATSAPP_SENDER, body="hi")

    assert error.status == 429
    assert error.code == 20429
    assert message.status == "queued"


async def test_deleted_script_restores_default_outcome(
    twilio_client: Client, control: httpx.AsyncClient
) -> None:
    to = new_recipient()
    await control.put(f"/_emulator/recipients/{to}", json={"error": {"code": 21610}})

    response = await control.delete(f"/_emulator/recipients/{to}")
    message = await twilio_client.messages.create_async(to=to, from_=WHATSAPP_SENDER, body="hi")

    assert response.status_code == 204
    assert message.status == "queued"


async def test_held_response_records_message_before_answering(
    emulator: RunningEmulator, twilio_client: Client, control: httpx.AsyncClient
) -> None:
    to = new_recipient()
    script = await control.put(f"/_emulator/recipients/{to}", json={"hold_response_ms": 600})
    assert script.json()["hold_response_ms"] == 600

    create = asyncio.ensure_future(
        twilio_client.messages.create_async(to=to, from_=WHATSAPP_SENDER, body="hi")
    )
    await emulator.state.wait_for(
        lambda state: any(record.to == to for record in state.messages.values()), 5.0
    )
    answered_before_hold = create.done()
    message = await create

    assert not answered_before_hold
    assert message.sid in emulator.state.messages


async def test_response_delay_setting_delays_create(
    twilio_client: Client, control: httpx.AsyncClient
) -> None:
    response = await control.put("/_emulator/settings", json={"response_delay_ms": 300})
    assert response.json()["response_delay_ms"] == 300
    try:
        started = time.monotonic()
        await twilio_client.messages.create_async(
            to=new_recipient(), from_=WHATSAPP_SENDER, body="hi"
        )
        elapsed = time.monotonic() - started
    finally:
        await control.put("/_emulator/settings", json={"response_delay_ms": 0})

    assert elapsed >= 0.3


async def test_slow_callback_receiver_does_not_delay_create(
    emulator: RunningEmulator, twilio_client: Client, control: httpx.AsyncClient
) -> None:
    connected = asyncio.Event()
    hanging_connections: list[asyncio.StreamWriter] = []

    async def accept_without_answering(
        reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        hanging_connections.append(writer)
        connected.set()

    server = await asyncio.start_server(accept_without_answering, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    to = new_recipient()
    await control.put(f"/_emulator/recipients/{to}", json={"callbacks": [{"status": "sent"}]})
    try:
        message = await asyncio.wait_for(
            twilio_client.messages.create_async(
                to=to,
                from_=WHATSAPP_SENDER,
                body="hi",
                status_callback=f"http://127.0.0.1:{port}/status",
            ),
            timeout=1.0,
        )
        await asyncio.wait_for(connected.wait(), TIMEOUT_SECONDS)

        assert message.sid is not None
        assert message.status == "queued"
        assert emulator.state.messages[message.sid].callbacks == []
    finally:
        for writer in hanging_connections:
            writer.close()
        server.close()
        await server.wait_closed()


# Control API


async def test_control_api_lists_and_resets_state(receiver: CallbackReceiver) -> None:
    config = EmulatorConfig(
        account_sid=ACCOUNT_SID, auth_token=AUTH_TOKEN, whatsapp_sender=WHATSAPP_SENDER
    )
    async with (
        running_emulator(config) as own_emulator,
        AsyncTwilioHttpClient() as http_client,
        httpx.AsyncClient(base_url=own_emulator.base_url, trust_env=False) as control,
    ):
        client = make_client(own_emulator, http_client)
        to = new_recipient()
        await control.put(f"/_emulator/recipients/{to}", json={"callbacks": [{"status": "sent"}]})
        message = await client.messages.create_async(
            to=to,
            from_=WHATSAPP_SENDER,
            body="Your code is 111222",
            status_callback=receiver.base_url + "/status",
        )
        await receiver.next_callback()
        assert message.sid is not None
        await wait_for_callback_count(own_emulator, message.sid, 1)
        await create_error(client, to=to, from_=WHATSAPP_SENDER, body="x" * 1601)

        listing = (await control.get("/_emulator/messages", params={"to": to})).json()
        reset = await control.delete("/_emulator/messages")
        after_reset = (await control.get("/_emulator/messages")).json()

    [recorded] = listing["messages"]
    assert recorded["sid"] == message.sid
    assert recorded["to"] == to
    assert recorded["from"] == WHATSAPP_SENDER
    assert recorded["body"] == "Your code is 111222"
    assert recorded["status_callback"] == receiver.base_url + "/status"
    assert recorded["received_at"]
    assert recorded["status"] == "sent"
    [attempt] = recorded["callbacks"]
    assert attempt["status"] == "sent"
    assert attempt["http_status"] == 200
    assert attempt["params"]["MessageSid"] == message.sid
    assert attempt["signature"]
    [rejection] = listing["rejections"]
    assert rejection["code"] == 21617
    assert rejection["http_status"] == 400
    assert reset.status_code == 204
    assert after_reset == {"messages": [], "rejections": []}


async def test_control_api_rejects_invalid_scripts(control: httpx.AsyncClient) -> None:
    to = new_recipient()
    invalid_scripts = [
        {"callbacks": [{"status": "arrived"}]},
        {"callbacks": [{"status": "failed"}]},
        {"callbacks": [{"status": "sent", "colour": "red"}]},
        {"error": {"code": 21610, "http_status": 200}},
        {"error": {"code": 21610, "times": 0}},
        {"hold_response_ms": -1},
        {"hold_response_ms": 600_001},
    ]

    statuses = [
        (await control.put(f"/_emulator/recipients/{to}", json=script)).status_code
        for script in invalid_scripts
    ]

    assert statuses == [400] * len(invalid_scripts)


async def test_control_api_rejects_negative_delay(control: httpx.AsyncClient) -> None:
    response = await control.put("/_emulator/settings", json={"callback_delay_ms": -1})

    assert response.status_code == 400
    assert "callback_delay_ms" in response.text


# Configuration and command line


def test_config_accepts_sender_with_or_without_prefix() -> None:
    with_prefix = EmulatorConfig(ACCOUNT_SID, AUTH_TOKEN, "whatsapp:+14155550100")
    without_prefix = EmulatorConfig(ACCOUNT_SID, AUTH_TOKEN, "+14155550100")

    assert with_prefix.whatsapp_sender == "+14155550100"
    assert without_prefix.whatsapp_sender == "+14155550100"


@pytest.mark.parametrize(
    ("account_sid", "auth_token", "sender"),
    [
        pytest.param("XX" + "0" * 32, AUTH_TOKEN, SENDER, id="account-sid"),
        pytest.param(ACCOUNT_SID, "", SENDER, id="auth-token"),
        pytest.param(ACCOUNT_SID, AUTH_TOKEN, "14155550100", id="sender"),
    ],
)
def test_config_rejects_invalid_value(account_sid: str, auth_token: str, sender: str) -> None:
    with pytest.raises(ConfigError):
        EmulatorConfig(account_sid, auth_token, sender)


def test_config_hides_auth_token_from_repr() -> None:
    config = EmulatorConfig(ACCOUNT_SID, AUTH_TOKEN, SENDER)

    assert AUTH_TOKEN not in repr(config)


def test_parse_config_reads_environment_defaults() -> None:
    environ = {
        "TWILIO_ACCOUNT_SID": ACCOUNT_SID,
        "TWILIO_AUTH_TOKEN": AUTH_TOKEN,
        "TWILIO_PHONE_NUMBER": WHATSAPP_SENDER,
    }

    config, log_level = parse_config(["--callback-delay-ms", "7"], environ)

    assert config.account_sid == ACCOUNT_SID
    assert config.auth_token == AUTH_TOKEN
    assert config.whatsapp_sender == SENDER
    assert config.host == "127.0.0.1"
    assert config.port == 4010
    assert config.callback_delay_ms == 7
    assert log_level == "INFO"


def test_parse_config_prefers_arguments_over_environment() -> None:
    environ = {"TWILIO_ACCOUNT_SID": "AC" + "f" * 32, "TWILIO_AUTH_TOKEN": "env-token"}

    config, _ = parse_config(
        ["--account-sid", ACCOUNT_SID, "--auth-token", AUTH_TOKEN, "--whatsapp-sender", SENDER],
        environ,
    )

    assert config.account_sid == ACCOUNT_SID
    assert config.auth_token == AUTH_TOKEN


def test_parse_config_turns_callbacks_off() -> None:
    environ = {
        "TWILIO_ACCOUNT_SID": ACCOUNT_SID,
        "TWILIO_AUTH_TOKEN": AUTH_TOKEN,
        "TWILIO_PHONE_NUMBER": SENDER,
    }

    default, _ = parse_config([], environ)
    silent, _ = parse_config(["--no-callbacks"], environ)

    assert default.default_callback_statuses == ("sent", "delivered", "read")
    assert silent.default_callback_statuses == ()
    assert EmulatorState(silent).callbacks_for(new_recipient()) == ()


def test_parse_config_exits_on_missing_credentials(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as caught:
        parse_config([], {})

    assert caught.value.code == 2
    assert "--auth-token" in capsys.readouterr().err


def cli_environment() -> dict[str, str]:
    """Return the environment of a CLI subprocess: credentials and the repository on the path."""
    environment = dict(os.environ)
    environment.update(
        {
            "TWILIO_ACCOUNT_SID": ACCOUNT_SID,
            "TWILIO_AUTH_TOKEN": AUTH_TOKEN,
            "TWILIO_PHONE_NUMBER": SENDER,
            "PYTHONPATH": str(REPOSITORY_ROOT),
        }
    )
    return environment


async def test_cli_serves_until_sigterm(twilio_http_client: AsyncTwilioHttpClient) -> None:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "twilio_emulator",
        "--port",
        "0",
        cwd=REPOSITORY_ROOT,
        env=cli_environment(),
        stderr=asyncio.subprocess.PIPE,
    )
    assert process.stderr is not None
    try:
        base_url = None
        async with asyncio.timeout(TIMEOUT_SECONDS * 2):
            while base_url is None:
                line = (await process.stderr.readline()).decode()
                assert line, "the emulator exited before it logged emulator.started"
                match = re.search(r"emulator\.started base_url=(\S+)", line)
                base_url = match.group(1) if match else None
        assert base_url.startswith("http://127.0.0.1:")
        client = Client(ACCOUNT_SID, AUTH_TOKEN, http_client=twilio_http_client)
        client.api.base_url = base_url

        message = await client.messages.create_async(
            to=new_recipient(), from_=WHATSAPP_SENDER, body="hi"
        )

        process.send_signal(signal.SIGTERM)
        remaining_output = await asyncio.wait_for(process.stderr.read(), TIMEOUT_SECONDS)
        return_code = await asyncio.wait_for(process.wait(), TIMEOUT_SECONDS)
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()

    assert message.status == "queued"
    assert return_code == 0
    assert b"emulator.stopped" in remaining_output
    assert AUTH_TOKEN.encode() not in remaining_output


# Signing


@given(
    params=st.dictionaries(
        st.text(alphabet=st.characters(categories=["L", "N"]), min_size=1, max_size=12),
        st.text(max_size=40),
        max_size=8,
    ),
    query=st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789=&", max_size=30),
)
def test_sign_callback_matches_request_validator(params: dict[str, str], query: str) -> None:
    url = "http://127.0.0.1:8080/twilio/status" + (f"?{query}" if query else "")

    signature = sign_callback(AUTH_TOKEN, url, params)

    assert RequestValidator(AUTH_TOKEN).validate(url, params, signature)
