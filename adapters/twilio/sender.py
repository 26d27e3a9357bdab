"""Sends verification messages to WhatsApp through Twilio's Programmable Messaging API."""

import asyncio
import base64
import functools
import logging
import time
from collections.abc import Mapping
from contextvars import ContextVar
from datetime import datetime
from urllib.parse import urlencode, urlsplit

import aiohttp
from opentelemetry import trace
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator
from twilio.base.exceptions import TwilioRestException
from twilio.http import AsyncHttpClient
from twilio.http.response import Response
from twilio.rest import Client

from adapters.observability import metrics
from adapters.observability.spans import child_span
from adapters.twilio.addresses import whatsapp_address
from adapters.twilio.errors import classify
from application.errors import ProviderUnavailable
from application.ports import OutgoingMessage, ProviderMessage, SentMessage
from domain.delivery import DeliveryStatus
from domain.phone import PhoneNumber

logger = logging.getLogger(__name__)
tracer = trace.get_tracer(__name__)

STATUS_CALLBACK_PATH = "/twilio/status"
# Only the W3C Trace Context propagator, because baggage could put any text in the URL.
_propagator = TraceContextTextMapPropagator()
# A call that timed out or broke after the request left may still have created the
# message. Its retry waits this long first, so the lookup before a resend is more
# likely to see the message in Twilio's list.
AMBIGUOUS_RETRY_AFTER_SECONDS = 15.0
# Messages to one phone listed when recovering after a crash; far more than the
# per-phone send limits allow in a day.
RECOVERY_PAGE_SIZE = 50

# The headers of the last Twilio response in this task. The SDK raises its errors
# without the response headers, and one HTTP client serves many concurrent sends, so
# the headers travel in a context variable, which is separate for each task.
_last_response_headers: ContextVar[Mapping[str, str] | None] = ContextVar(
    "twilio_last_response_headers", default=None
)


class _TwilioHttpClient(AsyncHttpClient):  # type: ignore[misc]
    """The SDK's HTTP client: one aiohttp session, keeping each response's headers for this task.

    The SDK's own async client builds a form encoder, an auth object and a copy of the
    request for its tests on every call, which made up a large part of a send's CPU
    time. This one encodes the form body itself and reuses the timeout. Each request
    also gets a client span and a latency observation. The span contains the method,
    host and status code only: the URL path contains the account SID, and the form body
    contains the code and the phone number.
    """

    def __init__(self, timeout_seconds: float, max_connections: int) -> None:
        super().__init__(logging.getLogger("twilio.http_client"), True, timeout_seconds)
        self._timeout = aiohttp.ClientTimeout(total=timeout_seconds)
        # aiohttp opens at most 100 connections by default, which would cap the sends
        # in flight below the worker's MAX_IN_FLIGHT.
        self._session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=max_connections))

    async def request(
        self,
        method: str,
        url: str,
        params: dict[str, object] | None = None,
        data: dict[str, object] | None = None,
        headers: dict[str, str] | None = None,
        auth: tuple[str, str] | None = None,
        timeout: float | None = None,
        allow_redirects: bool = False,
    ) -> Response:
        _last_response_headers.set(None)
        request_headers = dict(headers or {})
        if auth is not None:
            request_headers["Authorization"] = _basic_authorization(*auth)
        # The SDK has set the form content type for requests with a body.
        body = urlencode(data, doseq=True).encode() if data else None
        address = urlsplit(url)
        status_code = 0
        started = time.perf_counter()
        with child_span(
            tracer,
            method.upper(),
            trace.SpanKind.CLIENT,
            {
                "http.request.method": method.upper(),
                "server.address": address.hostname or "",
                "server.port": address.port or (443 if address.scheme == "https" else 80),
            },
        ) as span:
            try:
                async with self._session.request(
                    method.upper(),
                    url,
                    params=params,
                    data=body,
                    headers=request_headers,
                    timeout=aiohttp.ClientTimeout(total=timeout) if timeout else self._timeout,
                    allow_redirects=allow_redirects,
                ) as answer:
                    response = Response(answer.status, await answer.text(), answer.headers)
                status_code = response.status_code
                span.set_attribute("http.response.status_code", status_code)
                if status_code >= 400:
                    span.set_status(trace.StatusCode.ERROR)
                    span.set_attribute("error.type", str(status_code))
            finally:
                metrics.TWILIO_REQUEST_SECONDS.labels(method.upper(), str(status_code)).observe(
                    time.perf_counter() - started
                )
        _last_response_headers.set(response.headers)
        return response

    async def close(self) -> None:
        await self._session.close()


@functools.lru_cache(maxsize=4)
def _basic_authorization(username: str, password: str) -> str:
    # aiohttp deprecates its `auth` argument, and the SDK passes the same pair each time.
    credentials = base64.b64encode(f"{username}:{password}".encode()).decode("ascii")
    return f"Basic {credentials}"


def _retry_after_seconds() -> float | None:
    headers = _last_response_headers.get()
    if not headers:
        return None
    value = next((v for k, v in headers.items() if k.lower() == "retry-after"), None)
    try:
        return max(float(value), 0.0) if value is not None else None
    except ValueError:
        # An HTTP date instead of seconds; the jittered backoff applies instead.
        return None


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
        max_connections: int = 100,
    ) -> None:
        self._http_client = _TwilioHttpClient(timeout_seconds, max_connections)
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
            raise classify(error, _retry_after_seconds()) from error
        except TimeoutError as error:
            raise ProviderUnavailable(
                f"the Twilio API call timed out after {self._timeout_seconds} s",
                retry_after_seconds=AMBIGUOUS_RETRY_AFTER_SECONDS,
            ) from error
        except aiohttp.ClientConnectorError as error:
            raise ProviderUnavailable(f"Twilio could not be reached: {error}") from error
        except aiohttp.ClientError as error:
            raise ProviderUnavailable(
                f"the Twilio API call failed after it was sent: {error}",
                retry_after_seconds=AMBIGUOUS_RETRY_AFTER_SECONDS,
            ) from error

        status = _known_status(created.status)
        logger.debug(
            "twilio_message_created",
            extra={"verification_id": message.verification_id, "message_sid": created.sid},
        )
        return SentMessage(sid=created.sid, status=status)

    async def find_recent(self, to: PhoneNumber, since: datetime) -> list[ProviderMessage]:
        # Twilio lists the newest first; its DateSent filter would miss queued
        # messages, so the creation time is checked here instead.
        try:
            async with asyncio.timeout(self._timeout_seconds):
                listed = await self._client.messages.list_async(
                    to=whatsapp_address(to), limit=RECOVERY_PAGE_SIZE
                )
        except TwilioRestException as error:
            raise classify(error, _retry_after_seconds()) from error
        except TimeoutError as error:
            raise ProviderUnavailable(
                f"listing Twilio messages timed out after {self._timeout_seconds} s"
            ) from error
        except aiohttp.ClientError as error:
            raise ProviderUnavailable(f"Twilio could not be reached: {error}") from error
        return [
            ProviderMessage(message.sid, message.body or "", _known_status(message.status), created)
            for message in listed
            if (created := message.date_created) is not None and created >= since
        ]

    async def close(self) -> None:
        await self._http_client.close()

    def _status_callback(self, verification_id: str) -> str | None:
        if self._callback_base is None:
            return None
        # The id in the URL lets the webhook find the verification even when the
        # callback overtakes the response that carries the message SID.
        query = {"verification_id": verification_id}
        # The current span's `traceparent` lets the webhook link each callback to this
        # send's trace. Twilio signs the whole URL, so the value arrives authenticated.
        # The propagator writes nothing when there is no valid current span.
        carrier: dict[str, str] = {}
        _propagator.inject(carrier)
        if "traceparent" in carrier:
            query["traceparent"] = carrier["traceparent"]
        return f"{self._callback_base}?{urlencode(query)}"


def _known_status(raw: object) -> DeliveryStatus:
    try:
        return DeliveryStatus(str(raw))
    except ValueError:
        # Accepted, scheduled and similar early statuses all mean "queued" here.
        return DeliveryStatus.QUEUED
