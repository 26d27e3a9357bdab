"""Picks the notifier named by the NOTIFIER setting and runs it for the life of the process."""

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from adapters.notification.log import LogNotifier
from adapters.notification.redis_channel import RedisChannelReader, RedisNotifier
from adapters.notification.socket_io import SocketIONotifier
from adapters.notification.websocket import WebSocketNotifier, redact_url
from adapters.redis.connection import create_redis_client
from application.ports import Notifier
from entrypoints.settings import Settings

logger = logging.getLogger(__name__)

# Short limits, so that a Redis outage reaches the notifier's own retry loop at once
# instead of holding one PUBLISH for redis-py's retries.
REDIS_TIMEOUT_SECONDS = 2.0


async def notifier_resource(settings: Settings) -> AsyncIterator[Notifier]:
    """Yield the notifier that `settings.NOTIFIER` names, started, and stop it afterwards.

    `none` logs each event. `websocket` and `socketio` send to `MESSAGES_USERS_URL`,
    and `redis` publishes on `NOTIFICATION_CHANNEL` with a Redis client of its own,
    closed when the notifier stops.
    """
    kind = settings.NOTIFIER
    ignored_url = None
    if kind in ("none", "redis") and settings.MESSAGES_USERS_URL is not None:
        ignored_url = redact_url(settings.MESSAGES_USERS_URL)
    logger.info("notifier_selected", extra={"notifier": kind, "ignored_url": ignored_url})

    if kind == "none":
        yield LogNotifier()
        return
    if kind == "redis":
        async with _redis_notifier(settings) as redis_notifier:
            yield redis_notifier
        return

    url = settings.MESSAGES_USERS_URL
    # The settings check makes sure websocket and socketio come with a URL.
    assert url is not None
    notifier: WebSocketNotifier | SocketIONotifier
    if kind == "websocket":
        notifier = WebSocketNotifier(url, buffer_size=settings.NOTIFICATION_BUFFER_SIZE)
    else:
        notifier = SocketIONotifier(url, buffer_size=settings.NOTIFICATION_BUFFER_SIZE)
    notifier.start()
    try:
        yield notifier
    finally:
        await notifier.stop()


@asynccontextmanager
async def _redis_notifier(settings: Settings) -> AsyncIterator[RedisNotifier]:
    client = create_redis_client(
        settings.REDIS_CONNECTION,
        cluster=settings.REDIS_CLUSTER,
        connect_timeout_seconds=REDIS_TIMEOUT_SECONDS,
        read_timeout_seconds=REDIS_TIMEOUT_SECONDS,
        connection_retries=0,
    )
    notifier = RedisNotifier(
        client,
        settings.NOTIFICATION_CHANNEL,
        buffer_size=settings.NOTIFICATION_BUFFER_SIZE,
        publish_timeout_seconds=REDIS_TIMEOUT_SECONDS,
    )
    notifier.start()
    try:
        yield notifier
    finally:
        try:
            await notifier.stop()
        finally:
            await client.aclose()


@asynccontextmanager
async def channel_reader(settings: Settings) -> AsyncIterator[RedisChannelReader]:
    """Yield a reader of `NOTIFICATION_CHANNEL` with a Redis client of its own, closed after."""
    client = create_redis_client(
        settings.REDIS_CONNECTION,
        cluster=settings.REDIS_CLUSTER,
        connect_timeout_seconds=REDIS_TIMEOUT_SECONDS,
        read_timeout_seconds=REDIS_TIMEOUT_SECONDS,
        connection_retries=0,
    )
    try:
        yield RedisChannelReader(client, settings.NOTIFICATION_CHANNEL)
    finally:
        await client.aclose()
