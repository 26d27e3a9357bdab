"""Event frames over a Redis pub/sub channel: the notifier that publishes and the reader."""

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import AsyncIterator

from redis.asyncio.client import PubSub
from redis.exceptions import RedisError

from adapters.notification.buffer import (
    FrameBuffer,
    backoff_delay,
    check_backoff,
    describe_error,
)
from adapters.notification.frames import event_to_frame
from adapters.notification.lifecycle import BufferedNotifier, log_stopped
from adapters.redis.connection import RedisClient
from domain.events import Event

logger = logging.getLogger(__name__)

# Failures after which a later try may succeed: refused or reset connections (redis-py
# raises them as RedisError subclasses, or as OSError from the socket), and timeouts.
_REDIS_ERRORS = (RedisError, OSError, TimeoutError)


def frame_text(event: Event) -> str:
    """Return the compact JSON text of the event's frame, as every notifier sends it."""
    return json.dumps(event_to_frame(event), ensure_ascii=False, separators=(",", ":"))


class RedisNotifier(BufferedNotifier[str]):
    """A `Notifier` that publishes each event's JSON frame on one Redis pub/sub channel.

    Every worker and webhook process can publish on the same channel, and every
    subscriber (such as the webhook's /ws hub) receives the frames of all of them.

    `publish` appends the frame to a buffer of `buffer_size` frames and returns at
    once. A background task, run between `start()` and `stop()` or inside
    `async with`, sends them with PUBLISH in order, each within
    `publish_timeout_seconds`. After a failed or timed-out PUBLISH it waits with
    exponential backoff and jitter and tries the same frame again, so during a Redis
    outage frames wait in the buffer, and the oldest are dropped once it is full. Drops
    are counted in `frames_dropped` and logged at most once per
    `drop_log_interval_seconds`, plus one line for the rest when a PUBLISH succeeds
    again or the notifier stops.

    Redis pub/sub keeps nothing: a frame reaches only the subscribers connected when
    it is published. A PUBLISH that timed out after Redis ran it is sent again, so a
    subscriber may see a frame twice around an outage.

    The notifier does not close `client`; its owner does. Use one instance from one
    event loop.
    """

    task_name = "redis-notifier"

    def __init__(
        self,
        client: RedisClient,
        channel: str,
        buffer_size: int = 1000,
        *,
        publish_timeout_seconds: float = 2.0,
        initial_backoff_seconds: float = 0.1,
        max_backoff_seconds: float = 5.0,
        drop_log_interval_seconds: float = 10.0,
    ) -> None:
        if not channel:
            raise ValueError("missing channel: pass the Redis channel name to publish on")
        if not publish_timeout_seconds > 0:
            raise ValueError(
                f"invalid publish_timeout_seconds {publish_timeout_seconds}: "
                "use a number of seconds above 0"
            )
        check_backoff(initial_backoff_seconds, max_backoff_seconds)
        super().__init__()
        self._client = client
        self._channel = channel
        self._buffer: FrameBuffer[str] = FrameBuffer(
            buffer_size,
            notifier="redis",
            target=channel,
            drop_log_interval_seconds=drop_log_interval_seconds,
        )
        self._publish_timeout_seconds = publish_timeout_seconds
        self._initial_backoff_seconds = initial_backoff_seconds
        self._max_backoff_seconds = max_backoff_seconds
        self._frames_published = 0
        self._publish_failures = 0

    @property
    def channel(self) -> str:
        """The Redis channel the frames are published on."""
        return self._channel

    @property
    def frames_published(self) -> int:
        """Number of frames Redis accepted, counting each repeated PUBLISH again."""
        return self._frames_published

    @property
    def publish_failures(self) -> int:
        """Number of PUBLISH commands that failed or timed out."""
        return self._publish_failures

    async def publish(self, event: Event) -> None:
        """Buffer the frame of `event` for publishing, dropping the oldest frame when full.

        Returns at once without touching Redis. After `stop()` the frame is dropped and
        counted. Raises `ValueError` only for an event that `event_to_frame` rejects.
        """
        self._enqueue(frame_text(event))

    @property
    def target(self) -> str:
        return repr(self._channel)

    def _started_fields(self) -> dict[str, object]:
        return {"notifier": "redis", "channel": self._channel, "buffer_size": self._buffer.capacity}

    async def stop(self, drain_timeout_seconds: float = 5.0) -> None:
        """Publish what is buffered within `drain_timeout_seconds`, then end the task.

        Frames still buffered then count as dropped, and the log line names them.
        Calling `stop()` again does nothing.
        """
        if self._stopped:
            return
        task = self._task
        if task is not None:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._buffer.wait_empty(), drain_timeout_seconds)
        self._stopped = True
        self._stop_requested.set()
        if task is not None:
            task.cancel()
            await asyncio.wait([task])
        self._buffer.log_drops()

        unsent = self._buffer.drop_all()
        extra = {
            "notifier": "redis",
            "channel": self._channel,
            "frames_unsent": unsent,
            "frames_published": self._frames_published,
        }
        log_stopped(logger, bool(unsent), extra)

    async def _run(self) -> None:
        failures_in_a_row = 0
        while not self._stop_requested.is_set():
            await self._buffer.wait_not_empty()
            text = self._buffer.first()
            try:
                async with asyncio.timeout(self._publish_timeout_seconds):
                    await self._client.publish(self._channel, text)
            except _REDIS_ERRORS as error:
                failures_in_a_row += 1
                self._publish_failures += 1
                await self._wait_after_failure(failures_in_a_row, error)
                continue
            except Exception:
                # A bug here must not end the task, or publish would buffer forever.
                failures_in_a_row += 1
                self._publish_failures += 1
                logger.exception("notifier_loop_failed", extra={"channel": self._channel})
                await self._wait_after_failure(failures_in_a_row, None)
                continue

            self._buffer.remove_first()
            self._frames_published += 1
            if failures_in_a_row:
                logger.info(
                    "notifier_publish_recovered",
                    extra={
                        "notifier": "redis",
                        "channel": self._channel,
                        "after_failures": failures_in_a_row,
                        "frames_buffered": len(self._buffer),
                    },
                )
                self._buffer.log_drops()
                failures_in_a_row = 0

    async def _wait_after_failure(
        self, failures_in_a_row: int, error: BaseException | None
    ) -> None:
        delay = backoff_delay(
            failures_in_a_row, self._initial_backoff_seconds, self._max_backoff_seconds
        )
        if error is not None:
            # One line per failed try: the backoff caps them at one per max_backoff_seconds.
            logger.warning(
                "notifier_publish_failed",
                extra={
                    "notifier": "redis",
                    "channel": self._channel,
                    "attempt": failures_in_a_row,
                    "retry_in_seconds": round(delay, 3),
                    "frames_buffered": len(self._buffer),
                    "error": describe_error(error),
                },
            )
        await asyncio.sleep(delay)


class RedisChannelReader:
    """Reads the text of every message published on one Redis channel, reconnecting as needed.

    `messages()` subscribes and yields each message's data as text. After a lost
    connection it subscribes again with exponential backoff and jitter, and goes on
    yielding. Messages published while it was not subscribed are lost, because Redis
    pub/sub keeps nothing. While the channel is quiet it sends a PING every
    `health_check_seconds` and reconnects when no reply of any kind came for twice
    that long, so a connection that died without a TCP reset is noticed too.

    `wait_subscribed()` waits until a subscription is active. The reader does not
    close `client`; its owner does.
    """

    def __init__(
        self,
        client: RedisClient,
        channel: str,
        *,
        initial_backoff_seconds: float = 0.1,
        max_backoff_seconds: float = 5.0,
        health_check_seconds: float = 15.0,
    ) -> None:
        if not channel:
            raise ValueError("missing channel: pass the Redis channel name to read")
        check_backoff(initial_backoff_seconds, max_backoff_seconds)
        if not health_check_seconds > 0:
            raise ValueError(
                f"invalid health_check_seconds {health_check_seconds}: "
                "use a number of seconds above 0"
            )
        self._client = client
        self._channel = channel
        self._initial_backoff_seconds = initial_backoff_seconds
        self._max_backoff_seconds = max_backoff_seconds
        self._health_check_seconds = health_check_seconds
        self._subscribed = asyncio.Event()
        self._subscriptions = 0

    @property
    def channel(self) -> str:
        """The Redis channel this reader subscribes to."""
        return self._channel

    @property
    def subscribed(self) -> bool:
        """True while a subscription is active."""
        return self._subscribed.is_set()

    @property
    def subscriptions(self) -> int:
        """Number of times the reader subscribed, counting each resubscription."""
        return self._subscriptions

    async def wait_subscribed(self) -> None:
        """Wait until a subscription is active."""
        await self._subscribed.wait()

    async def messages(self) -> AsyncIterator[str]:
        """Yield the text of each message on the channel, until the caller stops iterating."""
        failures_in_a_row = 0
        while True:
            pubsub = self._client.pubsub()
            try:
                await pubsub.subscribe(self._channel)
                self._subscribed.set()
                self._subscriptions += 1
                logger.info(
                    "channel_subscribed",
                    extra={"channel": self._channel, "after_failures": failures_in_a_row},
                )
                failures_in_a_row = 0
                async for text in self._read(pubsub):
                    yield text
            except _REDIS_ERRORS as error:
                lost_error = error
            finally:
                self._subscribed.clear()
                with contextlib.suppress(*_REDIS_ERRORS):
                    await pubsub.aclose()

            # `_read` only ends by raising, so every pass that gets here lost the connection.
            failures_in_a_row += 1
            delay = backoff_delay(
                failures_in_a_row, self._initial_backoff_seconds, self._max_backoff_seconds
            )
            logger.warning(
                "channel_connection_lost",
                extra={
                    "channel": self._channel,
                    "attempt": failures_in_a_row,
                    "retry_in_seconds": round(delay, 3),
                    "error": describe_error(lost_error),
                },
            )
            await asyncio.sleep(delay)

    async def _read(self, pubsub: PubSub) -> AsyncIterator[str]:
        heard_at = time.monotonic()
        pinged_at = heard_at
        while True:
            message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=1.0)
            now = time.monotonic()
            if message is not None:
                heard_at = now
                if message.get("type") == "message":
                    data = message["data"]
                    yield data.decode("utf-8", "replace") if isinstance(data, bytes) else str(data)
                continue
            if now - heard_at >= 2 * self._health_check_seconds:
                raise TimeoutError(
                    f"no reply from Redis on channel {self._channel!r} for "
                    f"{2 * self._health_check_seconds} s"
                )
            if now - max(heard_at, pinged_at) >= self._health_check_seconds:
                pinged_at = now
                await pubsub.ping()
