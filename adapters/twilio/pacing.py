"""Paces sends to Twilio with a token bucket, so a worker stays under the sender's rate."""

import asyncio
import time
from datetime import datetime

from application.ports import MessageSender, OutgoingMessage, ProviderMessage, SentMessage
from domain.phone import PhoneNumber


class TokenBucket:
    """Hands out `rate_per_second` tokens per second, with bursts up to `burst`.

    Waiters are served in arrival order, because each one reserves its token before
    sleeping, so no sender starves under load.
    """

    def __init__(self, rate_per_second: float, burst: int | None = None) -> None:
        if rate_per_second <= 0:
            raise ValueError(f"invalid rate {rate_per_second}: use a positive number per second")
        self._rate = rate_per_second
        self._capacity = float(burst if burst is not None else max(int(rate_per_second), 1))
        self._tokens = self._capacity
        self._updated = time.monotonic()

    async def take(self) -> None:
        now = time.monotonic()
        self._tokens = min(self._capacity, self._tokens + (now - self._updated) * self._rate)
        self._updated = now
        self._tokens -= 1
        if self._tokens < 0:
            await asyncio.sleep(-self._tokens / self._rate)


class PacedMessageSender:
    """A `MessageSender` that waits for a token from a `TokenBucket` before each send."""

    def __init__(self, inner: MessageSender, bucket: TokenBucket) -> None:
        self._inner = inner
        self._bucket = bucket

    async def send(self, message: OutgoingMessage) -> SentMessage:
        await self._bucket.take()
        return await self._inner.send(message)

    async def find_recent(self, to: PhoneNumber, since: datetime) -> list[ProviderMessage]:
        return await self._inner.find_recent(to, since)
