"""Integration tests of check attempts, conditional create, the request ledger, the send limiter
and plain codes, on the Redis at 127.0.0.1:6379 and on a local Redis Cluster.

The `client` fixture (see conftest.py) runs each test once with each kind of client.
"""

import asyncio
import json
import math
from collections.abc import Awaitable, Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from uuid import uuid4

import pytest
import redis
from redis.crc import key_slot

from adapters.redis.connection import RedisClient
from adapters.redis.ledger import RedisRequestLedger
from adapters.redis.limiter import RedisSendLimiter
from adapters.redis.plain_codes import RedisPlainCodeStore
from adapters.redis.store import RedisVerificationStore
from application.errors import RequestInProgress, StoreUnavailable, VerificationNotFound
from application.ports import Claim, LimitDecision
from domain.code import CodeDigester, VerificationCode
from domain.delivery import DeliveryStatus
from domain.events import SendRejectionReason
from domain.phone import PhoneNumber
from domain.verification import Verification
from tests.support.redis_store import (
    PHONE,
    TIME_TO_LIVE,
    is_refused_connection,
    new_verification,
    node_url,
)

OTHER_PHONE = PhoneNumber("+593991234568")
# Milliseconds that may pass between two reads of a TTL in one test.
TTL_TOLERANCE_MS = 1000
START = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


@pytest.fixture
def ledger(client: RedisClient, key_prefix: str) -> RedisRequestLedger:
    return RedisRequestLedger(client, key_prefix=key_prefix, window_seconds=600)


async def warm_up(client: RedisClient, connections: int) -> None:
    """Open connections first, so concurrent calls race instead of queueing behind set-up."""
    await asyncio.gather(*(client.ping() for _ in range(connections)))


# Check attempts


async def test_record_attempt_counts_past_limit(store: RedisVerificationStore) -> None:
    verification = new_verification()
    await store.create(verification)

    counts = [await store.record_attempt(verification.id) for _ in range(6)]

    assert counts == [1, 2, 3, 4, 5, 6]
    stored = await store.get(verification.id)
    assert stored is not None
    assert stored.check_attempts == 6


async def test_record_attempt_counts_concurrent_calls_once_each(
    store: RedisVerificationStore, client: RedisClient
) -> None:
    verification = new_verification()
    await store.create(verification)
    await warm_up(client, 20)

    counts = await asyncio.gather(*(store.record_attempt(verification.id) for _ in range(20)))

    assert sorted(counts) == list(range(1, 21))


async def test_record_attempt_expires_counter_with_record(
    store: RedisVerificationStore, client: RedisClient
) -> None:
    verification = new_verification()
    await store.create(verification)
    record_key = store.record_key(verification.id)
    counter_key = store.attempts_key(verification.id)

    for _ in range(5):
        await store.record_attempt(verification.id)

        counter_ttl = await client.pttl(counter_key)
        record_ttl = await client.pttl(record_key)
        assert counter_ttl != -1, "the counter has no expiry"
        assert counter_ttl > 0
        assert counter_ttl >= record_ttl - TTL_TOLERANCE_MS
        assert await client.pexpiretime(counter_key) == await client.pexpiretime(record_key)


async def test_record_attempt_raises_not_found_for_missing_record(
    store: RedisVerificationStore, client: RedisClient
) -> None:
    with pytest.raises(VerificationNotFound, match="never-stored"):
        await store.record_attempt("never-stored")

    assert await client.exists(store.attempts_key("never-stored")) == 0


async def test_record_attempt_rejects_record_without_expiry(
    store: RedisVerificationStore, client: RedisClient
) -> None:
    verification = new_verification()
    await store.create(verification)
    record_key = store.record_key(verification.id)
    await client.persist(record_key)

    with pytest.raises(ValueError, match="has no expiry"):
        await store.record_attempt(verification.id)

    assert await client.exists(store.attempts_key(verification.id)) == 0


async def test_get_counts_missing_counter_as_zero(store: RedisVerificationStore) -> None:
    verification = new_verification()
    await store.create(verification)

    stored = await store.get(verification.id)

    assert stored is not None
    assert stored.check_attempts == 0


async def test_get_raises_for_counter_that_is_not_integer(
    store: RedisVerificationStore, client: RedisClient
) -> None:
    verification = new_verification()
    await store.create(verification)
    counter_key = store.attempts_key(verification.id)
    await client.set(counter_key, b"many", px=60_000)

    with pytest.raises(ValueError, match="not an integer") as raised:
        await store.get(verification.id)

    assert repr(counter_key) in str(raised.value)


# Conditional create


async def test_create_resets_attempts(store: RedisVerificationStore, client: RedisClient) -> None:
    first = new_verification(code_digest="a" * 64)
    await store.create(first)
    for _ in range(3):
        await store.record_attempt(first.id)
    second = replace(first, code_digest="b" * 64)

    blocking = await store.create(second)

    assert blocking is None
    assert await client.exists(store.attempts_key(first.id)) == 0
    assert await store.get(first.id) == second
    assert await store.record_attempt(first.id) == 1


async def test_create_keeps_live_record_when_replace_refused(
    store: RedisVerificationStore, client: RedisClient
) -> None:
    live = new_verification(code_digest="a" * 64)
    await store.create(live)
    await store.record_attempt(live.id)
    record_key = store.record_key(live.id)
    counter_key = store.attempts_key(live.id)
    bytes_before = await client.get(record_key)
    expiry_before = await client.pexpiretime(record_key)
    seen: list[Verification] = []

    def may_replace(current: Verification) -> bool:
        seen.append(current)
        return False

    newer = replace(live, code_digest="b" * 64, created_at=live.created_at + timedelta(seconds=5))
    blocking = await store.create(newer, may_replace)

    assert blocking == replace(live, check_attempts=1)
    # Once on the store's snapshot, once on the fresh read that confirms the refusal.
    assert seen == [replace(live, check_attempts=1)] * 2
    assert await client.get(record_key) == bytes_before
    assert await client.pexpiretime(record_key) == expiry_before
    assert await client.get(counter_key) == b"1"


async def test_create_replaces_record_when_allowed(
    store: RedisVerificationStore, client: RedisClient
) -> None:
    live = new_verification(code_digest="a" * 64)
    await store.create(live)
    await store.record_attempt(live.id)
    newer = replace(live, code_digest="b" * 64)

    blocking = await store.create(newer, lambda current: current.code_digest == "a" * 64)

    assert blocking is None
    assert await store.get(live.id) == newer
    assert await client.exists(store.attempts_key(live.id)) == 0


async def test_create_writes_absent_record_without_asking(store: RedisVerificationStore) -> None:
    verification = new_verification()
    calls = 0

    def may_replace(current: Verification) -> bool:
        nonlocal calls
        calls += 1
        return False

    blocking = await store.create(verification, may_replace)

    assert blocking is None
    assert calls == 0
    assert await store.get(verification.id) == verification


async def test_concurrent_creates_store_exactly_one(
    store: RedisVerificationStore, client: RedisClient
) -> None:
    base = new_verification()
    candidates = [replace(base, code_digest=f"{index:064x}") for index in range(20)]
    await warm_up(client, 20)

    results = await asyncio.gather(
        *(store.create(candidate, lambda current: False) for candidate in candidates)
    )

    stored = await store.get(base.id)
    assert stored in candidates
    assert results.count(None) == 1
    assert candidates[results.index(None)] == stored
    for result in results:
        assert result is None or result == stored


async def test_create_decides_again_after_concurrent_change(
    store: RedisVerificationStore, client: RedisClient
) -> None:
    live = new_verification(code_digest="a" * 64)
    await store.create(live)
    record_key = store.record_key(live.id)
    seen: list[str] = []

    with redis.Redis.from_url(await node_url(client, record_key)) as rival:

        def may_replace(current: Verification) -> bool:
            seen.append(current.code_digest)
            if len(seen) == 1:
                # Another writer stores a newer code between this read and the write.
                record = json.loads(rival.get(record_key) or b"{}")
                rival.set(record_key, json.dumps({**record, "code_digest": "c" * 64}), keepttl=True)
            # Only the first code may be replaced.
            return current.code_digest == "a" * 64

        blocking = await store.create(replace(live, code_digest="b" * 64), may_replace)

    assert seen == ["a" * 64, "c" * 64]
    assert blocking == replace(live, code_digest="c" * 64)
    assert await store.get(live.id) == blocking


async def test_create_gives_up_after_max_attempts(client: RedisClient, key_prefix: str) -> None:
    store = RedisVerificationStore(client, key_prefix=key_prefix, max_update_attempts=3)
    live = new_verification()
    # Created through another store, so every attempt starts from a fresh read.
    await RedisVerificationStore(client, key_prefix=key_prefix).create(live)
    record_key = store.record_key(live.id)
    calls = 0

    with redis.Redis.from_url(await node_url(client, record_key)) as rival:

        def may_replace(current: Verification) -> bool:
            nonlocal calls
            calls += 1
            record = json.loads(rival.get(record_key) or b"{}")
            rival.set(record_key, json.dumps({**record, "locale": str(calls)}), keepttl=True)
            return True

        with pytest.raises(StoreUnavailable, match="changed the record concurrently"):
            await store.create(replace(live, code_digest="b" * 64), may_replace)

    assert calls == 3
    assert await store.get(live.id) == replace(live, locale="3")


# Request ledger


async def test_ledger_key_puts_request_key_in_hash_tag(ledger: RedisRequestLedger) -> None:
    key = ledger.request_key("Verification:3:1042")

    assert key.endswith(":request:{Verification:3:1042}")


@pytest.mark.parametrize("request_key", ["", "r" * 321])
async def test_ledger_rejects_invalid_request_key(
    ledger: RedisRequestLedger, request_key: str
) -> None:
    with pytest.raises(ValueError, match="invalid request key"):
        await ledger.claim(request_key, "worker-a", 30)


async def test_ledger_accepts_request_key_of_200_characters(ledger: RedisRequestLedger) -> None:
    assert await ledger.claim("r" * 200, "worker-a", 30) is Claim.ACQUIRED


async def test_claim_acquires_new_request(ledger: RedisRequestLedger, client: RedisClient) -> None:
    claim = await ledger.claim("Verification:3:1042", "worker-a", 30)

    assert claim is Claim.ACQUIRED
    key = ledger.request_key("Verification:3:1042")
    entry = await client.hgetall(key)
    assert entry[b"state"] == b"claimed"
    assert entry[b"owner"] == b"worker-a"
    assert entry[b"lease_ms"] == b"30000"
    claimed_at_ms = int(entry[b"claimed_at_ms"])
    now_ms = int(datetime.now(UTC).timestamp() * 1000)
    assert abs(claimed_at_ms - now_ms) < 5000
    assert 600_000 - TTL_TOLERANCE_MS < await client.pttl(key) <= 600_000


async def test_claim_renews_lease_for_same_owner(
    ledger: RedisRequestLedger, client: RedisClient
) -> None:
    await ledger.claim("request-1", "worker-a", 30)
    key = ledger.request_key("request-1")
    first_claimed_at = int(await client.hget(key, "claimed_at_ms") or 0)
    await asyncio.sleep(0.01)

    claim = await ledger.claim("request-1", "worker-a", 45)

    assert claim is Claim.ACQUIRED
    assert int(await client.hget(key, "claimed_at_ms") or 0) > first_claimed_at
    assert await client.hget(key, "lease_ms") == b"45000"


async def test_claim_reports_in_progress_during_other_lease(
    ledger: RedisRequestLedger, client: RedisClient
) -> None:
    await ledger.claim("request-1", "worker-a", 30)

    claim = await ledger.claim("request-1", "worker-b", 30)

    assert claim is Claim.IN_PROGRESS
    assert await client.hget(ledger.request_key("request-1"), "owner") == b"worker-a"


async def test_claim_takes_over_after_lease_runs_out(
    ledger: RedisRequestLedger, client: RedisClient
) -> None:
    await ledger.claim("request-1", "worker-a", 0.05)
    await asyncio.sleep(0.1)

    claim = await ledger.claim("request-1", "worker-b", 30)

    assert claim is Claim.ACQUIRED
    key = ledger.request_key("request-1")
    assert await client.hget(key, "owner") == b"worker-b"
    assert await client.hget(key, "state") == b"claimed"
    assert await ledger.claim("request-1", "worker-a", 30) is Claim.IN_PROGRESS


async def test_claim_hands_expired_started_send_over(
    ledger: RedisRequestLedger, client: RedisClient
) -> None:
    await ledger.claim("request-1", "worker-a", 0.05)
    await ledger.mark_send_started("request-1", "worker-a")
    await asyncio.sleep(0.1)

    claim = await ledger.claim("request-1", "worker-b", 30)

    assert claim is Claim.SEND_STARTED
    key = ledger.request_key("request-1")
    assert await client.hget(key, "state") == b"send_started"
    assert await client.hget(key, "owner") == b"worker-b"
    assert await ledger.claim("request-1", "worker-c", 30) is Claim.IN_PROGRESS


async def test_claim_waits_for_live_started_send(
    ledger: RedisRequestLedger, client: RedisClient
) -> None:
    await ledger.claim("request-1", "worker-a", 30)
    await ledger.mark_send_started("request-1", "worker-a")

    claim = await ledger.claim("request-1", "worker-b", 30)

    assert claim is Claim.IN_PROGRESS
    assert await client.hget(ledger.request_key("request-1"), "owner") == b"worker-a"


async def test_claim_reports_own_started_send(
    ledger: RedisRequestLedger, client: RedisClient
) -> None:
    await ledger.claim("request-1", "worker-a", 30)
    await ledger.mark_send_started("request-1", "worker-a")

    claim = await ledger.claim("request-1", "worker-a", 30)

    assert claim is Claim.SEND_STARTED
    assert await client.hget(ledger.request_key("request-1"), "state") == b"send_started"


async def test_claim_reports_completed_to_every_owner(ledger: RedisRequestLedger) -> None:
    await ledger.claim("request-1", "worker-a", 30)
    await ledger.mark_send_started("request-1", "worker-a")
    await ledger.complete("request-1", "worker-a")

    assert await ledger.claim("request-1", "worker-a", 30) is Claim.COMPLETED
    assert await ledger.claim("request-1", "worker-b", 30) is Claim.COMPLETED


async def test_mark_send_started_refuses_after_take_over(
    ledger: RedisRequestLedger, client: RedisClient
) -> None:
    await ledger.claim("request-1", "worker-a", 0.05)
    await asyncio.sleep(0.1)
    await ledger.claim("request-1", "worker-b", 30)

    with pytest.raises(RequestInProgress, match="held by another owner"):
        await ledger.mark_send_started("request-1", "worker-a")

    key = ledger.request_key("request-1")
    assert await client.hget(key, "state") == b"claimed"
    assert await client.hget(key, "owner") == b"worker-b"


async def test_mark_send_started_refuses_completed_request(ledger: RedisRequestLedger) -> None:
    await ledger.claim("request-1", "worker-a", 30)
    await ledger.complete("request-1", "worker-a")

    with pytest.raises(RequestInProgress, match="was completed"):
        await ledger.mark_send_started("request-1", "worker-a")


async def test_mark_send_started_refreshes_window(
    ledger: RedisRequestLedger, client: RedisClient
) -> None:
    await ledger.claim("request-1", "worker-a", 30)
    key = ledger.request_key("request-1")
    await client.pexpire(key, 1000)

    await ledger.mark_send_started("request-1", "worker-a")

    assert await client.hget(key, "state") == b"send_started"
    assert await client.hexists(key, "send_started_at_ms")
    assert await client.pttl(key) > 600_000 - TTL_TOLERANCE_MS


async def test_complete_records_outcome_of_any_owner(
    ledger: RedisRequestLedger, client: RedisClient
) -> None:
    await ledger.claim("request-1", "worker-a", 0.05)
    await asyncio.sleep(0.1)
    await ledger.claim("request-1", "worker-b", 30)
    key = ledger.request_key("request-1")
    await client.pexpire(key, 1000)

    await ledger.complete("request-1", "worker-a")

    assert await client.hget(key, "state") == b"completed"
    assert await client.hexists(key, "completed_at_ms")
    assert await client.pttl(key) > 600_000 - TTL_TOLERANCE_MS
    assert await ledger.claim("request-1", "worker-b", 30) is Claim.COMPLETED


async def test_complete_leaves_completed_request_unchanged(
    ledger: RedisRequestLedger, client: RedisClient
) -> None:
    await ledger.claim("request-1", "worker-a", 30)
    await ledger.complete("request-1", "worker-a")
    key = ledger.request_key("request-1")
    before = await client.hgetall(key)

    await ledger.complete("request-1", "worker-b")

    assert await client.hgetall(key) == before


async def test_racing_owners_acquire_once(ledger: RedisRequestLedger, client: RedisClient) -> None:
    await warm_up(client, 20)

    claims = await asyncio.gather(
        *(ledger.claim("request-1", f"worker-{index}", 30) for index in range(20))
    )

    assert claims.count(Claim.ACQUIRED) == 1
    assert claims.count(Claim.IN_PROGRESS) == 19
    winner = f"worker-{claims.index(Claim.ACQUIRED)}"
    assert await client.hget(ledger.request_key("request-1"), "owner") == winner.encode()


# Send limiter


def limiter(client: RedisClient, key_prefix: str, **limits: int) -> RedisSendLimiter:
    return RedisSendLimiter(client, key_prefix=key_prefix, **limits)


def test_limiter_keys_of_one_phone_share_slot(single_node_client: RedisClient) -> None:
    hour_key, day_key = RedisSendLimiter(single_node_client, key_prefix="p").phone_keys(PHONE)

    assert hour_key == "p:limit:{+593991234567}:hour"
    assert day_key == "p:limit:{+593991234567}:day"
    assert key_slot(hour_key.encode()) == key_slot(day_key.encode())


def test_limiter_rejects_negative_limit(single_node_client: RedisClient) -> None:
    with pytest.raises(ValueError, match="invalid per_phone_per_day -1"):
        RedisSendLimiter(single_node_client, per_phone_per_day=-1)


async def test_concurrent_acquires_stop_at_hourly_limit(
    client: RedisClient, key_prefix: str
) -> None:
    limits = limiter(client, key_prefix, per_phone_per_hour=5, per_phone_per_day=10)
    await warm_up(client, 20)

    decisions = await asyncio.gather(
        *(limits.acquire(PHONE, f"token-{index}", START) for index in range(20))
    )

    allowed = [decision for decision in decisions if decision.allowed]
    assert len(allowed) == 5
    for decision in decisions:
        if not decision.allowed:
            assert decision.reason is SendRejectionReason.PHONE_HOURLY_LIMIT
    hour_key, day_key = limits.phone_keys(PHONE)
    assert await client.zcard(hour_key) == 5
    assert await client.zcard(day_key) == 5


async def test_acquire_reports_hourly_then_daily_limit(
    client: RedisClient, key_prefix: str
) -> None:
    limits = limiter(client, key_prefix, per_phone_per_hour=2, per_phone_per_day=3)
    assert (await limits.acquire(PHONE, "t1", START)).allowed
    assert (await limits.acquire(PHONE, "t2", START + timedelta(seconds=60))).allowed

    hourly = await limits.acquire(PHONE, "t3", START + timedelta(seconds=120))
    allowed_next_hour = await limits.acquire(PHONE, "t4", START + timedelta(seconds=3600))
    daily = await limits.acquire(PHONE, "t5", START + timedelta(seconds=3700))

    assert hourly == LimitDecision(False, SendRejectionReason.PHONE_HOURLY_LIMIT, 3600 - 120)
    assert allowed_next_hour.allowed
    assert daily == LimitDecision(False, SendRejectionReason.PHONE_DAILY_LIMIT, 86400 - 3700)


async def test_acquire_reports_later_window_when_both_full(
    client: RedisClient, key_prefix: str
) -> None:
    limits = limiter(client, key_prefix, per_phone_per_hour=1, per_phone_per_day=1)
    await limits.acquire(PHONE, "t1", START)

    decision = await limits.acquire(PHONE, "t2", START + timedelta(seconds=10))

    assert decision == LimitDecision(False, SendRejectionReason.PHONE_DAILY_LIMIT, 86400 - 10)


async def test_acquire_rounds_retry_after_up(client: RedisClient, key_prefix: str) -> None:
    limits = limiter(client, key_prefix, per_phone_per_hour=1, per_phone_per_day=0)
    await limits.acquire(PHONE, "t1", START)

    early = await limits.acquire(PHONE, "t2", START + timedelta(milliseconds=500))
    late = await limits.acquire(PHONE, "t3", START + timedelta(seconds=3599, milliseconds=900))

    assert early.retry_after_seconds == math.ceil(3599.5)
    assert late.retry_after_seconds == 1


async def test_acquire_counts_token_once(client: RedisClient, key_prefix: str) -> None:
    limits = limiter(client, key_prefix, per_phone_per_hour=1, per_phone_per_day=1)

    first = await limits.acquire(PHONE, "token-1", START)
    retry = await limits.acquire(PHONE, "token-1", START + timedelta(seconds=5))

    assert first.allowed
    assert retry.allowed
    hour_key, _ = limits.phone_keys(PHONE)
    assert await client.zrange(hour_key, 0, -1, withscores=True) == [
        (b"token-1", START.timestamp() * 1000)
    ]


async def test_zero_phone_limit_turns_window_off(client: RedisClient, key_prefix: str) -> None:
    limits = limiter(client, key_prefix, per_phone_per_hour=0, per_phone_per_day=2)

    decisions = [
        await limits.acquire(PHONE, f"t{index}", START + timedelta(seconds=index))
        for index in range(3)
    ]

    assert [decision.allowed for decision in decisions] == [True, True, False]
    assert decisions[2].reason is SendRejectionReason.PHONE_DAILY_LIMIT
    hour_key, _ = limits.phone_keys(PHONE)
    assert await client.exists(hour_key) == 0


async def test_global_limit_rejects_and_counts_nothing(
    client: RedisClient, key_prefix: str
) -> None:
    limits = limiter(
        client, key_prefix, per_phone_per_hour=5, per_phone_per_day=10, global_per_minute=2
    )
    assert (await limits.acquire(PHONE, "t1", START)).allowed
    assert (await limits.acquire(PHONE, "t2", START + timedelta(seconds=10))).allowed

    decision = await limits.acquire(OTHER_PHONE, "t3", START + timedelta(seconds=15))

    assert decision == LimitDecision(False, SendRejectionReason.GLOBAL_LIMIT, 60 - 15)
    other_hour, other_day = limits.phone_keys(OTHER_PHONE)
    assert await client.zcard(other_hour) == 0
    assert await client.zcard(other_day) == 0
    assert await client.zcard(limits.global_key()) == 2
    hour_key, _ = limits.phone_keys(PHONE)
    assert await client.zcard(hour_key) == 2


async def test_global_limit_frees_up_after_a_minute(client: RedisClient, key_prefix: str) -> None:
    limits = limiter(client, key_prefix, global_per_minute=1)
    await limits.acquire(PHONE, "t1", START)

    decision = await limits.acquire(OTHER_PHONE, "t2", START + timedelta(seconds=60))

    assert decision.allowed


async def test_release_removes_token_from_every_window(
    client: RedisClient, key_prefix: str
) -> None:
    limits = limiter(
        client, key_prefix, per_phone_per_hour=1, per_phone_per_day=1, global_per_minute=1
    )
    await limits.acquire(PHONE, "t1", START)

    await limits.release(PHONE, "t1")

    hour_key, day_key = limits.phone_keys(PHONE)
    for key in (hour_key, day_key, limits.global_key()):
        assert await client.zscore(key, "t1") is None, key
    assert (await limits.acquire(PHONE, "t2", START + timedelta(seconds=1))).allowed


async def test_release_of_unknown_token_changes_nothing(
    client: RedisClient, key_prefix: str
) -> None:
    limits = limiter(client, key_prefix, per_phone_per_hour=2)
    await limits.acquire(PHONE, "t1", START)

    await limits.release(PHONE, "never-acquired")

    hour_key, _ = limits.phone_keys(PHONE)
    assert await client.zcard(hour_key) == 1


async def test_limiter_keys_expire_after_their_window(client: RedisClient, key_prefix: str) -> None:
    limits = limiter(
        client, key_prefix, per_phone_per_hour=5, per_phone_per_day=10, global_per_minute=5
    )

    await limits.acquire(PHONE, "t1", datetime.now(UTC))

    hour_key, day_key = limits.phone_keys(PHONE)
    windows = {hour_key: 3_600_000, day_key: 86_400_000, limits.global_key(): 60_000}
    for key, window_ms in windows.items():
        assert window_ms - TTL_TOLERANCE_MS < await client.pttl(key) <= window_ms, key


async def test_acquire_rejects_naive_time(client: RedisClient, key_prefix: str) -> None:
    limits = limiter(client, key_prefix)

    with pytest.raises(ValueError, match="without a time zone"):
        await limits.acquire(PHONE, "t1", START.replace(tzinfo=None))


# Plain codes


async def test_plain_code_stored_under_bare_id(client: RedisClient, key_prefix: str) -> None:
    plain_codes = RedisPlainCodeStore(client)
    # Inside the test's prefix, so the fixture deletes it afterwards.
    verification_id = f"{key_prefix}:plain"

    await plain_codes.put(verification_id, VerificationCode("483920"), 300)

    assert await client.get(verification_id) == b"483920"
    assert 299_000 < await client.pttl(verification_id) <= 300_000

    await plain_codes.delete(verification_id)

    assert await client.exists(verification_id) == 0


async def test_plain_code_rejects_ttl_below_one_second(client: RedisClient) -> None:
    with pytest.raises(ValueError, match="invalid ttl_seconds 0"):
        await RedisPlainCodeStore(client).put("any-id", VerificationCode("483920"), 0)


async def test_prefixed_keys_omit_plain_code(
    client: RedisClient, key_prefix: str, store: RedisVerificationStore, ledger: RedisRequestLedger
) -> None:
    code = VerificationCode("483920")
    verification_id = f"plain-{uuid4().hex}"
    digest = CodeDigester(b"test-code-secret").digest(code, verification_id)
    now = datetime.now(UTC)
    verification = Verification.start(verification_id, PHONE, digest, now, TIME_TO_LIVE, "es")
    limits = limiter(client, key_prefix, global_per_minute=10)
    plain_codes = RedisPlainCodeStore(client)

    try:
        await ledger.claim("request-1", "worker-a", 30)
        await limits.acquire(PHONE, "worker-a", now)
        await store.create(verification, lambda current: True)
        await plain_codes.put(verification_id, code, 300)
        await ledger.mark_send_started("request-1", "worker-a")
        await store.update(
            verification_id,
            lambda current: current.accept_message("SM-plain", DeliveryStatus.QUEUED, now),
        )
        await store.record_attempt(verification_id)
        await ledger.complete("request-1", "worker-a")

        keys = {key.decode() async for key in client.scan_iter(match=f"{key_prefix}:*")}
        assert keys == {
            store.record_key(verification_id),
            store.attempts_key(verification_id),
            store.message_sid_key("SM-plain"),
            ledger.request_key("request-1"),
            *limits.phone_keys(PHONE),
            limits.global_key(),
        }
        for key in keys:
            assert code.value.encode() not in await dump_value(client, key), key
        assert await client.get(verification_id) == code.value.encode()
    finally:
        await client.delete(verification_id)


async def dump_value(client: RedisClient, key: str) -> bytes:
    """Return every byte a key of any type in this layout contains."""
    kind = await client.type(key)
    if kind == b"string":
        value = await client.get(key)
        assert isinstance(value, bytes)
        return value
    if kind == b"hash":
        fields = await client.hgetall(key)
        return repr(fields).encode()
    if kind == b"zset":
        return repr(await client.zrange(key, 0, -1)).encode()
    raise AssertionError(f"unexpected type {kind!r} of key {key!r}")


# Connection failures


async def test_ledger_raises_unavailable_when_redis_down(
    unreachable_client: RedisClient,
) -> None:
    ledger = RedisRequestLedger(unreachable_client, key_prefix=f"test-{uuid4().hex}")

    operations: list[Callable[[], Awaitable[object]]] = [
        lambda: ledger.claim("request-1", "worker-a", 30),
        lambda: ledger.mark_send_started("request-1", "worker-a"),
        lambda: ledger.complete("request-1", "worker-a"),
    ]
    for operation in operations:
        with pytest.raises(StoreUnavailable) as raised:
            await operation()
        assert is_refused_connection(raised.value)
        assert raised.value.retriable


async def test_limiter_raises_unavailable_when_redis_down(
    unreachable_client: RedisClient,
) -> None:
    limits = RedisSendLimiter(
        unreachable_client, key_prefix=f"test-{uuid4().hex}", global_per_minute=10
    )

    operations: list[Callable[[], Awaitable[object]]] = [
        lambda: limits.acquire(PHONE, "t1", START),
        lambda: limits.release(PHONE, "t1"),
    ]
    for operation in operations:
        with pytest.raises(StoreUnavailable) as raised:
            await operation()
        assert is_refused_connection(raised.value)
        assert PHONE.e164 not in str(raised.value)


async def test_plain_codes_raise_unavailable_when_redis_down(
    unreachable_client: RedisClient,
) -> None:
    plain_codes = RedisPlainCodeStore(unreachable_client)

    operations: list[Callable[[], Awaitable[object]]] = [
        lambda: plain_codes.put("any-id", VerificationCode("483920"), 300),
        lambda: plain_codes.delete("any-id"),
    ]
    for operation in operations:
        with pytest.raises(StoreUnavailable) as raised:
            await operation()
        assert is_refused_connection(raised.value)
        assert "483920" not in str(raised.value)
