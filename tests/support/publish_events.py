"""Publishes CodeSent events on a Redis channel with RedisNotifier, as a worker process does.

Run as `python -m tests.support.publish_events --channel C --prefix P --count N`; it
publishes the events for ids P-0 to P-(N-1) in order and exits 0 once all are out.
"""

import argparse
import asyncio
from datetime import UTC, datetime

from adapters.notification.redis_channel import RedisNotifier
from adapters.redis.connection import create_redis_client
from domain.events import CodeSent


async def publish(channel: str, prefix: str, count: int) -> None:
    client = create_redis_client("redis://127.0.0.1:6379")
    notifier = RedisNotifier(client, channel)
    notifier.start()
    for number in range(count):
        await notifier.publish(
            CodeSent(f"{prefix}-{number}", "+593******567", f"SM{number:04d}", datetime.now(UTC))
        )
    await notifier.stop(drain_timeout_seconds=10.0)
    await client.aclose()
    if notifier.frames_dropped:
        raise SystemExit(f"{notifier.frames_dropped} events were not published")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--channel", required=True)
    parser.add_argument("--prefix", required=True)
    parser.add_argument("--count", type=int, default=3)
    arguments = parser.parse_args()
    asyncio.run(publish(arguments.channel, arguments.prefix, arguments.count))


if __name__ == "__main__":
    main()
