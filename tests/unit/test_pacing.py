"""TokenBucket: the long-run rate, bursts, and fairness under concurrent senders."""

import asyncio
import time

import pytest

from adapters.twilio.pacing import TokenBucket


async def test_bucket_allows_burst_then_paces() -> None:
    bucket = TokenBucket(rate_per_second=50, burst=10)
    started = time.monotonic()

    await asyncio.gather(*(bucket.take() for _ in range(30)))

    elapsed = time.monotonic() - started
    # 10 at once, then 20 more at 50 per second take about 0.4 s.
    assert 0.35 <= elapsed < 1.5


async def test_concurrent_takers_never_exceed_rate() -> None:
    bucket = TokenBucket(rate_per_second=100, burst=1)
    times: list[float] = []

    async def take() -> None:
        await bucket.take()
        times.append(time.monotonic())

    await asyncio.gather(*(take() for _ in range(40)))

    span = max(times) - min(times)
    assert span >= 39 / 100 * 0.9


def test_invalid_rate_is_rejected() -> None:
    with pytest.raises(ValueError, match="positive number"):
        TokenBucket(0)
