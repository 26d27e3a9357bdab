"""Notifier that sends event frames as JSON text to one WebSocket peer, reconnecting as needed."""

import asyncio
import contextlib
import json
import logging
import random
import time
from collections import deque
from urllib.parse import SplitResult, urlsplit

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import WebSocketException

from adapters.notification.frames import event_to_frame
from adapters.notification.lifecycle import BackgroundNotifier, log_stopped
from domain.events import Event

logger = logging.getLogger(__name__)

# The sender pings the peer to confirm receipt after this many frames and whenever the
# buffer runs empty, so at most this many frames are sent again after a lost connection.
FRAMES_PER_CONFIRMATION = 100

# Errors after which the next connection attempt may succeed: refused or reset TCP
# connections, TLS and DNS failures (all OSError), timeouts, failed handshakes and
# closed connections (WebSocketException).
_CONNECTION_ERRORS = (OSError, TimeoutError, WebSocketException)


class WebSocketNotifier(BackgroundNotifier):
    """A `Notifier` that sends each event as a JSON text frame to one WebSocket peer.

    `publish` converts the event with `event_to_frame` and appends the frame to an
    in-memory buffer without touching the network. When `buffer_size` frames are
    waiting, each new frame drops the oldest waiting one. Drops are counted in
    `frames_dropped` and logged in one line per `drop_log_interval_seconds` at most,
    plus one line for the rest when a connection opens or the notifier stops.

    A background task, run between `start()` and `stop()` or inside `async with`,
    connects to `url`, sends the frames in publish order and reconnects after a lost
    connection, with exponential backoff and jitter from `initial_backoff_seconds`
    up to `max_backoff_seconds`.

    Delivery is at least once while the task runs. After every
    `FRAMES_PER_CONFIRMATION` frames, and whenever the buffer runs empty, the task
    sends a WebSocket ping, and the peer's pong confirms that its WebSocket layer has
    read every earlier frame. It does not confirm that the peer's application handled
    them. Frames not confirmed when the connection is lost are sent again, in order,
    on the next connection, so the peer may receive up to `FRAMES_PER_CONFIRMATION`
    frames twice around a reconnect. A re-sent frame is the same text as the first
    copy, so a peer can de-duplicate on the frame text where a duplicate matters.

    Unconfirmed frames are kept apart from the buffer and are not dropped when it is
    full, so up to `buffer_size + FRAMES_PER_CONFIRMATION` frames are held in memory.
    Frames still buffered or unconfirmed when `stop()` gives up are lost, and
    `stop()` logs how many.

    Messages from the peer are read and discarded. Use one instance from one event
    loop, because the buffer and its events are not thread-safe.
    """

    task_name = "websocket-notifier"

    def __init__(
        self,
        url: str,
        buffer_size: int = 1000,
        *,
        initial_backoff_seconds: float = 0.1,
        max_backoff_seconds: float = 5.0,
        open_timeout_seconds: float = 10.0,
        confirm_timeout_seconds: float = 10.0,
        close_timeout_seconds: float = 5.0,
        drop_log_interval_seconds: float = 10.0,
    ) -> None:
        _check_url(url)
        if buffer_size < 1:
            raise ValueError(f"invalid buffer_size {buffer_size}: use 1 or more frames")
        _check_positive("initial_backoff_seconds", initial_backoff_seconds)
        _check_positive("open_timeout_seconds", open_timeout_seconds)
        _check_positive("confirm_timeout_seconds", confirm_timeout_seconds)
        _check_positive("close_timeout_seconds", close_timeout_seconds)
        _check_positive("drop_log_interval_seconds", drop_log_interval_seconds)
        if max_backoff_seconds < initial_backoff_seconds:
            raise ValueError(
                f"invalid max_backoff_seconds {max_backoff_seconds}: use a value of at "
                f"least initial_backoff_seconds ({initial_backoff_seconds})"
            )

        super().__init__()
        self._url = url
        self._log_url = redact_url(url)
        self._buffer_size = buffer_size
        self._initial_backoff_seconds = initial_backoff_seconds
        self._max_backoff_seconds = max_backoff_seconds
        self._open_timeout_seconds = open_timeout_seconds
        self._confirm_timeout_seconds = confirm_timeout_seconds
        self._close_timeout_seconds = close_timeout_seconds
        self._drop_log_interval_seconds = drop_log_interval_seconds

        self._pending: deque[str] = deque()
        # Frames written to the current or a lost connection and not yet confirmed by a pong.
        self._unconfirmed: list[str] = []
        self._wakeup = asyncio.Event()
        self._flushed = asyncio.Event()
        self._flushed.set()

        self._connected = False
        self._frames_sent = 0
        self._frames_confirmed = 0
        self._frames_dropped = 0
        self._connection_failures = 0
        self._drops_not_logged = 0
        self._last_drop_log_at: float | None = None

    @property
    def url(self) -> str:
        """The peer URL without credentials, query or fragment, as it appears in logs."""
        return self._log_url

    @property
    def connected(self) -> bool:
        """True while a WebSocket connection to the peer is open."""
        return self._connected

    @property
    def frames_sent(self) -> int:
        """Number of frames written to a connection, counting each re-send again."""
        return self._frames_sent

    @property
    def frames_confirmed(self) -> int:
        """Number of frames whose receipt the peer confirmed with a pong."""
        return self._frames_confirmed

    @property
    def frames_dropped(self) -> int:
        """Number of frames dropped because the buffer was full or the notifier stopped."""
        return self._frames_dropped

    @property
    def frames_buffered(self) -> int:
        """Number of frames waiting to be sent or to be confirmed."""
        return len(self._pending) + len(self._unconfirmed)

    @property
    def connection_failures(self) -> int:
        """Number of failed connection attempts and lost connections since construction."""
        return self._connection_failures

    async def publish(self, event: Event) -> None:
        """Buffer the frame of `event` for sending, dropping the oldest frame when full.

        Returns at once. After `stop()` the frame is dropped and counted as dropped.
        Raises `ValueError` only for an event that `event_to_frame` rejects.
        """
        frame = json.dumps(event_to_frame(event), ensure_ascii=False, separators=(",", ":"))
        if self._stopped:
            self._record_drop()
            return

        if len(self._pending) >= self._buffer_size:
            self._pending.popleft()
            self._record_drop()
        self._pending.append(frame)
        self._flushed.clear()
        self._wakeup.set()

    @property
    def target(self) -> str:
        return self._log_url

    def _started_fields(self) -> dict[str, object]:
        return {"notifier": "websocket", "url": self._log_url, "buffer_size": self._buffer_size}

    async def stop(self, drain_timeout_seconds: float = 5.0) -> None:
        """Send what is buffered within `drain_timeout_seconds`, then close and end the task.

        Closing waits up to `close_timeout_seconds` for the task to finish, then cancels
        it, and the close handshake after cancellation also waits up to
        `close_timeout_seconds`. Frames never sent count as dropped. The log line names
        them and the frames sent but not confirmed. Calling `stop()` again does nothing.
        """
        if self._stopped:
            return
        task = self._task
        if task is not None:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._flushed.wait(), drain_timeout_seconds)
        self._stopped = True
        self._stop_requested.set()
        self._wakeup.set()

        if task is not None:
            await self._join(task)
        self._log_drops()

        # Unconfirmed frames were written and may have arrived, so only never-sent
        # frames count as dropped.
        unsent = len(self._pending)
        self._frames_dropped += unsent
        extra = {
            "url": self._log_url,
            "frames_unsent": unsent,
            "frames_unconfirmed": len(self._unconfirmed),
            "frames_sent": self._frames_sent,
        }
        log_stopped(logger, bool(unsent or self._unconfirmed), extra)

    async def _join(self, task: asyncio.Task[None]) -> None:
        done, _ = await asyncio.wait([task], timeout=self._close_timeout_seconds)
        if done:
            return
        logger.warning(
            "notifier_close_timed_out",
            extra={"url": self._log_url, "close_timeout_seconds": self._close_timeout_seconds},
        )
        task.cancel()
        await asyncio.wait([task])

    async def _run(self) -> None:
        failures_in_a_row = 0
        while not self._stop_requested.is_set():
            try:
                failures_in_a_row = await self._connect_and_send(failures_in_a_row)
            except Exception:
                # A bug here must not end the task, or publish would buffer forever.
                failures_in_a_row += 1
                self._connection_failures += 1
                logger.exception("notifier_loop_failed", extra={"url": self._log_url})
            if self._stop_requested.is_set():
                break

            delay = self._backoff_delay(failures_in_a_row)
            logger.debug(
                "notifier_reconnect_scheduled",
                extra={"url": self._log_url, "attempt": failures_in_a_row, "delay": delay},
            )
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop_requested.wait(), delay)

    async def _connect_and_send(self, failures_in_a_row: int) -> int:
        """Run one connection from opening to loss, and return the new failure count."""
        try:
            connection = await connect(
                self._url,
                open_timeout=self._open_timeout_seconds,
                close_timeout=self._close_timeout_seconds,
            )
        except _CONNECTION_ERRORS as connect_error:
            self._connection_failures += 1
            logger.warning(
                "notifier_connect_failed",
                extra={
                    "url": self._log_url,
                    "attempt": failures_in_a_row + 1,
                    "connection_failures": self._connection_failures,
                    "error": _describe(connect_error),
                },
            )
            return failures_in_a_row + 1

        self._connected = True
        opened_at = time.monotonic()
        confirmed_before = self._frames_confirmed
        logger.info(
            "notifier_connected",
            extra={
                "url": self._log_url,
                "after_failures": failures_in_a_row,
                "frames_to_resend": len(self._unconfirmed),
                "frames_buffered": len(self._pending),
            },
        )
        self._log_drops()

        lost_error: BaseException | None = None
        try:
            await self._send_until_closed(connection)
        except _CONNECTION_ERRORS as error:
            lost_error = error
        finally:
            self._connected = False
            await connection.close()
        if self._stop_requested.is_set():
            return 0

        self._connection_failures += 1
        logger.warning(
            "notifier_disconnected",
            extra={
                "url": self._log_url,
                "close_code": connection.close_code,
                "close_reason": connection.close_reason,
                "error": None if lost_error is None else _describe(lost_error),
                "frames_to_resend": len(self._unconfirmed),
                "connection_failures": self._connection_failures,
            },
        )
        # A peer that accepts and then drops every connection gets growing delays, while
        # a connection that worked for a while starts the backoff again from the bottom.
        lived_seconds = time.monotonic() - opened_at
        if self._frames_confirmed > confirmed_before or lived_seconds >= self._max_backoff_seconds:
            return 1
        return failures_in_a_row + 1

    async def _send_until_closed(self, connection: ClientConnection) -> None:
        """Send buffered frames until the connection closes or `stop()` is requested."""
        reader = asyncio.create_task(self._discard_incoming(connection))
        try:
            for frame in self._unconfirmed:
                await connection.send(frame)
                self._frames_sent += 1

            while not self._stop_requested.is_set() and not reader.done():
                if self._pending:
                    await self._send_next(connection)
                    continue

                await self._confirm(connection)
                # New frames may have arrived while the confirmation was awaited.
                if not self._pending:
                    self._flushed.set()
                    self._wakeup.clear()
                    await self._wakeup.wait()
        finally:
            reader.cancel()
            try:
                await asyncio.wait([reader])
            finally:
                if reader.done() and not reader.cancelled():
                    # Retrieving the exception keeps asyncio from logging it as never
                    # retrieved. The caller logs the close code and reason instead.
                    reader.exception()

    async def _send_next(self, connection: ClientConnection) -> None:
        # The frame joins the unconfirmed list before the write, so a write that fails
        # halfway leaves it there to be sent again.
        frame = self._pending.popleft()
        self._unconfirmed.append(frame)
        await connection.send(frame)
        self._frames_sent += 1
        if len(self._unconfirmed) >= FRAMES_PER_CONFIRMATION:
            await self._confirm(connection)

    async def _confirm(self, connection: ClientConnection) -> None:
        """Wait until the peer has read every frame sent so far on `connection`.

        The websockets 17 docstring of `ping()` describes it as "a check that the remote
        endpoint received all messages up to this point". A peer reads frames in order,
        so its pong comes only after it has read every earlier frame.
        """
        if not self._unconfirmed:
            return
        pong = await connection.ping()
        async with asyncio.timeout(self._confirm_timeout_seconds):
            await pong
        self._frames_confirmed += len(self._unconfirmed)
        self._unconfirmed.clear()

    async def _discard_incoming(self, connection: ClientConnection) -> None:
        # Reading keeps the receive buffer from filling, which would stop websockets
        # from reading pongs and close frames too.
        try:
            async for _message in connection:
                logger.debug("notifier_incoming_message_ignored", extra={"url": self._log_url})
        finally:
            self._wakeup.set()

    def _backoff_delay(self, failures_in_a_row: int) -> float:
        # Capping the exponent keeps 2 ** n finite after a long outage.
        exponent = min(max(failures_in_a_row - 1, 0), 30)
        ceiling = min(self._max_backoff_seconds, self._initial_backoff_seconds * 2.0**exponent)
        # Jitter spreads the reconnects of many instances after the peer restarts.
        return ceiling / 2 + random.uniform(0, ceiling / 2)

    def _record_drop(self) -> None:
        self._frames_dropped += 1
        self._drops_not_logged += 1
        now = time.monotonic()
        if (
            self._last_drop_log_at is None
            or now - self._last_drop_log_at >= self._drop_log_interval_seconds
        ):
            self._log_drops()

    def _log_drops(self) -> None:
        """Log the drops counted since the last drop log line, if any."""
        if not self._drops_not_logged:
            return
        logger.warning(
            "notifier_frames_dropped",
            extra={
                "url": self._log_url,
                "frames_dropped": self._drops_not_logged,
                "frames_dropped_total": self._frames_dropped,
                "buffer_size": self._buffer_size,
            },
        )
        self._drops_not_logged = 0
        self._last_drop_log_at = time.monotonic()


def redact_url(url: str) -> str:
    """Return `url` without user name, password, query and fragment, for logs and errors."""
    try:
        parts = urlsplit(url)
    except ValueError:
        parts = None
    if parts is None or not parts.netloc:
        # Without "//" there is no authority to parse, so cut any "user:password@" prefix.
        return url.rpartition("@")[2].partition("?")[0].partition("#")[0]
    host_and_port = parts.netloc.rpartition("@")[2]
    return parts.scheme + "://" + host_and_port + parts.path


def parse_hub_url(url: str, kind: str, schemes: tuple[str, str], fix: str) -> SplitResult:
    """Return the parts of a `kind` hub URL, or raise `ValueError` quoting it without secrets.

    `fix` ends the message, saying what a valid URL looks like.
    """
    try:
        parts = urlsplit(url)
        valid = (
            parts.scheme in schemes
            and bool(parts.hostname)
            and (parts.port is None or parts.port > 0)
        )
    except ValueError:
        # urlsplit and .port raise ValueError for bad IPv6 brackets and ports that
        # are not numbers from 0 to 65535.
        valid = False
    if not valid:
        raise ValueError(f"invalid {kind} URL {redact_url(url)!r}: {fix}")
    return parts


def _check_url(url: str) -> None:
    parse_hub_url(
        url,
        "WebSocket",
        ("ws", "wss"),
        "use ws:// or wss:// followed by a host and an optional port and path, "
        "for example ws://localhost:8765/events",
    )


def _check_positive(name: str, value: float) -> None:
    if not value > 0:
        raise ValueError(f"invalid {name} {value}: use a number of seconds above 0")


def _describe(error: BaseException) -> str:
    text = str(error)
    return type(error).__name__ + (": " + text if text else "")
