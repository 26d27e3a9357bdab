"""Integration tests of WebSocketNotifier against a real websockets server on 127.0.0.1."""

import asyncio
import contextlib
import itertools
import json
import logging
import socket
from collections.abc import AsyncIterator, Callable, Iterator
from datetime import UTC, datetime

import pytest
from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.exceptions import ConnectionClosedError

from adapters.notification.frames import event_to_frame
from adapters.notification.websocket import FRAMES_PER_CONFIRMATION, WebSocketNotifier
from domain.delivery import DeliveryStatus
from domain.events import CodeSent, DeliveryStatusChanged, Event, SendFailed, SendFailureReason

TIMEOUT_SECONDS = 10.0
NOTIFIER_LOGGER = "adapters.notification.websocket"


class FrameServer:
    """A websockets server on 127.0.0.1 that records the JSON frames of each connection."""

    def __init__(self) -> None:
        self.port = 0
        self.connections: list[list[dict[str, object]]] = []
        self._server: Server | None = None
        self._changed = asyncio.Condition()
        self._close_at_frame: int | None = None
        self._crash_on_close = False
        self._close_triggered = asyncio.Event()
        self.stall_next_connection = False

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/events"

    @property
    def frames(self) -> list[dict[str, object]]:
        return [frame for connection in self.connections for frame in connection]

    async def start(self, port: int = 0) -> None:
        self._server = await serve(self._handle, "127.0.0.1", port)
        self.port = next(iter(self._server.sockets)).getsockname()[1]

    async def stop(self) -> None:
        """Close the server and its connections with the close handshake."""
        assert self._server is not None
        self._server.close()
        await self._server.wait_closed()
        self._server = None

    def close_after(self, count: int, *, crash: bool = False) -> None:
        """Close the server from inside the handler once `count` frames have arrived.

        Closing from the handler, not from the test, stops the stream while the
        notifier is still sending. With `crash`, every connection is dropped without a
        close handshake, as a killed process would drop it.
        """
        self._close_at_frame = count
        self._crash_on_close = crash
        self._close_triggered.clear()

    async def wait_closed(self) -> None:
        """Wait until the close that `close_after` set up has finished."""
        async with asyncio.timeout(TIMEOUT_SECONDS):
            await self._close_triggered.wait()
            assert self._server is not None
            await self._server.wait_closed()
        self._server = None

    def _close_now(self) -> None:
        assert self._server is not None
        if self._crash_on_close:
            for connection in list(self._server.connections):
                connection.transport.abort()
        self._server.close()
        self._close_triggered.set()

    async def wait_for_frames(self, count: int) -> list[dict[str, object]]:
        await self._wait_until(lambda: len(self.frames) >= count)
        return self.frames

    async def wait_for_ids(self, ids: set[int]) -> None:
        await self._wait_until(lambda: ids <= {frame_number(frame) for frame in self.frames})

    async def _wait_until(self, condition: Callable[[], bool]) -> None:
        async with asyncio.timeout(TIMEOUT_SECONDS), self._changed:
            await self._changed.wait_for(condition)

    async def _handle(self, connection: ServerConnection) -> None:
        frames: list[dict[str, object]] = []
        async with self._changed:
            self.connections.append(frames)
            connection_count = len(self.connections)
            self._changed.notify_all()
        if self.stall_next_connection:
            # A peer that stops reading sends no pongs, so nothing gets confirmed.
            # With reading paused the server cannot see the client leave, so the
            # connection is dropped once the client has opened the next one.
            self.stall_next_connection = False
            connection.transport.pause_reading()
            await self._wait_until(lambda: len(self.connections) > connection_count)
            connection.transport.abort()
            return
        with contextlib.suppress(ConnectionClosedError):
            await self._record_frames(connection, frames)

    async def _record_frames(
        self, connection: ServerConnection, frames: list[dict[str, object]]
    ) -> None:
        async for message in connection:
            async with self._changed:
                frames.append(json.loads(message))
                self._changed.notify_all()
            if self._close_at_frame is not None and len(self.frames) >= self._close_at_frame:
                self._close_at_frame = None
                self._close_now()


class LogWatcher(logging.Handler):
    """Collects the notifier's log records and wakes waiters on each one."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []
        self._changed = asyncio.Event()

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)
        self._changed.set()

    def named(self, message: str) -> list[logging.LogRecord]:
        return [record for record in self.records if record.getMessage() == message]

    async def wait_for(self, message: str) -> logging.LogRecord:
        async with asyncio.timeout(TIMEOUT_SECONDS):
            while not self.named(message):
                self._changed.clear()
                await self._changed.wait()
        return self.named(message)[0]


@pytest.fixture
async def server() -> AsyncIterator[FrameServer]:
    frame_server = FrameServer()
    await frame_server.start()
    yield frame_server
    if frame_server._server is not None:
        await frame_server.stop()


@pytest.fixture
def log_watcher() -> Iterator[LogWatcher]:
    watcher = LogWatcher()
    notifier_logger = logging.getLogger(NOTIFIER_LOGGER)
    previous_level = notifier_logger.level
    notifier_logger.addHandler(watcher)
    notifier_logger.setLevel(logging.DEBUG)
    yield watcher
    notifier_logger.removeHandler(watcher)
    notifier_logger.setLevel(previous_level)


def fast_notifier(url: str, buffer_size: int = 1000) -> WebSocketNotifier:
    return WebSocketNotifier(
        url,
        buffer_size,
        initial_backoff_seconds=0.01,
        max_backoff_seconds=0.1,
        close_timeout_seconds=2.0,
    )


def numbered_event(number: int) -> CodeSent:
    return CodeSent(f"ver-{number}", "+593******567", f"SM{number}", datetime.now(UTC))


def frame_number(frame: dict[str, object]) -> int:
    verification_id = frame["verification_id"]
    assert isinstance(verification_id, str)
    return int(verification_id.removeprefix("ver-"))


def unused_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


def notifier_tasks() -> list[asyncio.Task[object]]:
    return [task for task in asyncio.all_tasks() if task.get_name() == "websocket-notifier"]


async def publish_numbered(notifier: WebSocketNotifier, numbers: range) -> None:
    for number in numbers:
        # publish must return at once, so a short bound catches any network wait.
        await asyncio.wait_for(notifier.publish(numbered_event(number)), 0.5)


def assert_at_least_once_in_order(server: FrameServer, total: int) -> None:
    """Check that frames 0..total-1 all arrived, in order on each connection, and that
    a reconnect re-sent at most one confirmation window of frames."""
    connections = [
        [frame_number(frame) for frame in frames] for frames in server.connections if frames
    ]
    received = {number for numbers in connections for number in numbers}
    assert received == set(range(total))
    assert connections[0][0] == 0
    for numbers in connections:
        assert numbers == list(range(numbers[0], numbers[0] + len(numbers)))
    for previous, current in itertools.pairwise(connections):
        assert current[0] <= previous[-1] + 1, "frames skipped across the reconnect"
        assert previous[-1] + 1 - current[0] <= FRAMES_PER_CONFIRMATION


async def test_notifier_sends_frames_in_order_as_json(server: FrameServer) -> None:
    events: list[Event] = [
        numbered_event(0),
        SendFailed(
            "ver-1",
            SendFailureReason.REJECTED_BY_PROVIDER,
            "Not a WhatsApp user",
            datetime.now(UTC),
            "63003",
        ),
        DeliveryStatusChanged("ver-2", "SM2", DeliveryStatus.DELIVERED, datetime.now(UTC)),
    ]
    notifier = fast_notifier(server.url)

    async with notifier:
        for event in events:
            await notifier.publish(event)
        frames = await server.wait_for_frames(len(events))

        assert notifier.connected is True

    assert frames == [event_to_frame(event) for event in events]
    assert notifier.connected is False


async def test_notifier_keeps_order_of_many_frames(server: FrameServer) -> None:
    total = 3 * FRAMES_PER_CONFIRMATION + 17

    async with fast_notifier(server.url) as notifier:
        await publish_numbered(notifier, range(total))
        frames = await server.wait_for_frames(total)

    assert [frame_number(frame) for frame in frames] == list(range(total))
    assert len(server.connections) == 1
    assert notifier.frames_sent == total
    assert notifier.frames_confirmed == total


async def test_publish_without_peer_buffers_until_server_starts(log_watcher: LogWatcher) -> None:
    port = unused_port()
    server = FrameServer()
    notifier = fast_notifier(f"ws://127.0.0.1:{port}/events")
    notifier.start()

    await publish_numbered(notifier, range(10))
    await log_watcher.wait_for("notifier_connect_failed")

    assert notifier.connected is False
    assert notifier.connection_failures >= 1
    assert notifier.frames_buffered == 10

    await server.start(port)
    try:
        frames = await server.wait_for_frames(10)
        assert [frame_number(frame) for frame in frames] == list(range(10))
        assert len(log_watcher.named("notifier_connected")) == 1
    finally:
        await notifier.stop(drain_timeout_seconds=2.0)
        await server.stop()


async def test_notifier_resends_after_server_restart(server: FrameServer) -> None:
    # Fewer frames than the buffer holds, so the outage drops none.
    total = 600
    notifier = fast_notifier(server.url)
    notifier.start()

    try:
        server.close_after(FRAMES_PER_CONFIRMATION // 2)
        await publish_numbered(notifier, range(total))
        await server.wait_closed()
        await server.start(server.port)
        await server.wait_for_ids(set(range(total)))
    finally:
        await notifier.stop(drain_timeout_seconds=2.0)

    assert len([frames for frames in server.connections if frames]) >= 2
    assert_at_least_once_in_order(server, total)
    assert notifier.frames_dropped == 0


async def test_notifier_resends_unconfirmed_frames_after_crash(server: FrameServer) -> None:
    # Fewer frames than the buffer holds, so the outage drops none.
    total = 600
    notifier = fast_notifier(server.url)
    # Publishing before start() makes the notifier send in full confirmation windows.
    await publish_numbered(notifier, range(total))
    server.close_after(FRAMES_PER_CONFIRMATION // 2, crash=True)
    notifier.start()

    try:
        await server.wait_closed()
        await publish_numbered(notifier, range(total, total + 10))
        await server.start(server.port)
        await server.wait_for_ids(set(range(total + 10)))
    finally:
        await notifier.stop(drain_timeout_seconds=2.0)

    assert len([frames for frames in server.connections if frames]) >= 2
    assert_at_least_once_in_order(server, total + 10)
    assert notifier.frames_dropped == 0


async def test_notifier_resends_frames_peer_did_not_confirm(server: FrameServer) -> None:
    total = 300
    server.stall_next_connection = True
    notifier = WebSocketNotifier(
        server.url,
        initial_backoff_seconds=0.01,
        max_backoff_seconds=0.1,
        confirm_timeout_seconds=0.2,
        close_timeout_seconds=0.2,
    )
    await publish_numbered(notifier, range(total))

    async with notifier:
        await server.wait_for_ids(set(range(total)))

    assert server.connections[0] == []
    assert [frame_number(frame) for frame in server.connections[1]] == list(range(total))
    assert notifier.frames_sent > total
    assert notifier.frames_confirmed == total
    assert notifier.connection_failures == 1


async def test_full_buffer_drops_oldest_and_logs_once(
    server: FrameServer, log_watcher: LogWatcher
) -> None:
    notifier = WebSocketNotifier(server.url, buffer_size=5, drop_log_interval_seconds=60.0)

    await publish_numbered(notifier, range(1000))

    assert notifier.frames_dropped == 995
    assert notifier.frames_buffered == 5
    assert len(log_watcher.named("notifier_frames_dropped")) == 1

    async with notifier:
        frames = await server.wait_for_frames(5)

    assert [frame_number(frame) for frame in frames] == [995, 996, 997, 998, 999]
    drop_logs = log_watcher.named("notifier_frames_dropped")
    # The first drop is logged at once and the rest when the connection opens.
    assert [record.__dict__["frames_dropped"] for record in drop_logs] == [1, 994]


async def test_stop_flushes_buffered_frames(server: FrameServer) -> None:
    total = 500
    notifier = fast_notifier(server.url)
    notifier.start()

    await publish_numbered(notifier, range(total))
    await asyncio.wait_for(notifier.stop(drain_timeout_seconds=5.0), TIMEOUT_SECONDS)

    assert notifier.frames_confirmed == total
    assert notifier.frames_buffered == 0
    assert notifier.frames_dropped == 0
    assert notifier_tasks() == []
    frames = await server.wait_for_frames(total)
    assert [frame_number(frame) for frame in frames] == list(range(total))


async def test_stop_without_peer_returns_and_counts_unsent(log_watcher: LogWatcher) -> None:
    notifier = fast_notifier(f"ws://127.0.0.1:{unused_port()}/events")
    notifier.start()
    await publish_numbered(notifier, range(3))

    await asyncio.wait_for(notifier.stop(drain_timeout_seconds=0.2), TIMEOUT_SECONDS)

    assert notifier.frames_dropped == 3
    assert notifier_tasks() == []
    record = await log_watcher.wait_for("notifier_stopped_with_frames_left")
    assert record.__dict__["frames_unsent"] == 3


async def test_publish_after_stop_drops_and_counts(server: FrameServer) -> None:
    notifier = fast_notifier(server.url)
    notifier.start()
    await notifier.stop(drain_timeout_seconds=1.0)

    await publish_numbered(notifier, range(2))

    assert notifier.frames_dropped == 2
    with pytest.raises(RuntimeError, match="create a new one"):
        notifier.start()


@pytest.mark.parametrize(
    "url",
    [
        "http://localhost:8765/events",
        "localhost:8765",
        "ws://",
        "ws://:8765/events",
        "wss://localhost:port/events",
        "ws://localhost:0/events",
        "",
    ],
)
def test_constructor_rejects_non_websocket_url(url: str) -> None:
    with pytest.raises(ValueError, match=r"use ws:// or wss://"):
        WebSocketNotifier(url)


def test_constructor_error_hides_url_credentials() -> None:
    with pytest.raises(ValueError, match="invalid WebSocket URL") as error:
        WebSocketNotifier("https://user:secret@localhost:8765/events?token=hidden")

    assert "secret" not in str(error.value)
    assert "hidden" not in str(error.value)
    assert "localhost:8765/events" in str(error.value)


def test_url_property_hides_credentials() -> None:
    notifier = WebSocketNotifier("wss://user:secret@localhost:8765/events?token=hidden")

    assert notifier.url == "wss://localhost:8765/events"


@pytest.mark.parametrize(
    ("option", "value"),
    [
        ("buffer_size", 0),
        ("initial_backoff_seconds", 0.0),
        ("max_backoff_seconds", 0.01),
        ("close_timeout_seconds", -1.0),
    ],
)
def test_constructor_rejects_invalid_limits(option: str, value: float) -> None:
    with pytest.raises(ValueError, match=f"invalid {option}"):
        WebSocketNotifier("ws://localhost:8765/events", **{option: value})  # type: ignore[arg-type]
