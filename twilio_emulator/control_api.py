"""JSON control API under /_emulator/ that scripts outcomes and reads what was recorded.

Endpoints:

- `PUT /_emulator/recipients/{to}` scripts every later message to `to` (given with or
  without the `whatsapp:` prefix). Body, every field optional:
  `{"callbacks": [{"status": "failed", "error_code": 63016, "omit_error_message": false}],
    "error": {"code": 21610, "http_status": 400, "message": "...", "times": 1},
    "hold_response_ms": 0}`.
  `callbacks` replaces the default sent, delivered, read sequence, in order; an empty
  list sends none. `error` makes "create a Message" fail with that Twilio error:
  `http_status` defaults to the code's usual status, `message` to its title, and
  `times` (default: no limit) counts the create calls that fail before the callbacks
  script applies again, and `retry_after_seconds` adds a Retry-After header. Returns
  the stored script. `hold_response_ms` (default 0, at most 600000) records each
  created message at once but responds to the create call only after that many
  milliseconds, as when Twilio accepted a message and its response is slow or lost.
  Removing or changing the script ends the held calls at once.
- `DELETE /_emulator/recipients/{to}` removes the script of `to`.
- `GET /_emulator/messages[?to=...]` returns
  `{"messages": [message...], "rejections": [rejection...]}`, oldest first. A message
  has sid, account_sid, to, from, body, num_media, status_callback, received_at,
  status, error_code and `callbacks`: the posted callbacks with status, url, params,
  signature, sent_at, http_status (null when no response arrived) and error.
  A rejection has to, from, code, http_status and received_at.
- `DELETE /_emulator/messages` resets the whole state: it cancels pending callbacks,
  deletes messages, rejections and scripts, and restores the configured delays.
- `GET /_emulator/settings` and `PUT /_emulator/settings` read and change
  `{"response_delay_ms": int, "callback_delay_ms": int}`; PUT takes either field.

Times are ISO 8601 strings in UTC.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import msgspec
from litestar import Router, delete, get, put
from litestar.di import NamedDependency
from litestar.exceptions import ValidationException
from litestar.params import FromPath, FromQuery, JSONBody

from twilio_emulator.callbacks import CallbackDispatcher
from twilio_emulator.errors import describe_error
from twilio_emulator.state import (
    CALLBACK_STATUSES,
    ERROR_STATUSES,
    CallbackAttempt,
    EmulatorState,
    MessageRecord,
    RecipientScript,
    Rejection,
    ScriptedCallback,
    ScriptedError,
    recipient_key,
)

# Ten minutes: longer than any client timeout worth testing.
MAX_HOLD_RESPONSE_MS = 600_000


class CallbackSpec(msgspec.Struct, forbid_unknown_fields=True):
    """One scripted status callback in a PUT /_emulator/recipients/{to} body."""

    status: str
    error_code: int | None = None
    omit_error_message: bool = False


class ErrorSpec(msgspec.Struct, forbid_unknown_fields=True):
    """A scripted "create a Message" error in a PUT /_emulator/recipients/{to} body."""

    code: int
    http_status: int | None = None
    message: str | None = None
    times: int | None = None
    retry_after_seconds: int | None = None


class RecipientScriptBody(msgspec.Struct, forbid_unknown_fields=True):
    """The body of PUT /_emulator/recipients/{to}."""

    callbacks: list[CallbackSpec] | None = None
    error: ErrorSpec | None = None
    hold_response_ms: int = 0


class SettingsBody(msgspec.Struct, forbid_unknown_fields=True):
    """The body of PUT /_emulator/settings, in which an absent field keeps its value."""

    response_delay_ms: int | None = None
    callback_delay_ms: int | None = None


def to_scripted_callback(index: int, spec: CallbackSpec) -> ScriptedCallback:
    """Check one callback spec and convert it, naming its index in any error."""
    if spec.status not in CALLBACK_STATUSES:
        raise ValidationException(
            f"invalid callbacks[{index}].status {spec.status!r}: "
            f"expected one of {', '.join(sorted(CALLBACK_STATUSES))}"
        )
    if spec.status in ERROR_STATUSES and spec.error_code is None:
        raise ValidationException(
            f"missing callbacks[{index}].error_code: status {spec.status!r} needs a Twilio "
            "error code, e.g. 63016 or 30008"
        )
    return ScriptedCallback(
        status=spec.status,
        error_code=spec.error_code,
        omit_error_message=spec.omit_error_message,
    )


def to_scripted_error(spec: ErrorSpec) -> ScriptedError:
    """Check the error spec and convert it, filling the code's default HTTP status."""
    http_status = spec.http_status or describe_error(spec.code).http_status
    if not 400 <= http_status <= 599:
        raise ValidationException(
            f"invalid error.http_status {http_status}: expected a 4xx or 5xx status"
        )
    if spec.times is not None and spec.times < 1:
        raise ValidationException(
            f"invalid error.times {spec.times}: expected 1 or more, or leave it out to fail "
            "every call"
        )
    if spec.retry_after_seconds is not None and spec.retry_after_seconds < 0:
        raise ValidationException(
            f"invalid error.retry_after_seconds {spec.retry_after_seconds}: expected 0 or more"
        )
    return ScriptedError(
        code=spec.code,
        http_status=http_status,
        message=spec.message,
        remaining=spec.times,
        retry_after_seconds=spec.retry_after_seconds,
    )


def isoformat(moment: datetime | None) -> str | None:
    """Return `moment` as an ISO 8601 string, or None."""
    return moment.isoformat() if moment is not None else None


def render_script(to: str, script: RecipientScript) -> dict[str, Any]:
    """Return the JSON form of a stored recipient script."""
    callbacks = None
    if script.callbacks is not None:
        callbacks = [
            {
                "status": callback.status,
                "error_code": callback.error_code,
                "omit_error_message": callback.omit_error_message,
            }
            for callback in script.callbacks
        ]
    error = None
    if script.error is not None:
        error = {
            "code": script.error.code,
            "http_status": script.error.http_status,
            "message": script.error.message,
            "times": script.error.remaining,
            "retry_after_seconds": script.error.retry_after_seconds,
        }
    return {
        "to": recipient_key(to),
        "callbacks": callbacks,
        "error": error,
        "hold_response_ms": script.hold_response_ms,
    }


def render_attempt(attempt: CallbackAttempt) -> dict[str, Any]:
    """Return the JSON form of one posted status callback."""
    return {
        "status": attempt.status,
        "url": attempt.url,
        "params": attempt.params,
        "signature": attempt.signature,
        "sent_at": isoformat(attempt.sent_at),
        "http_status": attempt.http_status,
        "error": attempt.error,
    }


def render_record(record: MessageRecord) -> dict[str, Any]:
    """Return the control API JSON form of one recorded message."""
    return {
        "sid": record.sid,
        "account_sid": record.account_sid,
        "to": record.to,
        "from": record.from_,
        "body": record.body,
        "num_media": record.num_media,
        "status_callback": record.status_callback,
        "received_at": isoformat(record.received_at),
        "status": record.status,
        "error_code": record.error_code,
        "callbacks": [render_attempt(attempt) for attempt in record.callbacks],
    }


def render_rejection(rejection: Rejection) -> dict[str, Any]:
    """Return the control API JSON form of one rejected create request."""
    return {
        "to": rejection.to,
        "from": rejection.from_,
        "code": rejection.code,
        "http_status": rejection.http_status,
        "received_at": isoformat(rejection.received_at),
    }


def render_settings(emulator_state: EmulatorState) -> dict[str, int]:
    """Return the current delays."""
    return {
        "response_delay_ms": emulator_state.response_delay_ms,
        "callback_delay_ms": emulator_state.callback_delay_ms,
    }


@put("/recipients/{to:str}")
async def put_recipient_script(
    to: FromPath[str],
    data: JSONBody[RecipientScriptBody],
    emulator_state: NamedDependency[EmulatorState],
) -> dict[str, Any]:
    """Script the outcome of every later message to `to`."""
    callbacks = None
    if data.callbacks is not None:
        callbacks = tuple(
            to_scripted_callback(index, spec) for index, spec in enumerate(data.callbacks)
        )
    error = to_scripted_error(data.error) if data.error is not None else None
    if not 0 <= data.hold_response_ms <= MAX_HOLD_RESPONSE_MS:
        raise ValidationException(
            f"invalid hold_response_ms {data.hold_response_ms}: expected 0 to "
            f"{MAX_HOLD_RESPONSE_MS}"
        )
    script = RecipientScript(
        callbacks=callbacks, error=error, hold_response_ms=data.hold_response_ms
    )
    emulator_state.set_script(to, script)
    return render_script(to, script)


@delete("/recipients/{to:str}")
async def delete_recipient_script(
    to: FromPath[str], emulator_state: NamedDependency[EmulatorState]
) -> None:
    """Remove the script of `to`, so its messages get the default outcome again."""
    emulator_state.delete_script(to)


@get("/messages")
async def list_messages(
    emulator_state: NamedDependency[EmulatorState], to: FromQuery[str | None] = None
) -> dict[str, Any]:
    """Return recorded messages and rejections, optionally only those sent to `to`."""
    messages = list(emulator_state.messages.values())
    rejections = list(emulator_state.rejections)
    if to is not None:
        # Query strings decode an unescaped '+' as a space, as in ?to=whatsapp:+4915...
        key = recipient_key(to.replace(" ", "+"))
        messages = [record for record in messages if recipient_key(record.to) == key]
        rejections = [item for item in rejections if recipient_key(item.to) == key]
    return {
        "messages": [render_record(record) for record in messages],
        "rejections": [render_rejection(rejection) for rejection in rejections],
    }


@delete("/messages")
async def reset_state(
    emulator_state: NamedDependency[EmulatorState], dispatcher: NamedDependency[CallbackDispatcher]
) -> None:
    """Cancel pending callbacks and reset messages, rejections, scripts and delays."""
    await dispatcher.cancel_pending()
    emulator_state.reset()


@get("/settings")
async def get_settings(emulator_state: NamedDependency[EmulatorState]) -> dict[str, int]:
    """Return the current response and callback delays."""
    return render_settings(emulator_state)


@put("/settings")
async def put_settings(
    data: JSONBody[SettingsBody], emulator_state: NamedDependency[EmulatorState]
) -> dict[str, int]:
    """Change the response delay, the callback delay, or both."""
    for name, value in (
        ("response_delay_ms", data.response_delay_ms),
        ("callback_delay_ms", data.callback_delay_ms),
    ):
        if value is not None and value < 0:
            raise ValidationException(f"invalid {name} {value}: expected 0 or more")
    if data.response_delay_ms is not None:
        emulator_state.response_delay_ms = data.response_delay_ms
    if data.callback_delay_ms is not None:
        emulator_state.callback_delay_ms = data.callback_delay_ms
    return render_settings(emulator_state)


def create_control_router() -> Router:
    """Return the router that serves the control API under /_emulator."""
    return Router(
        path="/_emulator",
        route_handlers=[
            put_recipient_script,
            delete_recipient_script,
            list_messages,
            reset_state,
            get_settings,
            put_settings,
        ],
    )
