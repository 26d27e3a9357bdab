"""Integration tests of the /ws hub and the /dashboard page on the real Litestar app.

Each test's apps read a Redis channel of that test alone on the machine's Redis, and events are
published onto it by RedisNotifier, from separate processes where it matters.
"""

import asyncio
import json
import sys
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from typing import Any
from uuid import uuid4

import pytest
from redis.asyncio import Redis
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from tests.support.fake_app import FakeApp, fake_app
from tests.support.log_watcher import watching
from tests.support.processes import REPOSITORY

TOKEN = "operator-token-0123456789"
TIMEOUT_SECONDS = 10.0
HUB_LOGGER = "entrypoints.http.event_hub"


@pytest.fixture
def channel() -> str:
    return f"test-events-{uuid4().hex}"


def ws_url(app: FakeApp, query: str) -> str:
    return f"ws://127.0.0.1:{app.client.base_url.port}/ws?{query}"


def frame(verification_id: str, event: str = "code_sent", **fields: object) -> str:
    return json.dumps({"event": event, "verification_id": verification_id, "ok": True, **fields})


@asynccontextmanager
async def hub_apps(
    redis_client: Redis, channel: str, count: int = 1, **settings: Any
) -> AsyncIterator[list[FakeApp]]:
    """Serve `count` apps reading `channel`, once every one of them has subscribed."""
    async with AsyncExitStack() as stack:
        apps = [
            await stack.enter_async_context(
                fake_app(NOTIFICATION_CHANNEL=channel, DASHBOARD_TOKEN=TOKEN, **settings)
            )
            for _ in range(count)
        ]
        await wait_for_subscribers(redis_client, channel, count)
        yield apps


async def wait_for_subscribers(redis_client: Redis, channel: str, count: int) -> None:
    async with asyncio.timeout(TIMEOUT_SECONDS):
        while True:
            [(_, subscribers)] = await redis_client.pubsub_numsub(channel)
            if subscribers >= count:
                return
            await asyncio.sleep(0.02)


async def receive(connection: ClientConnection) -> dict[str, Any]:
    async with asyncio.timeout(TIMEOUT_SECONDS):
        text = await connection.recv()
    parsed: dict[str, Any] = json.loads(text)
    return parsed


async def receive_events(connection: ClientConnection, count: int) -> list[dict[str, Any]]:
    return [await receive(connection) for _ in range(count)]


async def closed_with(connection: ClientConnection) -> tuple[int | None, str | None]:
    """Read until the server closes the connection, and return the close code and reason."""
    async with asyncio.timeout(TIMEOUT_SECONDS):
        try:
            while True:
                await connection.recv()
        except ConnectionClosed:
            pass
    return connection.close_code, connection.close_reason


async def run_publisher(channel: str, prefix: str, count: int) -> None:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "tests.support.publish_events",
        "--channel",
        channel,
        "--prefix",
        prefix,
        "--count",
        str(count),
        cwd=REPOSITORY,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    async with asyncio.timeout(30):
        output, _ = await process.communicate()
    assert process.returncode == 0, output.decode(errors="replace")


async def test_hub_fans_out_two_publishers_to_two_webhooks(
    redis_client: Redis, channel: str
) -> None:
    async with (
        hub_apps(redis_client, channel, count=2) as (first_app, second_app),
        connect(ws_url(first_app, "verification_id=first-1")) as one_id,
        connect(ws_url(second_app, f"all=true&token={TOKEN}")) as everything,
    ):
        assert await receive(one_id) == {
            "event": "subscribed",
            "all": False,
            "verification_ids": ["first-1"],
        }
        assert (await receive(everything))["all"] is True

        await asyncio.gather(
            run_publisher(channel, "first", 3), run_publisher(channel, "second", 3)
        )
        all_frames = await receive_events(everything, 6)
        own = await receive(one_id)
        await redis_client.publish(channel, frame("first-1", "check_approved"))
        marker = await receive(one_id)

    ids = [item["verification_id"] for item in all_frames]
    assert sorted(ids) == ["first-0", "first-1", "first-2", "second-0", "second-1", "second-2"]
    assert [i for i in ids if i.startswith("first")] == ["first-0", "first-1", "first-2"]
    assert [i for i in ids if i.startswith("second")] == ["second-0", "second-1", "second-2"]
    assert own["verification_id"] == "first-1"
    assert own["event"] == "code_sent"
    assert own["phone"] == "+593******567"
    # The marker comes right after the one subscribed frame: nothing else was sent.
    assert (marker["verification_id"], marker["event"]) == ("first-1", "check_approved")


async def test_hub_follows_subscribe_and_unsubscribe(redis_client: Redis, channel: str) -> None:
    async with (
        hub_apps(redis_client, channel) as [app],
        connect(ws_url(app, "verification_id=a&verification_id=b")) as client,
    ):
        assert (await receive(client))["verification_ids"] == ["a", "b"]
        await client.send(json.dumps({"subscribe": ["c"]}))
        assert (await receive(client))["verification_ids"] == ["a", "b", "c"]
        await client.send(json.dumps({"unsubscribe": ["a", "b"]}))
        assert (await receive(client))["verification_ids"] == ["c"]

        for verification_id in ("a", "b", "c"):
            await redis_client.publish(channel, frame(verification_id))
        received = await receive(client)

    assert received["verification_id"] == "c"


async def test_hub_answers_invalid_message_and_stays_open(
    redis_client: Redis, channel: str
) -> None:
    async with (
        hub_apps(redis_client, channel) as [app],
        connect(ws_url(app, "verification_id=a")) as client,
    ):
        await receive(client)
        await client.send("not json")
        not_json = await receive(client)
        await client.send(json.dumps({"subscribe": ["bad id with spaces"]}))
        bad_id = await receive(client)
        await redis_client.publish(channel, frame("a"))
        still_open = await receive(client)

    assert not_json["event"] == "subscription_error"
    assert not_json["ok"] is False
    assert '{"subscribe": [ids]}' in not_json["message"]
    assert bad_id["event"] == "subscription_error"
    assert "invalid verification id" in bad_id["message"]
    assert still_open["verification_id"] == "a"


async def test_hub_replays_recent_events_to_new_client(redis_client: Redis, channel: str) -> None:
    async with hub_apps(redis_client, channel) as [app]:
        async with connect(ws_url(app, "verification_id=early")) as watcher:
            await receive(watcher)
            await redis_client.publish(channel, frame("early", "code_sent"))
            await redis_client.publish(channel, frame("other", "code_sent"))
            await redis_client.publish(channel, frame("early", "delivery_status"))
            await receive_events(watcher, 2)

        async with connect(ws_url(app, "verification_id=early")) as late:
            subscribed = await receive(late)
            replayed = await receive_events(late, 2)

    assert subscribed["event"] == "subscribed"
    assert [item["event"] for item in replayed] == ["code_sent", "delivery_status"]
    assert {item["verification_id"] for item in replayed} == {"early"}


async def test_hub_accepts_operator_token_as_bearer(redis_client: Redis, channel: str) -> None:
    async with (
        hub_apps(redis_client, channel) as [app],
        connect(
            ws_url(app, "all=true"), additional_headers={"Authorization": f"Bearer {TOKEN}"}
        ) as client,
    ):
        subscribed = await receive(client)

    assert subscribed["all"] is True


@pytest.mark.parametrize(
    ("query", "reason"),
    [
        ("all=true", "missing or invalid operator token"),
        ("all=true&token=wrong-token-0123456789", "missing or invalid operator token"),
        ("", "nothing to subscribe to"),
        ("verification_id=has%20space", "invalid verification id"),
    ],
)
async def test_hub_refuses_bad_subscription(
    redis_client: Redis, channel: str, query: str, reason: str
) -> None:
    async with (
        hub_apps(redis_client, channel) as [app],
        connect(ws_url(app, query)) as client,
    ):
        code, close_reason = await closed_with(client)

    assert code == 1008
    assert close_reason is not None
    assert reason in close_reason


async def test_hub_refuses_all_without_configured_token(redis_client: Redis, channel: str) -> None:
    async with (
        fake_app(NOTIFICATION_CHANNEL=channel) as app,
        connect(ws_url(app, f"all=true&token={TOKEN}")) as client,
    ):
        code, reason = await closed_with(client)

    assert code == 1008
    assert reason == "all=true is off: set DASHBOARD_TOKEN on the webhook to turn it on"


async def test_hub_disconnects_slow_client_and_serves_others(
    redis_client: Redis, channel: str
) -> None:
    # The slow client stops reading at the TCP level. Frames of 256 KiB then fill the
    # socket buffers after a few dozen, and the queue of four frames right after.
    padding = "x" * 256 * 1024
    count = 120

    with watching(HUB_LOGGER) as logs:
        async with (
            hub_apps(redis_client, channel, HUB_CLIENT_QUEUE_SIZE=4) as [app],
            # Without compression the padding keeps its size on the wire.
            connect(
                ws_url(app, f"all=true&token={TOKEN}"), max_size=None, compression=None
            ) as slow,
            connect(ws_url(app, f"all=true&token={TOKEN}"), max_size=None) as fast,
        ):
            await receive(slow)
            await receive(fast)
            slow.transport.pause_reading()

            fast_frames: list[dict[str, Any]] = []
            for number in range(count):
                await redis_client.publish(channel, frame(f"id-{number}", message=padding))
                fast_frames.append(await receive(fast))
            await logs.wait_for("hub_client_too_slow")

            slow.transport.resume_reading()
            code, reason = await closed_with(slow)

    assert [item["verification_id"] for item in fast_frames] == [f"id-{n}" for n in range(count)]
    [dropped] = logs.named("hub_client_too_slow")
    assert dropped.queue_size == 4  # type: ignore[attr-defined]
    assert code == 1013
    assert reason is not None
    assert "too slow" in reason


async def test_dashboard_requires_operator_token(redis_client: Redis, channel: str) -> None:
    async with hub_apps(redis_client, channel) as [app]:
        missing = await app.client.get("/dashboard")
        wrong = await app.client.get("/dashboard", params={"token": "wrong-token-0123456789"})
        by_query = await app.client.get("/dashboard", params={"token": TOKEN})
        by_bearer = await app.client.get("/dashboard", headers={"Authorization": f"Bearer {TOKEN}"})
        script = await app.client.get("/dashboard/dashboard.js")
        style = await app.client.get("/dashboard/dashboard.css")

    assert missing.status_code == 401
    assert "DASHBOARD_TOKEN" in missing.text
    assert wrong.status_code == 401
    assert by_query.status_code == 200
    assert by_bearer.status_code == 200
    assert TOKEN not in by_query.text
    assert "script-src 'self'" in by_query.headers["Content-Security-Policy"]
    assert by_query.headers["Referrer-Policy"] == "no-referrer"
    assert by_query.headers["Cache-Control"] == "no-store"
    assert "63016" in by_query.text
    assert script.status_code == 200
    assert script.headers["Content-Type"].startswith("text/javascript")
    assert "innerHTML" not in script.text
    assert style.status_code == 200


async def test_dashboard_is_off_without_token(channel: str) -> None:
    async with fake_app(NOTIFICATION_CHANNEL=channel) as app:
        response = await app.client.get("/dashboard", params={"token": TOKEN})

    assert response.status_code == 403
    assert "Set DASHBOARD_TOKEN" in response.text
