"""Integration tests of RedisNotifier and RedisChannelReader against the machine's Redis.

Each test uses a channel of its own. Outages are made with a TCP proxy on 127.0.0.1
between the client under test and Redis, which the test stops and starts.
"""

import asyncio
import contextlib
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from uuid import uuid4

import pytest

from adapters.notification.redis_channel import RedisChannelReader, RedisNotifier, frame_text
from adapters.redis.connection import RedisClient, create_redis_client
from devtools.ports import free_port
from domain.events import CodeSent, Event
from entrypoints.notifiers import notifier_resource
from tests.settings import make_settings
from tests.support.log_watcher import watching
from tests.support.redis_cluster import LocalRedisCluster
from tests.support.tcp_proxy import TcpProxy

REDIS_HOST, REDIS_PORT = "127.0.0.1", 6379
TIMEOUT_SECONDS = 10.0
NOTIFIER_LOGGER = "adapters.notification.redis_channel"
BUFFER_LOGGER = "adapters.notification.buffer"


def sent(number: int, prefix: str = "user") -> Event:
    return CodeSent(f"{prefix}-{number}", "+593******567", f"SM{number:04d}", datetime.now(UTC))


class ChannelRecorder:
    """Reads a channel with a RedisChannelReader in the background and records the texts."""

    def __init__(self, reader: RedisChannelReader) -> None:
        self.reader = reader
        self.texts: list[str] = []
        self._changed = asyncio.Condition()
        self._task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> "ChannelRecorder":
        self._task = asyncio.create_task(self._record())
        async with asyncio.timeout(TIMEOUT_SECONDS):
            await self.reader.wait_subscribed()
        return self

    async def __aexit__(self, *_: object) -> None:
        assert self._task is not None
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task

    async def wait_for(self, count: int) -> list[str]:
        async with asyncio.timeout(TIMEOUT_SECONDS), self._changed:
            await self._changed.wait_for(lambda: len(self.texts) >= count)
        return list(self.texts)

    async def _record(self) -> None:
        async for text in self.reader.messages():
            async with self._changed:
                self.texts.append(text)
                self._changed.notify_all()


def client_of(port: int) -> RedisClient:
    return create_redis_client(
        f"redis://127.0.0.1:{port}",
        connect_timeout_seconds=1.0,
        read_timeout_seconds=1.0,
        connection_retries=0,
    )


@pytest.fixture
def channel() -> str:
    return f"test-events-{uuid4().hex}"


@pytest.fixture
async def redis_client() -> AsyncIterator[RedisClient]:
    client = client_of(REDIS_PORT)
    yield client
    await client.aclose()


@pytest.fixture
async def proxy() -> AsyncIterator[TcpProxy]:
    running = TcpProxy(REDIS_HOST, REDIS_PORT)
    await running.start()
    yield running
    with contextlib.suppress(AssertionError):
        await running.stop()


async def test_redis_notifier_publishes_frames_in_order(
    redis_client: RedisClient, channel: str
) -> None:
    pubsub = redis_client.pubsub()
    await pubsub.subscribe(channel)
    events = [sent(number) for number in range(3)]

    async with RedisNotifier(redis_client, channel) as notifier:
        for event in events:
            await notifier.publish(event)
        received = []
        async with asyncio.timeout(TIMEOUT_SECONDS):
            while len(received) < len(events):
                message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=1.0)
                if message is not None:
                    received.append(message["data"].decode())
    await pubsub.aclose()

    assert received == [frame_text(event) for event in events]
    assert notifier.frames_published == 3
    assert notifier.frames_dropped == 0


async def test_two_notifiers_share_one_channel(redis_client: RedisClient, channel: str) -> None:
    first_client, second_client = client_of(REDIS_PORT), client_of(REDIS_PORT)
    first_events = [sent(number, "first") for number in range(5)]
    second_events = [sent(number, "second") for number in range(5)]

    async with (
        ChannelRecorder(RedisChannelReader(redis_client, channel)) as recorder,
        RedisNotifier(first_client, channel) as first,
        RedisNotifier(second_client, channel) as second,
    ):
        for first_event, second_event in zip(first_events, second_events, strict=True):
            await first.publish(first_event)
            await second.publish(second_event)
        texts = await recorder.wait_for(10)
    await first_client.aclose()
    await second_client.aclose()

    assert sorted(texts) == sorted(frame_text(event) for event in first_events + second_events)
    assert [text for text in texts if '"first-' in text] == [frame_text(e) for e in first_events]


async def test_redis_notifier_keeps_frames_through_outage(
    redis_client: RedisClient, proxy: TcpProxy, channel: str
) -> None:
    proxied = client_of(proxy.port)
    events = [sent(number) for number in range(6)]

    with watching(NOTIFIER_LOGGER) as logs:
        async with (
            ChannelRecorder(RedisChannelReader(redis_client, channel)) as recorder,
            RedisNotifier(proxied, channel, publish_timeout_seconds=1.0) as notifier,
        ):
            await notifier.publish(events[0])
            await recorder.wait_for(1)
            await proxy.stop()

            # Publishing never waits for Redis, even while it is unreachable.
            async with asyncio.timeout(0.5):
                for event in events[1:]:
                    await notifier.publish(event)
            await logs.wait_for("notifier_publish_failed")
            assert notifier.frames_buffered == 5

            await proxy.start()
            texts = await recorder.wait_for(6)
            await logs.wait_for("notifier_publish_recovered")
    await proxied.aclose()

    assert texts == [frame_text(event) for event in events]
    assert notifier.frames_dropped == 0
    assert notifier.publish_failures >= 1


async def test_redis_notifier_drops_oldest_when_outage_fills_buffer(
    redis_client: RedisClient, proxy: TcpProxy, channel: str
) -> None:
    proxied = client_of(proxy.port)
    events = [sent(number) for number in range(5)]
    await proxy.stop()

    with watching(NOTIFIER_LOGGER, BUFFER_LOGGER) as logs:
        async with (
            ChannelRecorder(RedisChannelReader(redis_client, channel)) as recorder,
            RedisNotifier(proxied, channel, buffer_size=3, publish_timeout_seconds=1.0) as notifier,
        ):
            for event in events:
                await notifier.publish(event)
            await logs.wait_for("notifier_publish_failed")
            await proxy.start()
            texts = await recorder.wait_for(3)
    await proxied.aclose()

    assert texts == [frame_text(event) for event in events[2:]]
    assert notifier.frames_dropped == 2
    # The first drop is logged at once, and the rest when the next PUBLISH succeeds.
    drop_lines = logs.named("notifier_frames_dropped")
    assert [line.frames_dropped for line in drop_lines] == [1, 1]  # type: ignore[attr-defined]


async def test_redis_notifier_stop_counts_unsent_frames(channel: str) -> None:
    unreachable = client_of(free_port())
    notifier = RedisNotifier(unreachable, channel, publish_timeout_seconds=0.2)

    with watching(NOTIFIER_LOGGER) as logs:
        notifier.start()
        await notifier.publish(sent(1))
        await notifier.stop(drain_timeout_seconds=0.5)
        await notifier.publish(sent(2))
    await unreachable.aclose()

    assert notifier.frames_dropped == 2
    [stopped] = logs.named("notifier_stopped_with_frames_left")
    assert stopped.frames_unsent == 1  # type: ignore[attr-defined]


async def test_channel_reader_resubscribes_after_lost_connection(
    redis_client: RedisClient, proxy: TcpProxy, channel: str
) -> None:
    proxied = client_of(proxy.port)
    reader = RedisChannelReader(proxied, channel, initial_backoff_seconds=0.05)

    with watching(NOTIFIER_LOGGER) as logs:
        async with ChannelRecorder(reader) as recorder:
            await redis_client.publish(channel, "before")
            await recorder.wait_for(1)

            await proxy.stop()
            await logs.wait_for("channel_connection_lost")
            await proxy.start()
            await logs.wait_for("channel_subscribed", count=2)
            await redis_client.publish(channel, "after")
            texts = await recorder.wait_for(2)
    await proxied.aclose()

    assert texts == ["before", "after"]
    assert reader.subscriptions == 2


async def test_notifier_resource_publishes_with_redis_setting(
    redis_client: RedisClient, channel: str
) -> None:
    settings = make_settings(NOTIFIER="redis", NOTIFICATION_CHANNEL=channel)
    event = sent(7)

    async with ChannelRecorder(RedisChannelReader(redis_client, channel)) as recorder:
        resource = notifier_resource(settings)
        notifier = await anext(resource)
        assert isinstance(notifier, RedisNotifier)
        await notifier.publish(event)
        texts = await recorder.wait_for(1)
        await resource.aclose()

    assert texts == [frame_text(event)]


async def test_redis_notifier_on_cluster(redis_cluster: LocalRedisCluster, channel: str) -> None:
    publisher = create_redis_client(redis_cluster.url, cluster=True)
    subscriber = create_redis_client(redis_cluster.url, cluster=True)
    events = [sent(number) for number in range(3)]

    async with (
        ChannelRecorder(RedisChannelReader(subscriber, channel)) as recorder,
        RedisNotifier(publisher, channel) as notifier,
    ):
        for event in events:
            await notifier.publish(event)
        texts = await recorder.wait_for(3)
    await publisher.aclose()
    await subscriber.aclose()

    assert texts == [frame_text(event) for event in events]
