"""Integration tests of SocketIONotifier against a python-socketio hub on 127.0.0.1.

The hub relays each `Profile` event to the room named by its `Id`, as the existing hubs
do, and a second Socket.IO client that joined the room plays the browser.
"""

import asyncio
import contextlib
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import pytest
import socketio
from aiohttp import web

from adapters.notification.socket_io import SocketIONotifier, profile_payload
from domain.delivery import DeliveryStatus
from domain.events import CodeSent, DeliveryStatusChanged, Event
from entrypoints.notifiers import notifier_resource
from tests.settings import make_settings
from tests.support.log_watcher import watching

TIMEOUT_SECONDS = 10.0
NOTIFIER_LOGGER = "adapters.notification.socket_io"
BUFFER_LOGGER = "adapters.notification.buffer"


def sent(number: int) -> Event:
    return CodeSent(f"user-{number}", "+593******567", f"SM{number:04d}", datetime.now(UTC))


class ProfileHub:
    """A Socket.IO server that records every `Profile` and relays it to the room `Id` names."""

    def __init__(self) -> None:
        self.port = 0
        self.received: list[dict[str, object]] = []
        self._changed = asyncio.Condition()
        self._sids: set[str] = set()
        self._server: socketio.AsyncServer | None = None
        self._runner: web.AppRunner | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def start(self) -> None:
        server = socketio.AsyncServer(async_mode="aiohttp")
        server.on("connect", self._connect)
        server.on("disconnect", self._disconnect)
        server.on("join", self._join)
        server.on("Profile", self._profile)
        app = web.Application()
        server.attach(app)
        runner = web.AppRunner(app, shutdown_timeout=1.0)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", self.port, reuse_address=True)
        await site.start()
        self.port = runner.addresses[0][1]
        self._server, self._runner = server, runner

    async def stop(self) -> None:
        """Disconnect every client, then stop listening, as a restarting hub does."""
        assert self._server is not None and self._runner is not None
        for sid in list(self._sids):
            await self._server.disconnect(sid)
        await self._server.shutdown()
        await self._runner.cleanup()
        self._server = self._runner = None

    async def wait_for(self, count: int) -> list[dict[str, object]]:
        async with asyncio.timeout(TIMEOUT_SECONDS), self._changed:
            await self._changed.wait_for(lambda: len(self.received) >= count)
        return list(self.received)

    async def _connect(self, sid: str, environ: object, auth: object = None) -> None:
        self._sids.add(sid)

    async def _disconnect(self, sid: str, reason: object = None) -> None:
        self._sids.discard(sid)

    async def _join(self, sid: str, room: str) -> bool:
        assert self._server is not None
        await self._server.enter_room(sid, room)
        return True

    async def _profile(self, sid: str, data: dict[str, object]) -> None:
        assert self._server is not None
        async with self._changed:
            self.received.append(data)
            self._changed.notify_all()
        await self._server.emit("Profile", data, room=str(data["Id"]), skip_sid=sid)


class Browser:
    """A Socket.IO client in one verification's room, as the waiting browser is."""

    def __init__(self) -> None:
        self.client = socketio.AsyncClient(reconnection=False, handle_sigint=False)
        self.profiles: asyncio.Queue[dict[str, object]] = asyncio.Queue()
        self.client.on("Profile", self.profiles.put)

    async def join(self, url: str, room: str) -> None:
        await self.client.connect(url, wait_timeout=TIMEOUT_SECONDS)
        assert await self.client.call("join", room, timeout=TIMEOUT_SECONDS) is True

    async def next_profile(self) -> dict[str, object]:
        async with asyncio.timeout(TIMEOUT_SECONDS):
            return await self.profiles.get()

    async def leave(self) -> None:
        await self.client.disconnect()


@pytest.fixture
async def hub() -> AsyncIterator[ProfileHub]:
    running = ProfileHub()
    await running.start()
    yield running
    with contextlib.suppress(AssertionError):
        await running.stop()


async def test_socketio_notifier_reaches_browser_in_room(hub: ProfileHub) -> None:
    browser = Browser()
    await browser.join(hub.url, "user-1_Verification")
    code_sent = CodeSent("user-1", "+593******567", "SM0001", datetime.now(UTC))
    delivered = DeliveryStatusChanged(
        "user-1", "SM0001", DeliveryStatus.DELIVERED, datetime.now(UTC)
    )
    other = sent(2)

    async with SocketIONotifier(hub.url) as notifier:
        await notifier.publish(code_sent)
        await notifier.publish(other)
        await notifier.publish(delivered)
        first = await browser.next_profile()
        second = await browser.next_profile()
        await hub.wait_for(3)
    await browser.leave()

    assert first == {
        "Id": "user-1_Verification",
        "Status": True,
        "Message": "The verification code has been sent",
    }
    assert second == {
        "Id": "user-1_Verification",
        "Status": True,
        "Message": "The message was delivered",
    }
    assert browser.profiles.empty()
    assert hub.received[1] == profile_payload(other)


async def test_socketio_notifier_buffers_while_hub_restarts(hub: ProfileHub) -> None:
    events = [sent(number) for number in range(6)]

    with watching(NOTIFIER_LOGGER) as logs:
        async with SocketIONotifier(hub.url, initial_backoff_seconds=0.05) as notifier:
            await notifier.publish(events[0])
            await hub.wait_for(1)
            await hub.stop()
            await logs.wait_for("notifier_disconnected")

            async with asyncio.timeout(0.5):
                for event in events[1:]:
                    await notifier.publish(event)
            await logs.wait_for("notifier_connect_failed")
            assert notifier.frames_buffered == 5

            await hub.start()
            received = await hub.wait_for(6)

    assert received == [profile_payload(event) for event in events]
    assert notifier.frames_dropped == 0
    assert len(logs.named("notifier_connected")) == 2


async def test_socketio_notifier_drops_oldest_when_buffer_full(hub: ProfileHub) -> None:
    events = [sent(number) for number in range(5)]
    await hub.stop()

    with watching(NOTIFIER_LOGGER, BUFFER_LOGGER) as logs:
        async with SocketIONotifier(
            hub.url, buffer_size=2, initial_backoff_seconds=0.05
        ) as notifier:
            for event in events:
                await notifier.publish(event)
            await logs.wait_for("notifier_connect_failed")
            await hub.start()
            received = await hub.wait_for(2)

    assert received == [profile_payload(event) for event in events[3:]]
    assert notifier.frames_dropped == 3
    assert sum(line.frames_dropped for line in logs.named("notifier_frames_dropped")) == 3  # type: ignore[attr-defined]


async def test_socketio_notifier_uses_namespace_from_path(hub: ProfileHub) -> None:
    notifier = SocketIONotifier(hub.url + "/events", initial_backoff_seconds=0.05)

    with watching(NOTIFIER_LOGGER) as logs:
        notifier.start()
        await notifier.publish(sent(1))
        # The hub serves only the default namespace, so connecting to /events fails.
        await logs.wait_for("notifier_connect_failed")
        await notifier.stop(drain_timeout_seconds=0.1)

    assert notifier.namespace == "/events"
    assert notifier.frames_dropped == 1
    assert hub.received == []


async def test_notifier_resource_picks_socketio_for_http_url(hub: ProfileHub) -> None:
    settings = make_settings(MESSAGES_USERS_URL=hub.url)
    event = sent(9)

    resource = notifier_resource(settings)
    notifier = await anext(resource)
    assert isinstance(notifier, SocketIONotifier)
    await notifier.publish(event)
    received = await hub.wait_for(1)
    await resource.aclose()

    assert received == [profile_payload(event)]
