"""Measure the Redis memory of each pending verification (`python -m bench.redis_memory`).

For each of `--count` verifications the script makes the writes that the worker
makes for a request without `request_id`. These are the request ledger entry (claim,
send started, completed), one send limiter acquire with the default limits, the
record with the code digest and the accepted message, and the message SID lookup. It
then applies the `sent`, `delivered` and `read` status callbacks, which add to the
record's history. Memory is read after the send and again after the callbacks: the
`MEMORY USAGE` of every key, grouped by kind, and the growth of `used_memory` in
`INFO memory`.

Every key goes under a prefix of this run alone and is deleted at the end, also after
an error. The only server it talks to is the one given by `--redis`.
"""

import argparse
import asyncio
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from adapters.redis.connection import RedisClient, create_redis_client, redis_url
from adapters.redis.ledger import RedisRequestLedger
from adapters.redis.limiter import RedisSendLimiter
from adapters.redis.store import RedisVerificationStore
from domain.code import CodeAlphabet, CodeDigester, VerificationCode
from domain.delivery import DeliveryStatus
from domain.phone import PhoneNumber
from domain.verification import Verification

DEFAULT_REDIS = "127.0.0.1:6379"
# The defaults of the settings the keys depend on: CODE_TTL_SECONDS, CODE_LENGTH,
# MAX_SENDS_PER_PHONE_PER_HOUR and _PER_DAY, and the claim lease, which is twice
# SEND_MAX_ELAPSED_SECONDS.
CODE_TIME_TO_LIVE = timedelta(seconds=300)
CODE_LENGTH = 6
PER_PHONE_PER_HOUR = 5
PER_PHONE_PER_DAY = 10
CLAIM_LEASE_SECONDS = 120.0
TOPIC = "Verification"
PARTITIONS = 10
CALLBACK_STATUSES = (DeliveryStatus.SENT, DeliveryStatus.DELIVERED, DeliveryStatus.READ)


@dataclass(frozen=True, slots=True)
class Adapters:
    """The real Redis adapters the worker uses, all under one key prefix."""

    store: RedisVerificationStore
    ledger: RedisRequestLedger
    limiter: RedisSendLimiter
    digester: CodeDigester


@dataclass(frozen=True, slots=True)
class Snapshot:
    """Memory of the run's keys at one moment."""

    bytes_by_kind: Counter[str]
    keys_by_kind: Counter[str]
    used_memory: int


def parse_arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.redis_memory", description=__doc__)
    parser.add_argument(
        "--count",
        type=int,
        default=10_000,
        help="number of verifications to write (default: %(default)s)",
    )
    parser.add_argument(
        "--redis",
        default=DEFAULT_REDIS,
        help="Redis as host:port or a redis:// URL (default: %(default)s)",
    )
    parser.add_argument(
        "--concurrency",
        type=int,
        default=50,
        help="verifications written at the same time (default: %(default)s)",
    )
    arguments = parser.parse_args()
    if arguments.count < 1 or arguments.concurrency < 1:
        parser.error("--count and --concurrency must be 1 or more")
    return arguments


def build_adapters(client: RedisClient, key_prefix: str) -> Adapters:
    return Adapters(
        store=RedisVerificationStore(client, key_prefix=key_prefix),
        ledger=RedisRequestLedger(client, key_prefix=key_prefix),
        limiter=RedisSendLimiter(
            client,
            key_prefix=key_prefix,
            per_phone_per_hour=PER_PHONE_PER_HOUR,
            per_phone_per_day=PER_PHONE_PER_DAY,
        ),
        digester=CodeDigester(uuid.uuid4().hex.encode()),
    )


def verification_id(index: int) -> str:
    return f"user-{index:08d}"


def message_sid(index: int) -> str:
    # Twilio message SIDs are SM and 32 hex digits.
    return f"SM{index:032x}"


async def send(adapters: Adapters, index: int) -> None:
    """Write what the worker writes while it sends one code, in the worker's order."""
    owner = uuid.uuid4().hex
    request_key = f"{TOPIC}:{index % PARTITIONS}:{index}"
    # One phone per verification: the limiter then keeps two sorted sets per code.
    phone = PhoneNumber(f"+59399{index:07d}", "EC")
    now = datetime.now(UTC)

    await adapters.ledger.claim(request_key, owner, CLAIM_LEASE_SECONDS)
    decision = await adapters.limiter.acquire(phone, owner, now)
    if not decision.allowed:
        raise RuntimeError(f"the limiter rejected verification {index}: {decision.reason}")

    identifier = verification_id(index)
    code = VerificationCode.generate(CODE_LENGTH, CodeAlphabet.NUMERIC)
    verification = Verification.start(
        identifier,
        phone,
        adapters.digester.digest(code, identifier),
        now,
        CODE_TIME_TO_LIVE,
    )
    await adapters.store.create(verification, may_replace=lambda current: True)
    await adapters.ledger.mark_send_started(request_key, owner)

    accepted_at = datetime.now(UTC)
    await adapters.store.update(
        identifier,
        lambda current: current.accept_message(
            message_sid(index), DeliveryStatus.QUEUED, accepted_at
        ),
    )
    await adapters.ledger.complete(request_key, owner)


async def apply_callbacks(adapters: Adapters, index: int) -> None:
    """Record the status callbacks of a message that was read, as the webhook does."""
    for status in CALLBACK_STATUSES:
        reported_at = datetime.now(UTC)
        await adapters.store.update(
            verification_id(index),
            lambda current, status=status, at=reported_at: current.record_delivery(status, at),
        )


async def run_all(
    step: Callable[[Adapters, int], Awaitable[None]],
    adapters: Adapters,
    count: int,
    concurrency: int,
) -> None:
    for start in range(0, count, concurrency):
        batch = range(start, min(start + concurrency, count))
        await asyncio.gather(*(step(adapters, index) for index in batch))


def key_kind(key: str, key_prefix: str) -> str:
    """Name the kind of a key by its layout under `key_prefix`."""
    rest = key.removeprefix(f"{key_prefix}:")
    if rest.startswith("request:"):
        return "ledger entry"
    if rest.startswith("sid:"):
        return "message SID lookup"
    if rest.startswith("limit:"):
        return f"limiter log ({rest.rsplit(':', 1)[-1]})"
    if rest.endswith(":attempts"):
        return "check attempt counter"
    return "verification record"


async def run_keys(client: RedisClient, key_prefix: str) -> list[str]:
    return [key.decode() async for key in client.scan_iter(match=f"{key_prefix}:*", count=1000)]


def batches(items: list[str], size: int) -> Iterable[list[str]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


async def snapshot(client: RedisClient, key_prefix: str) -> Snapshot:
    keys = await run_keys(client, key_prefix)
    bytes_by_kind: Counter[str] = Counter()
    keys_by_kind: Counter[str] = Counter()
    for batch in batches(keys, 1000):
        pipeline = client.pipeline(transaction=False)
        for key in batch:
            # SAMPLES 0 reads every element of a collection, so the figure is exact.
            pipeline.memory_usage(key, samples=0)
        sizes = await pipeline.execute()
        for key, size in zip(batch, sizes, strict=True):
            kind = key_kind(key, key_prefix)
            bytes_by_kind[kind] += size or 0
            keys_by_kind[kind] += 1
    memory = await client.info("memory")
    return Snapshot(bytes_by_kind, keys_by_kind, int(memory["used_memory"]))


async def delete_run_keys(client: RedisClient, key_prefix: str) -> int:
    keys = await run_keys(client, key_prefix)
    for batch in batches(keys, 1000):
        await client.unlink(*batch)
    return len(keys)


def report(title: str, measured: Snapshot, baseline: int, count: int) -> None:
    total = sum(measured.bytes_by_kind.values())
    growth = measured.used_memory - baseline
    print(f"\n{title}")
    print(f"  {'key kind':<28} {'keys':>8} {'bytes per verification':>24}")
    for kind in sorted(measured.bytes_by_kind):
        per_verification = measured.bytes_by_kind[kind] / count
        print(f"  {kind:<28} {measured.keys_by_kind[kind]:>8} {per_verification:>24.0f}")
    print(f"  {'sum of MEMORY USAGE':<28} {'':>8} {total / count:>24.0f}")
    print(f"  {'change of used_memory':<28} {'':>8} {growth / count:>24.0f}")


async def main() -> None:
    arguments = parse_arguments()
    key_prefix = f"bench-memory-{uuid.uuid4().hex}"
    client = create_redis_client(redis_url(arguments.redis))
    try:
        server = await client.info("server")
        print(
            f"Redis {server['redis_version']} at {arguments.redis}, "
            f"{arguments.count} verifications under prefix {key_prefix}"
        )
        adapters = build_adapters(client, key_prefix)
        baseline = int((await client.info("memory"))["used_memory"])
        try:
            await run_all(send, adapters, arguments.count, arguments.concurrency)
            report(
                "after the send (status queued)",
                await snapshot(client, key_prefix),
                baseline,
                arguments.count,
            )
            await run_all(apply_callbacks, adapters, arguments.count, arguments.concurrency)
            report(
                "after the sent, delivered and read callbacks",
                await snapshot(client, key_prefix),
                baseline,
                arguments.count,
            )
        finally:
            deleted = await delete_run_keys(client, key_prefix)
            print(f"\ndeleted {deleted} keys under {key_prefix}")
    finally:
        await client.aclose()


if __name__ == "__main__":
    asyncio.run(main())
