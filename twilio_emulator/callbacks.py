"""Signing and posting of status callbacks, in script order, after a message is created.

Each message gets one asyncio task that walks its scripted statuses in order. Before
each status the task waits the current callback delay, moves the message to that
status and, when the message has a StatusCallback URL, posts the signed callback and
records the HTTP result. A failed callback is logged and recorded, never retried,
and never affects the API response, which was sent before the task started.
"""

from __future__ import annotations

import asyncio
import logging
import uuid

import httpx
from twilio.request_validator import RequestValidator

from twilio_emulator.config import WHATSAPP_PREFIX, EmulatorConfig
from twilio_emulator.redaction import mask_address
from twilio_emulator.resource import API_VERSION
from twilio_emulator.state import (
    ERROR_STATUSES,
    CallbackAttempt,
    EmulatorState,
    MessageRecord,
    ScriptedCallback,
    recipient_key,
    utc_now,
)

logger = logging.getLogger(__name__)

SIGNATURE_HEADER = "X-Twilio-Signature"
# Headers that Twilio's webhook requests carry besides the signature.
CALLBACK_USER_AGENT = "TwilioProxy/1.1"
IDEMPOTENCY_HEADER = "I-Twilio-Idempotency-Token"


def build_callback_params(
    record: MessageRecord, callback: ScriptedCallback, channel_install_sid: str
) -> dict[str, str]:
    """Return the form parameters of one status callback for `record`.

    WhatsApp callbacks add the channel parameters that Twilio sends for that channel,
    and `EventType` on delivered and read. Failed and undelivered callbacks carry
    ErrorCode, and WhatsApp ones also carry ErrorMessage unless the script omits it.
    """
    params = {
        "AccountSid": record.account_sid,
        "ApiVersion": API_VERSION,
        "From": record.from_,
        "MessageSid": record.sid,
        "MessageStatus": callback.status,
        "SmsSid": record.sid,
        "SmsStatus": callback.status,
        "To": record.to,
    }
    is_whatsapp = record.to.startswith(WHATSAPP_PREFIX)
    if is_whatsapp:
        params["ChannelInstallSid"] = channel_install_sid
        params["ChannelPrefix"] = "whatsapp"
        params["ChannelToAddress"] = recipient_key(record.to)
        if callback.status in ("delivered", "read"):
            params["EventType"] = callback.status.upper()
    if callback.status in ERROR_STATUSES and callback.error_code is not None:
        params["ErrorCode"] = str(callback.error_code)
        # NOTE: Twilio's status callback guide lists only ErrorCode. ErrorMessage is sent
        # for WhatsApp because public integrations of WhatsApp callbacks read it, and a
        # script drops it with omit_error_message.
        error_message = callback.error_message
        if is_whatsapp and error_message is not None:
            params["ErrorMessage"] = error_message
    return params


def sign_callback(auth_token: str, url: str, params: dict[str, str]) -> str:
    """Return the X-Twilio-Signature value for a form POST of `params` to the exact `url`."""
    signature: str = RequestValidator(auth_token).compute_signature(url, params)
    return signature


class CallbackDispatcher:
    """Runs the scripted status sequence of each new message in a background task."""

    def __init__(self, config: EmulatorConfig, state: EmulatorState) -> None:
        self._config = config
        self._state = state
        # trust_env=False keeps proxy variables from rerouting callbacks off this machine.
        self._client = httpx.AsyncClient(
            timeout=config.callback_timeout_seconds, trust_env=False, follow_redirects=False
        )
        self._tasks: set[asyncio.Task[None]] = set()

    async def start(self, record: MessageRecord) -> None:
        """Start the status sequence of `record` in a new task and return at once."""
        callbacks = self._state.callbacks_for(record.to)
        task = asyncio.get_running_loop().create_task(
            self._run_sequence(record, callbacks), name=f"status-callbacks-{record.sid}"
        )
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def cancel_pending(self) -> None:
        """Cancel every status sequence still running and wait until they have stopped."""
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def aclose(self) -> None:
        """Cancel pending status sequences and close the HTTP client."""
        await self.cancel_pending()
        await self._client.aclose()

    async def _run_sequence(
        self, record: MessageRecord, callbacks: tuple[ScriptedCallback, ...]
    ) -> None:
        try:
            for callback in callbacks:
                await asyncio.sleep(self._state.callback_delay_ms / 1000)
                self._state.apply_status(record, callback)
                if record.status_callback is not None:
                    await self._post(record, record.status_callback, callback)
        except Exception:
            logger.exception("status_callback.sequence_failed sid=%s", record.sid)

    async def _post(self, record: MessageRecord, url: str, callback: ScriptedCallback) -> None:
        params = build_callback_params(record, callback, self._state.channel_install_sid)
        signature = sign_callback(self._config.auth_token, url, params)
        attempt = CallbackAttempt(
            status=callback.status,
            url=url,
            params=params,
            signature=signature,
            sent_at=utc_now(),
        )
        try:
            response = await self._client.post(
                url,
                data=params,
                headers={
                    SIGNATURE_HEADER: signature,
                    IDEMPOTENCY_HEADER: str(uuid.uuid4()),
                    "User-Agent": CALLBACK_USER_AGENT,
                },
            )
        except httpx.HTTPError as error:
            attempt.error = f"{type(error).__name__}: {error}"
            logger.warning(
                "status_callback.failed sid=%s status=%s to=%s error=%s",
                record.sid,
                callback.status,
                mask_address(record.to),
                attempt.error,
            )
        else:
            attempt.http_status = response.status_code
            if response.is_success:
                logger.debug(
                    "status_callback.delivered sid=%s status=%s http_status=%s",
                    record.sid,
                    callback.status,
                    response.status_code,
                )
            else:
                logger.warning(
                    "status_callback.rejected sid=%s status=%s http_status=%s",
                    record.sid,
                    callback.status,
                    response.status_code,
                )
        self._state.add_callback_attempt(record, attempt)
