"""Recorded messages, rejected requests and scripted outcomes of one emulator instance.

All mutation happens on the event loop that runs the emulator, so no lock is needed.
Tests in the same process read this state directly, or wait on it with `wait_for`.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

from twilio_emulator.config import WHATSAPP_PREFIX, EmulatorConfig
from twilio_emulator.errors import describe_error

# Statuses that a scripted status callback may report. Twilio sends no callback for the
# initial `queued` status of a new message, but a script may still send one.
CALLBACK_STATUSES = frozenset(
    {"queued", "sending", "sent", "delivered", "read", "undelivered", "failed"}
)
# Statuses whose callbacks carry ErrorCode.
ERROR_STATUSES = frozenset({"undelivered", "failed"})


def utc_now() -> datetime:
    """Return the current UTC time truncated to whole seconds, as Twilio reports dates."""
    return datetime.now(UTC).replace(microsecond=0)


def recipient_key(to: str) -> str:
    """Return the number that scripts are keyed by: `To` without its whatsapp: prefix."""
    return to.removeprefix(WHATSAPP_PREFIX)


def new_message_sid() -> str:
    """Return a new Message SID: `SM` followed by 32 lowercase hex digits."""
    return "SM" + uuid.uuid4().hex


@dataclass(frozen=True, slots=True)
class ScriptedCallback:
    """One status callback that the emulator sends, in script order.

    `error_code` is required for `failed` and `undelivered`. With `omit_error_message`
    the callback carries ErrorCode without ErrorMessage.
    """

    status: str
    error_code: int | None = None
    omit_error_message: bool = False

    @property
    def error_message(self) -> str | None:
        """The error title sent as ErrorMessage, or None when there is none to send."""
        if self.error_code is None or self.omit_error_message:
            return None
        return describe_error(self.error_code).title


@dataclass(slots=True)
class ScriptedError:
    """A Twilio error that replaces the 201 response of "create a Message".

    `remaining` counts the create calls still to fail, and None fails every call.
    """

    code: int
    http_status: int
    message: str | None = None
    remaining: int | None = None
    retry_after_seconds: int | None = None


@dataclass(slots=True)
class RecipientScript:
    """The scripted outcome of every message sent to one recipient number.

    `callbacks` None means the configured default statuses.
    """

    callbacks: tuple[ScriptedCallback, ...] | None = None
    error: ScriptedError | None = None
    # Milliseconds between recording a message and responding to the create call, as when
    # Twilio has accepted a message but its response is slow or lost on the way.
    hold_response_ms: int = 0


@dataclass(slots=True)
class CallbackAttempt:
    """One status callback that the emulator posted, and its HTTP result.

    `http_status` is None when no response arrived, and then `error` contains the reason.
    """

    status: str
    url: str
    params: dict[str, str]
    signature: str
    sent_at: datetime
    http_status: int | None = None
    error: str | None = None


@dataclass(slots=True)
class MessageRecord:
    """One Message resource created through the emulator, with its current status."""

    sid: str
    account_sid: str
    to: str
    from_: str
    body: str
    num_media: int
    status_callback: str | None
    received_at: datetime
    status: str = "queued"
    date_sent: datetime | None = None
    date_updated: datetime | None = None
    error_code: int | None = None
    error_message: str | None = None
    callbacks: list[CallbackAttempt] = field(default_factory=list)

    def __post_init__(self) -> None:
        if self.date_updated is None:
            self.date_updated = self.received_at


@dataclass(frozen=True, slots=True)
class Rejection:
    """One "create a Message" request that the emulator rejected with an error."""

    to: str
    from_: str
    code: int
    http_status: int
    received_at: datetime


class EmulatorState:
    """The mutable state of one emulator: messages, rejections, scripts and delays."""

    def __init__(self, config: EmulatorConfig) -> None:
        self._config = config
        self.channel_install_sid = "XE" + uuid.uuid4().hex
        self.messages: dict[str, MessageRecord] = {}
        self.rejections: list[Rejection] = []
        self.scripts: dict[str, RecipientScript] = {}
        self.response_delay_ms = config.response_delay_ms
        self.callback_delay_ms = config.callback_delay_ms
        self._changed = asyncio.Event()

    def reset(self) -> None:
        """Forget messages, rejections and scripts, and restore the configured delays."""
        self.messages.clear()
        self.rejections.clear()
        self.scripts.clear()
        self.response_delay_ms = self._config.response_delay_ms
        self.callback_delay_ms = self._config.callback_delay_ms
        self.notify_changed()

    def notify_changed(self) -> None:
        """Wake every `wait_for` caller so that it checks its condition again."""
        self._changed.set()
        self._changed = asyncio.Event()

    async def wait_for(
        self, condition: Callable[[EmulatorState], bool], timeout_seconds: float
    ) -> None:
        """Wait until `condition(self)` is true.

        Raises TimeoutError when it is still false after `timeout_seconds`.
        """
        async with asyncio.timeout(timeout_seconds):
            while not condition(self):
                await self._changed.wait()

    def add_message(self, record: MessageRecord) -> None:
        """Store a newly created message."""
        self.messages[record.sid] = record
        self.notify_changed()

    def add_rejection(self, rejection: Rejection) -> None:
        """Store a create request that the emulator rejected with an error."""
        self.rejections.append(rejection)
        self.notify_changed()

    def set_script(self, to: str, script: RecipientScript) -> None:
        """Script the outcome of messages to `to`, with or without the whatsapp: prefix."""
        self.scripts[recipient_key(to)] = script
        self.notify_changed()

    def delete_script(self, to: str) -> bool:
        """Remove the script of `to` and return whether there was one."""
        removed = self.scripts.pop(recipient_key(to), None) is not None
        self.notify_changed()
        return removed

    def take_scripted_error(self, to: str) -> ScriptedError | None:
        """Return the scripted create error for `to`, counting this call against it."""
        script = self.scripts.get(recipient_key(to))
        if script is None or script.error is None:
            return None
        error = script.error
        if error.remaining is not None:
            error.remaining -= 1
            if error.remaining <= 0:
                script.error = None
        return error

    def response_hold_ms(self, to: str) -> int:
        """Return how long the response to a created message to `to` is held back."""
        script = self.scripts.get(recipient_key(to))
        return script.hold_response_ms if script is not None else 0

    def callbacks_for(self, to: str) -> tuple[ScriptedCallback, ...]:
        """Return the status callbacks to send for a new message to `to`."""
        script = self.scripts.get(recipient_key(to))
        if script is not None and script.callbacks is not None:
            return script.callbacks
        return tuple(
            ScriptedCallback(status=status) for status in self._config.default_callback_statuses
        )

    def apply_status(self, record: MessageRecord, callback: ScriptedCallback) -> None:
        """Move the message to the status that `callback` reports."""
        now = utc_now()
        record.status = callback.status
        record.date_updated = now
        if callback.status == "sent" and record.date_sent is None:
            record.date_sent = now
        if callback.status in ERROR_STATUSES and callback.error_code is not None:
            record.error_code = callback.error_code
            record.error_message = describe_error(callback.error_code).title
        self.notify_changed()

    def add_callback_attempt(self, record: MessageRecord, attempt: CallbackAttempt) -> None:
        """Store the result of a status callback posted for `record`."""
        record.callbacks.append(attempt)
        self.notify_changed()
