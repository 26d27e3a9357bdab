"""Notifier that emits each event as a Socket.IO `Profile` event to one hub, reconnecting."""

import asyncio
import contextlib
import logging
import time
from urllib.parse import urlunsplit

import aiohttp
import socketio
from socketio.exceptions import BadNamespaceError
from socketio.exceptions import ConnectionError as SocketIOConnectionError

from adapters.notification.buffer import (
    FrameBuffer,
    backoff_delay,
    check_backoff,
    describe_error,
)
from adapters.notification.frames import event_to_frame
from adapters.notification.lifecycle import BufferedNotifier, log_stopped
from adapters.notification.websocket import parse_hub_url, redact_url
from domain.events import Event

logger = logging.getLogger(__name__)

# The event name and payload keys that existing hubs relay to the browser, which joins
# the room named by "Id".
PROFILE_EVENT = "Profile"
ROOM_SUFFIX = "_Verification"

# Failures after which the next connection attempt may succeed: the Socket.IO
# handshake failing or timing out, and socket errors from aiohttp.
_CONNECTION_ERRORS = (SocketIOConnectionError, aiohttp.ClientError, OSError, TimeoutError)


def profile_payload(event: Event) -> dict[str, object]:
    """Return the `Profile` payload of `event`: `Id`, `Status` and `Message`.

    `Id` is the verification id followed by `_Verification`, the room the browser
    waiting for that verification has joined. `Status` is the frame's `ok` and
    `Message` the frame's `message`, so the text matches the other notifiers' frames.
    """
    frame = event_to_frame(event)
    return {
        "Id": f"{frame['verification_id']}{ROOM_SUFFIX}",
        "Status": frame["ok"],
        "Message": frame["message"],
    }


class SocketIONotifier(BufferedNotifier[dict[str, object]]):
    """A `Notifier` that emits each event as a Socket.IO `Profile` event to one hub.

    `url` is the hub's http:// or https:// address. As with the JavaScript client, a
    path names the namespace (`http://hub:3000/events` uses namespace `/events`), and
    no path or `/` is the default namespace. The Engine.IO endpoint is
    `socketio_path`, `/socket.io/` unless changed.

    `publish` converts the event with `profile_payload` and appends it to a buffer of
    `buffer_size` payloads without touching the network. On a full buffer each new
    payload drops the oldest one. Drops are counted in `frames_dropped` and logged at
    most once per `drop_log_interval_seconds`, plus one line for the rest when a
    connection opens or the notifier stops.

    A background task, run between `start()` and `stop()` or inside `async with`,
    connects with `socketio.AsyncClient` over aiohttp (long polling, then an upgrade
    to WebSocket), emits the payloads in publish order, and after a lost connection
    connects again with exponential backoff and jitter. The client's own reconnection
    is turned off so that this task alone decides when to try.

    Payloads published while the hub is away wait in the buffer and are emitted after
    the next connection opens. An emit that returned has been queued in the client,
    not confirmed by the hub, because hubs of this contract send no acknowledgement:
    payloads emitted just before a connection is lost may be lost with it. Use one
    instance from one event loop.
    """

    task_name = "socketio-notifier"

    def __init__(
        self,
        url: str,
        buffer_size: int = 1000,
        *,
        socketio_path: str = "socket.io",
        initial_backoff_seconds: float = 0.1,
        max_backoff_seconds: float = 5.0,
        connect_timeout_seconds: float = 10.0,
        close_timeout_seconds: float = 5.0,
        drop_log_interval_seconds: float = 10.0,
    ) -> None:
        super().__init__()
        self._connect_url, self._namespace = _split_url(url)
        self._log_url = redact_url(url)
        check_backoff(initial_backoff_seconds, max_backoff_seconds)
        for name, value in (
            ("connect_timeout_seconds", connect_timeout_seconds),
            ("close_timeout_seconds", close_timeout_seconds),
        ):
            if not value > 0:
                raise ValueError(f"invalid {name} {value}: use a number of seconds above 0")
        self._buffer: FrameBuffer[dict[str, object]] = FrameBuffer(
            buffer_size,
            notifier="socketio",
            target=self._log_url,
            drop_log_interval_seconds=drop_log_interval_seconds,
        )
        self._socketio_path = socketio_path
        self._initial_backoff_seconds = initial_backoff_seconds
        self._max_backoff_seconds = max_backoff_seconds
        self._connect_timeout_seconds = connect_timeout_seconds
        self._close_timeout_seconds = close_timeout_seconds

        self._wakeup = asyncio.Event()
        self._connected = False
        self._frames_sent = 0
        self._connection_failures = 0

    @property
    def url(self) -> str:
        """The hub URL without credentials, query or fragment, as it appears in logs."""
        return self._log_url

    @property
    def namespace(self) -> str:
        """The Socket.IO namespace the events are emitted on."""
        return self._namespace

    @property
    def connected(self) -> bool:
        """True while the namespace is connected."""
        return self._connected

    @property
    def frames_sent(self) -> int:
        """Number of payloads handed to a connected client."""
        return self._frames_sent

    @property
    def connection_failures(self) -> int:
        """Number of failed connection attempts and lost connections since construction."""
        return self._connection_failures

    async def publish(self, event: Event) -> None:
        """Buffer the `Profile` payload of `event`, dropping the oldest one when full.

        Returns at once. After `stop()` the payload is dropped and counted.
        Raises `ValueError` only for an event that `event_to_frame` rejects.
        """
        self._enqueue(profile_payload(event))
        self._wakeup.set()

    @property
    def target(self) -> str:
        return self._log_url

    def _started_fields(self) -> dict[str, object]:
        return {
            "notifier": "socketio",
            "url": self._log_url,
            "namespace": self._namespace,
            "buffer_size": self._buffer.capacity,
        }

    async def stop(self, drain_timeout_seconds: float = 5.0) -> None:
        """Emit what is buffered within `drain_timeout_seconds`, then disconnect and end the task.

        Payloads never emitted count as dropped, and the log line names them. Calling
        `stop()` again does nothing.
        """
        if self._stopped:
            return
        task = self._task
        if task is not None:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._buffer.wait_empty(), drain_timeout_seconds)
        self._stopped = True
        self._stop_requested.set()
        self._wakeup.set()
        if task is not None:
            done, _ = await asyncio.wait([task], timeout=self._close_timeout_seconds)
            if not done:
                logger.warning(
                    "notifier_close_timed_out",
                    extra={"notifier": "socketio", "url": self._log_url},
                )
                task.cancel()
                await asyncio.wait([task])
        self._buffer.log_drops()

        unsent = self._buffer.drop_all()
        extra = {
            "notifier": "socketio",
            "url": self._log_url,
            "frames_unsent": unsent,
            "frames_sent": self._frames_sent,
        }
        log_stopped(logger, bool(unsent), extra)

    async def _run(self) -> None:
        # One aiohttp session for every connection, closed with the task. trust_env=False
        # keeps proxy variables from sending the events anywhere but the configured hub.
        timeout = aiohttp.ClientTimeout(total=None, sock_connect=self._connect_timeout_seconds)
        async with aiohttp.ClientSession(trust_env=False, timeout=timeout) as session:
            failures_in_a_row = 0
            while not self._stop_requested.is_set():
                try:
                    failures_in_a_row = await self._connect_and_emit(session, failures_in_a_row)
                except Exception:
                    # A bug here must not end the task, or publish would buffer forever.
                    failures_in_a_row += 1
                    self._connection_failures += 1
                    logger.exception("notifier_loop_failed", extra={"url": self._log_url})
                if self._stop_requested.is_set():
                    break
                delay = backoff_delay(
                    failures_in_a_row, self._initial_backoff_seconds, self._max_backoff_seconds
                )
                logger.debug(
                    "notifier_reconnect_scheduled",
                    extra={"url": self._log_url, "attempt": failures_in_a_row, "delay": delay},
                )
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stop_requested.wait(), delay)

    async def _connect_and_emit(
        self, session: aiohttp.ClientSession, failures_in_a_row: int
    ) -> int:
        """Run one connection from opening to loss, and return the new failure count."""
        client = socketio.AsyncClient(
            reconnection=False,
            handle_sigint=False,
            http_session=session,
            request_timeout=self._connect_timeout_seconds,
        )
        lost = asyncio.Event()

        def on_disconnect(*_reason: object) -> None:
            lost.set()
            self._wakeup.set()

        client.on("disconnect", on_disconnect, namespace=self._namespace)
        try:
            async with asyncio.timeout(self._connect_timeout_seconds):
                await client.connect(
                    self._connect_url,
                    namespaces=[self._namespace],
                    socketio_path=self._socketio_path,
                    wait_timeout=self._connect_timeout_seconds,
                )
        except _CONNECTION_ERRORS as connect_error:
            self._connection_failures += 1
            logger.warning(
                "notifier_connect_failed",
                extra={
                    "notifier": "socketio",
                    "url": self._log_url,
                    "attempt": failures_in_a_row + 1,
                    "connection_failures": self._connection_failures,
                    "error": describe_error(connect_error),
                },
            )
            await self._disconnect(client)
            return failures_in_a_row + 1

        self._connected = True
        opened_at = time.monotonic()
        sent_before = self._frames_sent
        logger.info(
            "notifier_connected",
            extra={
                "notifier": "socketio",
                "url": self._log_url,
                "namespace": self._namespace,
                "after_failures": failures_in_a_row,
                "frames_buffered": len(self._buffer),
            },
        )
        self._buffer.log_drops()
        try:
            await self._emit_until_lost(client, lost)
        finally:
            self._connected = False
            await self._disconnect(client)
        if self._stop_requested.is_set():
            return 0

        self._connection_failures += 1
        logger.warning(
            "notifier_disconnected",
            extra={
                "notifier": "socketio",
                "url": self._log_url,
                "frames_buffered": len(self._buffer),
                "connection_failures": self._connection_failures,
            },
        )
        # A hub that accepts and then drops every connection gets growing delays, while
        # a connection that worked for a while starts the backoff again from the bottom.
        lived_seconds = time.monotonic() - opened_at
        if self._frames_sent > sent_before or lived_seconds >= self._max_backoff_seconds:
            return 1
        return failures_in_a_row + 1

    async def _emit_until_lost(self, client: socketio.AsyncClient, lost: asyncio.Event) -> None:
        while not self._stop_requested.is_set() and not lost.is_set():
            if not len(self._buffer):
                self._wakeup.clear()
                # The stop and disconnect handlers set the wakeup event as well.
                await self._wakeup.wait()
                continue
            payload = self._buffer.first()
            try:
                await client.emit(PROFILE_EVENT, payload, namespace=self._namespace)
            except BadNamespaceError:
                # The namespace went away between the check and the emit: the
                # disconnect handler runs next, and the payload stays buffered.
                return
            self._buffer.remove_first()
            self._frames_sent += 1

    async def _disconnect(self, client: socketio.AsyncClient) -> None:
        try:
            async with asyncio.timeout(self._close_timeout_seconds):
                await client.disconnect()
        except (*_CONNECTION_ERRORS, ValueError) as error:
            logger.debug(
                "notifier_disconnect_failed",
                extra={"url": self._log_url, "error": describe_error(error)},
            )


def _split_url(url: str) -> tuple[str, str]:
    """Return the URL to connect to, without path, and the namespace the path names."""
    parts = parse_hub_url(
        url,
        "Socket.IO",
        ("http", "https"),
        "use http:// or https:// followed by a host, an optional port and an optional "
        "namespace path, for example http://localhost:3000 or https://hub.example.com/events",
    )
    namespace = parts.path.rstrip("/") or "/"
    connect_url = urlunsplit((parts.scheme, parts.netloc, "", parts.query, ""))
    return connect_url, namespace
