"""Sends verification messages to WhatsApp through Twilio's Programmable Messaging API."""

import asyncio
import logging
from urllib.parse import urlencode

import aiohttp
from twilio.base.exceptions import TwilioRestException
from twilio.http.async_http_client import AsyncTwilioHttpClient
from twilio.rest import Client

from adapters.twilio.addresses import whatsapp_address
from adapters.twilio.errors import classify
from application.errors import ProviderUnavailable
from application.ports import OutgoingMessage, SentMessage
from domain.delivery import DeliveryStatus
from domain.phone import PhoneNumber

logger = logging.getLogger(__name__)

STATUS_CALLBACK_PATH = "/twilio/status"


class TwilioMessageSender:
    """Creates one Twilio Message per verification, asking for status callbacks."""

    def __init__(
        self,
        account_sid: str,
        auth_token: str,
        sender_number: PhoneNumber | str,
        status_callback_base_url: str | None,
        api_base_url: str = "https://api.twilio.com",
        timeout_seconds: float = 10.0,
    ) -> None:
        self._http_client = AsyncTwilioHttpClient(timeout=timeout_seconds)
        self._client = Client(account_sid, auth_token, http_client=self._http_client)
        # The SDK builds request URLs from the domain's base URL, which lets the
        # service talk to a local emulator or a regional proxy.
        self._client.api.base_url = api_base_url.rstrip("/")
        self._from = whatsapp_address(sender_number)
        self._callback_base = (
            status_callback_base_url.rstrip("/") + STATUS_CALLBACK_PATH
            if status_callback_base_url
            else None
        )
        self._timeout_seconds = timeout_seconds

    async def send(self, message: OutgoingMessage) -> SentMessage:
        callback = self._status_callback(message.verification_id)
        try:
            # The SDK hands its timeout to aiohttp, and this bound applies whatever aiohttp does.
            async with asyncio.timeout(self._timeout_seconds):
                created = await self._client.messages.create_async(
                    to=whatsapp_address(message.to),
                    from_=self._from,
                    body=message.body,
                    **({"status_callback": callback} if callback else {}),
                )
        except TwilioRestException as error:
            raise classify(error) from error
        except TimeoutError as error:
            raise ProviderUnavailable(
                f"the Twilio API call timed out after {self._timeout_seconds} s"
            ) from error
        except aiohttp.ClientError as error:
            raise ProviderUnavailable(f"Twilio could not be reached: {error}") from error

        status = _known_status(created.status)
        logger.debug(
            "twilio_message_created",
            extra={"verification_id": message.verification_id, "message_sid": created.sid},
        )
        return SentMessage(sid=created.sid, status=status)

    async def close(self) -> None:
        await self._http_client.close()

    def _status_callback(self, verification_id: str) -> str | None:
        if self._callback_base is None:
            return None
        # The id in the URL lets the webhook find the verification even when the
        # callback overtakes the response that carries the message SID.
        return f"{self._callback_base}?{urlencode({'verification_id': verification_id})}"


def _known_status(raw: object) -> DeliveryStatus:
    try:
        return DeliveryStatus(str(raw))
    except ValueError:
        # Accepted, scheduled and similar early statuses all mean "queued" here.
        return DeliveryStatus.QUEUED
