"""Factory of the emulator's Litestar app: the Twilio API routes and the control API."""

from __future__ import annotations

from typing import Any

from litestar import Litestar, Request, Response
from litestar.di import Provide
from litestar.enums import MediaType
from litestar.exceptions import NotFoundException

from twilio_emulator.callbacks import CallbackDispatcher
from twilio_emulator.config import EmulatorConfig
from twilio_emulator.control_api import create_control_router
from twilio_emulator.errors import TwilioApiError
from twilio_emulator.state import EmulatorState
from twilio_emulator.twilio_api import create_message, fetch_message, list_messages


def twilio_error_response(
    request: Request[Any, Any, Any], error: TwilioApiError
) -> Response[dict[str, object]]:
    """Return Twilio's JSON error body with the error's HTTP status."""
    headers = {}
    if error.http_status == 401:
        headers["WWW-Authenticate"] = 'Basic realm="Twilio API"'
    if error.retry_after_seconds is not None:
        headers["Retry-After"] = str(error.retry_after_seconds)
    return Response(
        content=error.to_body(),
        status_code=error.http_status,
        media_type=MediaType.JSON,
        headers=headers,
    )


def not_found_response(
    request: Request[Any, Any, Any], error: NotFoundException
) -> Response[dict[str, object]]:
    """Return Twilio's 20404 body for a path that matches no route."""
    not_found = TwilioApiError(20404, f"The requested resource {request.url.path} was not found")
    return twilio_error_response(request, not_found)


def create_app(
    config: EmulatorConfig, state: EmulatorState, dispatcher: CallbackDispatcher
) -> Litestar:
    """Build the app, whose shutdown cancels pending callbacks and closes their HTTP client."""
    return Litestar(
        route_handlers=[create_message, fetch_message, list_messages, create_control_router()],
        dependencies={
            "config": Provide(lambda: config, use_cache=True, sync_to_thread=False),
            "emulator_state": Provide(lambda: state, use_cache=True, sync_to_thread=False),
            "dispatcher": Provide(lambda: dispatcher, use_cache=True, sync_to_thread=False),
        },
        exception_handlers={
            TwilioApiError: twilio_error_response,
            NotFoundException: not_found_response,
        },
        on_shutdown=[dispatcher.aclose],
        # The emulator logs through the standard logging module; Litestar must not
        # replace the logging configuration of the process that embeds it.
        logging_config=None,
    )
