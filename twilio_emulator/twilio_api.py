"""Route handlers of the emulated Twilio REST API: create, fetch and list Messages.

Both routes check HTTP Basic auth against the configured Account SID and Auth Token,
and the Account SID in the path against the configured one, before anything else
apart from the configured response delay.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import hmac
import logging
from typing import Any

from litestar import Request, Response, get, post
from litestar.background_tasks import BackgroundTask
from litestar.di import NamedDependency
from litestar.enums import MediaType
from litestar.params import FromPath

from twilio_emulator.callbacks import CallbackDispatcher
from twilio_emulator.config import EmulatorConfig
from twilio_emulator.errors import TwilioApiError
from twilio_emulator.redaction import mask_address
from twilio_emulator.resource import API_VERSION, render_message
from twilio_emulator.state import (
    EmulatorState,
    MessageRecord,
    Rejection,
    new_message_sid,
    utc_now,
)
from twilio_emulator.validation import first_value, validate_create_request

logger = logging.getLogger(__name__)

MESSAGES_PATH = "/" + API_VERSION + "/Accounts/{account_sid:str}/Messages"


def credentials_match(header: str, account_sid: str, config: EmulatorConfig) -> bool:
    """Return whether a Basic `Authorization` header and the path SID match the config."""
    scheme, _, encoded = header.partition(" ")
    if scheme.lower() != "basic":
        return False
    try:
        decoded = base64.b64decode(encoded.strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        return False
    username, _, password = decoded.partition(":")
    # Every comparison runs, so the response time does not reveal which one failed.
    checks = (
        hmac.compare_digest(username.encode(), config.account_sid.encode()),
        hmac.compare_digest(password.encode(), config.auth_token.encode()),
        hmac.compare_digest(account_sid.encode(), config.account_sid.encode()),
    )
    return all(checks)


async def authenticate(
    request: Request[Any, Any, Any],
    account_sid: str,
    config: EmulatorConfig,
    emulator_state: EmulatorState,
) -> None:
    """Wait the configured response delay, then raise 20003 unless the credentials match."""
    if emulator_state.response_delay_ms:
        await asyncio.sleep(emulator_state.response_delay_ms / 1000)
    if not credentials_match(request.headers.get("authorization", ""), account_sid, config):
        logger.warning(
            "api.authentication_failed method=%s path=%s", request.method, request.url.path
        )
        raise TwilioApiError(20003, "Authenticate")


@post(MESSAGES_PATH + ".json", status_code=201)
async def create_message(
    request: Request[Any, Any, Any],
    account_sid: FromPath[str],
    config: NamedDependency[EmulatorConfig],
    emulator_state: NamedDependency[EmulatorState],
    dispatcher: NamedDependency[CallbackDispatcher],
) -> Response[dict[str, object]]:
    """Create a Message resource and start its status callbacks after the response."""
    await authenticate(request, account_sid, config, emulator_state)
    form = await request.form()
    fields = {name: [str(value) for value in form.getall(name)] for name in form}

    try:
        message_request = validate_create_request(fields, config)
        scripted_error = emulator_state.take_scripted_error(str(message_request.to))
        if scripted_error is not None:
            raise TwilioApiError(
                scripted_error.code,
                scripted_error.message,
                scripted_error.http_status,
                scripted_error.retry_after_seconds,
            )
    except TwilioApiError as error:
        to_value = first_value(fields, "To")
        emulator_state.add_rejection(
            Rejection(
                to=to_value,
                from_=first_value(fields, "From"),
                code=error.code,
                http_status=error.http_status,
                received_at=utc_now(),
            )
        )
        logger.debug(
            "message.rejected to=%s code=%s http_status=%s",
            mask_address(to_value),
            error.code,
            error.http_status,
        )
        raise

    record = MessageRecord(
        sid=new_message_sid(),
        account_sid=config.account_sid,
        to=str(message_request.to),
        from_=str(message_request.from_),
        body=message_request.body,
        num_media=len(message_request.media_urls),
        status_callback=message_request.status_callback,
        received_at=utc_now(),
    )
    emulator_state.add_message(record)
    logger.debug(
        "message.created sid=%s to=%s has_status_callback=%s",
        record.sid,
        mask_address(record.to),
        record.status_callback is not None,
    )
    hold_ms = emulator_state.response_hold_ms(record.to)
    if hold_ms:
        # Removing or changing the recipient's script ends the hold early.
        with contextlib.suppress(TimeoutError):
            await emulator_state.wait_for(
                lambda state: state.response_hold_ms(record.to) != hold_ms, hold_ms / 1000
            )
    return Response(
        content=render_message(record),
        status_code=201,
        media_type=MediaType.JSON,
        # Litestar runs background tasks after the response is sent, so the first
        # callback cannot reach the receiver before the 201 reaches the client.
        background=BackgroundTask(dispatcher.start, record),
    )


@get(MESSAGES_PATH + "/{message_file:str}")
async def fetch_message(
    request: Request[Any, Any, Any],
    account_sid: FromPath[str],
    message_file: FromPath[str],
    config: NamedDependency[EmulatorConfig],
    emulator_state: NamedDependency[EmulatorState],
) -> Response[dict[str, object]]:
    """Return the Message resource named `{Sid}.json`, or 20404 for an unknown SID."""
    await authenticate(request, account_sid, config, emulator_state)
    record = None
    if message_file.endswith(".json"):
        record = emulator_state.messages.get(message_file.removesuffix(".json"))
    if record is None:
        raise TwilioApiError(20404, f"The requested resource {request.url.path} was not found")
    return Response(content=render_message(record), media_type=MediaType.JSON)


@get(MESSAGES_PATH + ".json")
async def list_messages(
    request: Request[Any, Any, Any],
    account_sid: FromPath[str],
    config: NamedDependency[EmulatorConfig],
    emulator_state: NamedDependency[EmulatorState],
) -> Response[dict[str, object]]:
    """List Message resources newest first, filtered by `To`, one page of `PageSize`.

    Only the first page is served, with `next_page_uri` null; the service reads no
    further than that.
    """
    await authenticate(request, account_sid, config, emulator_state)
    to = request.query_params.get("To")
    try:
        page_size = int(request.query_params.get("PageSize", "50"))
    except ValueError as error:
        raise TwilioApiError(20001, "PageSize must be a whole number") from error
    page_size = max(1, min(page_size, 1000))
    records = [
        record
        for record in reversed(emulator_state.messages.values())
        if to is None or record.to == to
    ][:page_size]
    uri = request.url.path
    return Response(
        content={
            "messages": [render_message(record) for record in records],
            "end": max(len(records) - 1, 0),
            "first_page_uri": f"{uri}?PageSize={page_size}&Page=0",
            "next_page_uri": None,
            "page": 0,
            "page_size": page_size,
            "previous_page_uri": None,
            "start": 0,
            "uri": f"{uri}?PageSize={page_size}&Page=0",
        },
        media_type=MediaType.JSON,
    )
