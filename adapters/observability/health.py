"""Readiness checks of the dependencies a process needs, each bounded by a short timeout."""

import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping

from adapters.redis.connection import RedisClient

logger = logging.getLogger(__name__)

# A probe that waits longer than this would outlast the kubelet's default probe timeout.
READINESS_TIMEOUT_SECONDS = 1.0

ReadinessCheck = Callable[[], Awaitable[None]]


async def failed_dependencies(
    checks: Mapping[str, ReadinessCheck], timeout_seconds: float = READINESS_TIMEOUT_SECONDS
) -> dict[str, str]:
    """Run `checks` concurrently and return the error of each that failed, by name."""

    async def run(check: ReadinessCheck) -> str | None:
        try:
            async with asyncio.timeout(timeout_seconds):
                await check()
        except TimeoutError:
            return f"timed out after {timeout_seconds} s"
        except Exception as error:
            # Any error means "not ready"; the probe reports it rather than failing.
            return repr(error)
        return None

    results = await asyncio.gather(*(run(check) for check in checks.values()))
    failures = {name: error for name, error in zip(checks, results, strict=True) if error}
    if failures:
        logger.warning("readiness_failed", extra={"failures": failures})
    return failures


def redis_ping(client: Callable[[], Awaitable[RedisClient]]) -> ReadinessCheck:
    """Return a check that sends PING on the client that `client` resolves."""

    async def check() -> None:
        redis = await client()
        if not await redis.ping():
            raise ConnectionError("Redis returned no PONG to PING")

    return check
