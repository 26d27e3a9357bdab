"""Integration tests of RedisVerificationStore on the Redis at 127.0.0.1:6379 and on a cluster.

The `client` fixture (see conftest.py) runs each test once with a single-node client and
once with a cluster client of a local three-node Redis Cluster.
"""

import asyncio
import itertools
import json
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta, timezone
from uuid import uuid4

import pytest
import redis
from redis.asyncio import Redis

from adapters.redis.connection import RedisClient
from adapters.redis.store import RedisVerificationStore
from application.errors import StoreUnavailable, VerificationNotFound
from domain.code import CodeDigester, VerificationCode
from domain.delivery import DeliveryStatus, advances
from domain.verification import StatusChange, Verification
from tests.support.redis_store import (
    PHONE,
    TIME_TO_LIVE,
    is_refused_connection,
    new_verification,
    node_url,
)

RETENTION = timedelta(seconds=3600)
MESSAGE_SID = "SM" + "0123456789abcdef" * 2


@pytest.fixture
def short_lived_store(client: RedisClient, key_prefix: str) -> RedisVerificationStore:
    """A store without retention, whose records disappear when their code expires."""
    return RedisVerificationStore(client, key_prefix=key_prefix, retention_seconds=0)


def epoch_milliseconds(moment: datetime) -> int:
    return (moment - datetime(1970, 1, 1, tzinfo=UTC)) // timedelta(milliseconds=1)


def retained_until(verification: Verification) -> int:
    """Return the Unix milliseconds at which the default store drops the record."""
    return epoch_milliseconds(verification.expires_at + RETENTION)


def report(status: DeliveryStatus, now: datetime) -> Callable[[Verification], Verification | None]:
    """Return an update that records a status report, as RecordDeliveryStatus does."""

    def apply(current: Verification) -> Verification | None:
        return current.record_delivery(status, now)

    return apply


async def stored_values(client: RedisClient, key_prefix: str) -> dict[bytes, bytes]:
    keys = [key async for key in client.scan_iter(match=f"{key_prefix}:*")]
    # One GET per key, because a cluster rejects an MGET over several slots.
    values = {}
    for key in keys:
        value = await client.get(key)
        assert isinstance(value, bytes)
        values[key] = value
    return values


# Layout


def test_record_key_keeps_id_in_hash_tag(single_node_client: RedisClient) -> None:
    store = RedisVerificationStore(single_node_client)

    assert store.record_key("abc-123") == "verification:{abc-123}"
    assert store.attempts_key("abc-123") == "verification:{abc-123}:attempts"
    assert store.message_sid_key(MESSAGE_SID) == f"verification:sid:{MESSAGE_SID}"


@pytest.mark.parametrize("key_prefix_value", ["", "verification{x}", "a}"])
def test_store_rejects_prefix_with_braces(
    single_node_client: RedisClient, key_prefix_value: str
) -> None:
    with pytest.raises(ValueError, match="invalid key prefix"):
        RedisVerificationStore(single_node_client, key_prefix=key_prefix_value)


def test_store_rejects_negative_retention(single_node_client: RedisClient) -> None:
    with pytest.raises(ValueError, match="invalid retention_seconds -1"):
        RedisVerificationStore(single_node_client, retention_seconds=-1)


# create and get


async def test_get_returns_every_stored_field(store: RedisVerificationStore) -> None:
    created_at = datetime.now(UTC)
    verification = replace(
        new_verification(created_at),
        message_sid=MESSAGE_SID,
        delivery_status=DeliveryStatus.UNDELIVERED,
        error_code="63016",
        error_message="Outside the allowed window: use a template",
        history=(
            StatusChange(DeliveryStatus.QUEUED, created_at + timedelta(seconds=1)),
            StatusChange(DeliveryStatus.SENT, created_at + timedelta(seconds=2)),
            StatusChange(DeliveryStatus.UNDELIVERED, created_at + timedelta(seconds=3), "63016"),
        ),
    )

    await store.create(verification)

    assert await store.get(verification.id) == verification


async def test_get_returns_approval_and_cancellation(store: RedisVerificationStore) -> None:
    now = datetime.now(UTC)
    approved = replace(new_verification(now), approved_at=now + timedelta(seconds=30))
    canceled = replace(new_verification(now), canceled_at=now + timedelta(seconds=40))

    await store.create(approved)
    await store.create(canceled)

    assert await store.get(approved.id) == approved
    assert await store.get(canceled.id) == canceled


async def test_create_omits_check_attempts_from_record(
    store: RedisVerificationStore, client: RedisClient
) -> None:
    verification = replace(new_verification(), check_attempts=3)

    await store.create(verification)

    raw = await client.get(store.record_key(verification.id))
    assert raw is not None
    record = json.loads(raw)
    assert "check_attempts" not in record
    assert record["approved_at"] is None
    assert record["canceled_at"] is None
    stored = await store.get(verification.id)
    assert stored is not None
    assert stored.check_attempts == 0


async def test_get_reads_record_without_approval_fields(
    store: RedisVerificationStore, client: RedisClient
) -> None:
    verification = new_verification()
    await store.create(verification)
    key = store.record_key(verification.id)
    raw = await client.get(key)
    assert raw is not None
    record = json.loads(raw)
    # The layout written before approval and cancellation existed.
    del record["approved_at"]
    del record["canceled_at"]
    await client.set(key, json.dumps(record), keepttl=True)

    assert await store.get(verification.id) == verification


async def test_get_returns_fresh_verification(
    store: RedisVerificationStore,
) -> None:
    verification = replace(new_verification(), locale=None)

    await store.create(verification)

    assert await store.get(verification.id) == verification


async def test_create_stores_utc_iso_datetimes(
    store: RedisVerificationStore, client: RedisClient
) -> None:
    quito = timezone(timedelta(hours=-5))
    verification = new_verification(datetime.now(quito))

    await store.create(verification)

    raw = await client.get(store.record_key(verification.id))
    assert raw is not None
    record = json.loads(raw)
    assert record["phone"] == "+593991234567"
    assert record["created_at"] == verification.created_at.astimezone(UTC).isoformat(
        timespec="microseconds"
    )
    assert record["created_at"].endswith("+00:00")
    assert record["expires_at"].endswith("+00:00")
    assert record["history"] == []
    stored = await store.get(verification.id)
    assert stored is not None
    assert stored.created_at == verification.created_at
    assert stored.created_at.tzinfo == UTC


async def test_create_replaces_record_with_same_id(
    store: RedisVerificationStore,
) -> None:
    first = new_verification(code_digest="a" * 64)
    second = replace(first, code_digest="b" * 64)

    await store.create(first)
    await store.create(second)

    assert await store.get(first.id) == second


async def test_create_rejects_naive_datetime(store: RedisVerificationStore) -> None:
    verification = new_verification(datetime.now(UTC).replace(tzinfo=None))

    with pytest.raises(ValueError, match="without a time zone"):
        await store.create(verification)


async def test_get_returns_none_for_missing_id(store: RedisVerificationStore) -> None:
    assert await store.get("never-stored") is None


async def test_get_raises_for_undecodable_record(
    store: RedisVerificationStore, client: RedisClient
) -> None:
    key = store.record_key("broken")
    await client.set(key, b"not json", px=60_000)

    with pytest.raises(ValueError) as raised:
        await store.get("broken")

    assert repr(key) in str(raised.value)


async def test_get_raises_for_record_with_missing_field(
    store: RedisVerificationStore, client: RedisClient
) -> None:
    verification = new_verification()
    await store.create(verification)
    key = store.record_key(verification.id)
    raw = await client.get(key)
    assert raw is not None
    record = json.loads(raw)
    del record["code_digest"]
    await client.set(key, json.dumps(record), keepttl=True)

    with pytest.raises(ValueError) as raised:
        await store.get(verification.id)

    assert repr(key) in str(raised.value)
    assert "'code_digest'" in str(raised.value)


# Expiry


async def test_create_keeps_record_for_retention_after_expiry(
    store: RedisVerificationStore, client: RedisClient
) -> None:
    verification = new_verification()

    await store.create(verification)

    key = store.record_key(verification.id)
    assert await client.pexpiretime(key) == retained_until(verification)
    remaining = await client.pttl(key)
    assert 0 < remaining <= (TIME_TO_LIVE + RETENTION) // timedelta(milliseconds=1)


async def test_update_keeps_record_expiry(
    store: RedisVerificationStore, client: RedisClient
) -> None:
    verification = new_verification()
    await store.create(verification)
    key = store.record_key(verification.id)

    for status in (DeliveryStatus.QUEUED, DeliveryStatus.SENT, DeliveryStatus.DELIVERED):
        updated = await store.update(verification.id, report(status, datetime.now(UTC)))
        assert updated is not None
        assert await client.pttl(key) > 0
        assert await client.pexpiretime(key) == retained_until(verification)


async def test_get_returns_record_whose_code_expired(store: RedisVerificationStore) -> None:
    verification = new_verification(datetime.now(UTC) - timedelta(minutes=20))

    await store.create(verification)

    stored = await store.get(verification.id)
    assert stored == verification
    assert stored.is_expired(datetime.now(UTC))


async def test_update_changes_record_whose_code_expired(
    store: RedisVerificationStore, client: RedisClient
) -> None:
    verification = new_verification(datetime.now(UTC) - timedelta(minutes=20))
    await store.create(verification)
    now = datetime.now(UTC)

    updated = await store.update(
        verification.id, lambda current: current.record_delivery(DeliveryStatus.READ, now)
    )

    assert updated is not None
    assert await store.get(verification.id) == updated
    key = store.record_key(verification.id)
    assert await client.pexpiretime(key) == retained_until(verification)


async def test_create_skips_verification_past_retention(
    short_lived_store: RedisVerificationStore, client: RedisClient
) -> None:
    verification = new_verification(datetime.now(UTC) - timedelta(minutes=20))

    await short_lived_store.create(verification)

    assert await short_lived_store.get(verification.id) is None
    assert await client.exists(short_lived_store.record_key(verification.id)) == 0


async def test_update_raises_not_found_past_retention(
    short_lived_store: RedisVerificationStore,
) -> None:
    verification = new_verification(datetime.now(UTC) - timedelta(minutes=20))
    await short_lived_store.create(verification)

    with pytest.raises(VerificationNotFound, match=verification.id):
        await short_lived_store.update(verification.id, lambda current: current)


# Message SID lookup


async def test_update_stores_sid_lookup_with_expiry(
    store: RedisVerificationStore, client: RedisClient
) -> None:
    verification = new_verification()
    await store.create(verification)
    assert await store.find_id_by_message_sid(MESSAGE_SID) is None

    await store.update(
        verification.id,
        lambda current: current.accept_message(
            MESSAGE_SID, DeliveryStatus.QUEUED, datetime.now(UTC)
        ),
    )

    assert await store.find_id_by_message_sid(MESSAGE_SID) == verification.id
    sid_key = store.message_sid_key(MESSAGE_SID)
    assert await client.pttl(sid_key) > 0
    assert await client.pexpiretime(sid_key) == retained_until(verification)


async def test_create_stores_sid_lookup(store: RedisVerificationStore, client: RedisClient) -> None:
    verification = replace(new_verification(), message_sid=MESSAGE_SID)

    await store.create(verification)

    assert await store.find_id_by_message_sid(MESSAGE_SID) == verification.id
    sid_key = store.message_sid_key(MESSAGE_SID)
    assert await client.pexpiretime(sid_key) == retained_until(verification)


async def test_find_id_returns_none_for_unknown_sid(
    store: RedisVerificationStore,
) -> None:
    assert await store.find_id_by_message_sid("SM-never-sent") is None


# update


async def test_update_stores_changed_verification(
    store: RedisVerificationStore,
) -> None:
    verification = new_verification()
    await store.create(verification)
    now = datetime.now(UTC)

    updated = await store.update(
        verification.id,
        lambda current: current.accept_message(MESSAGE_SID, DeliveryStatus.SENT, now),
    )

    expected = verification.accept_message(MESSAGE_SID, DeliveryStatus.SENT, now)
    assert updated == expected
    assert await store.get(verification.id) == expected


async def test_update_skips_write_when_change_returns_none(
    store: RedisVerificationStore, client: RedisClient
) -> None:
    verification = new_verification()
    await store.create(verification)
    key = store.record_key(verification.id)
    before = await client.get(key)
    seen: list[Verification] = []

    def change(current: Verification) -> Verification | None:
        seen.append(current)
        return None

    # Any write to the key, even of the same bytes, makes this transaction's EXEC fail.
    # The observer connects to the node that stores the key, where WATCH works in a
    # cluster too.
    async with (
        Redis.from_url(await node_url(client, key)) as node,
        node.pipeline(transaction=True) as observer,
    ):
        await observer.watch(key)
        result = await store.update(verification.id, change)
        observer.multi()  # type: ignore[no-untyped-call]  # redis-py leaves it unannotated
        observer.get(key)
        observed = await observer.execute()

    assert result is None
    # Once on the store's snapshot from create, once on a fresh read that confirms it.
    assert seen == [verification, verification]
    assert observed == [before]
    assert await client.pexpiretime(key) == retained_until(verification)


async def test_update_raises_not_found_when_record_expires_midway(
    short_lived_store: RedisVerificationStore, client: RedisClient
) -> None:
    verification = new_verification(time_to_live=timedelta(milliseconds=100))
    await short_lived_store.create(verification)
    calls = 0

    def slow_change(current: Verification) -> Verification | None:
        nonlocal calls
        calls += 1
        # Outlives the record, so the key expires between the read and the write.
        time.sleep(0.2)
        return current.record_delivery(DeliveryStatus.SENT, datetime.now(UTC))

    with pytest.raises(VerificationNotFound):
        await short_lived_store.update(verification.id, slow_change)

    assert calls == 1
    assert await client.exists(short_lived_store.record_key(verification.id)) == 0


async def test_update_passes_check_attempts_to_change(store: RedisVerificationStore) -> None:
    verification = new_verification()
    await store.create(verification)
    await store.record_attempt(verification.id)
    await store.record_attempt(verification.id)
    seen: list[int] = []

    def change(current: Verification) -> Verification | None:
        seen.append(current.check_attempts)
        return current.approve(datetime.now(UTC))

    updated = await store.update(verification.id, change)

    assert seen == [2]
    assert updated is not None
    stored = await store.get(verification.id)
    assert stored == updated
    assert stored.check_attempts == 2


async def test_update_keeps_attempt_counter(
    store: RedisVerificationStore, client: RedisClient
) -> None:
    verification = new_verification()
    await store.create(verification)
    await store.record_attempt(verification.id)
    counter_key = store.attempts_key(verification.id)
    expiry_before = await client.pexpiretime(counter_key)

    await store.update(
        verification.id,
        lambda current: current.record_delivery(DeliveryStatus.SENT, current.created_at),
    )

    assert await client.get(counter_key) == b"1"
    assert await client.pexpiretime(counter_key) == expiry_before


async def test_update_raises_not_found_for_missing_id(store: RedisVerificationStore) -> None:
    with pytest.raises(VerificationNotFound, match="never-stored"):
        await store.update("never-stored", lambda current: current)


async def test_update_rejects_change_of_expiry(store: RedisVerificationStore) -> None:
    verification = new_verification()
    await store.create(verification)

    with pytest.raises(ValueError, match="keeps the id and expires_at"):
        await store.update(
            verification.id,
            lambda current: replace(current, expires_at=current.expires_at + timedelta(hours=1)),
        )

    assert await store.get(verification.id) == verification


# Snapshots: the bytes a store saw last stand in for a read before its next write


def count_reads(client: RedisClient, monkeypatch: pytest.MonkeyPatch) -> list[object]:
    """Record each MGET the store sends through `client` from now on."""
    reads: list[object] = []
    mget = client.mget

    async def counted(*args: object, **kwargs: object) -> object:
        reads.append(args)
        return await mget(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(client, "mget", counted)
    return reads


async def test_update_after_create_writes_without_reading(
    store: RedisVerificationStore, client: RedisClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    verification = new_verification()
    await store.create(verification)
    reads = count_reads(client, monkeypatch)
    now = datetime.now(UTC)

    updated = await store.update(
        verification.id,
        lambda current: current.accept_message(MESSAGE_SID, DeliveryStatus.QUEUED, now),
    )

    assert reads == []
    assert updated == verification.accept_message(MESSAGE_SID, DeliveryStatus.QUEUED, now)
    assert await store.get(verification.id) == updated


async def test_create_of_new_id_skips_read(
    store: RedisVerificationStore, client: RedisClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    verification = new_verification()
    assert await store.get(verification.id) is None
    reads = count_reads(client, monkeypatch)

    assert await store.create(verification, lambda current: False) is None

    assert reads == []
    assert await store.get(verification.id) == verification


async def outdated_store(
    client: RedisClient, key_prefix: str, change: Callable[[Verification], Verification | None]
) -> tuple[RedisVerificationStore, Verification]:
    """Return a store that created a verification, which another store then changed."""
    store = RedisVerificationStore(client, key_prefix=key_prefix)
    verification = new_verification()
    await store.create(verification)
    await RedisVerificationStore(client, key_prefix=key_prefix).update(verification.id, change)
    return store, verification


async def test_update_applies_change_to_record_another_store_wrote(
    client: RedisClient, key_prefix: str
) -> None:
    start = datetime.now(UTC)
    worker, verification = await outdated_store(
        client,
        key_prefix,
        lambda current: current.record_delivery(DeliveryStatus.SENT, start, MESSAGE_SID),
    )
    seen: list[Verification] = []

    def deliver(current: Verification) -> Verification | None:
        seen.append(current)
        return current.record_delivery(DeliveryStatus.DELIVERED, start + timedelta(seconds=1))

    # The worker's snapshot is the record before the other store's change.
    updated = await worker.update(verification.id, deliver)

    assert [current.delivery_status for current in seen] == [None, DeliveryStatus.SENT]
    assert updated is not None
    assert [change.status for change in updated.history] == [
        DeliveryStatus.SENT,
        DeliveryStatus.DELIVERED,
    ]
    assert await worker.get(verification.id) == updated


async def test_out_of_date_snapshot_is_no_conflict(client: RedisClient, key_prefix: str) -> None:
    store = RedisVerificationStore(client, key_prefix=key_prefix, max_update_attempts=1)
    now = datetime.now(UTC)
    verification = new_verification(now)
    await store.create(verification)
    await RedisVerificationStore(client, key_prefix=key_prefix).update(
        verification.id, lambda current: current.record_delivery(DeliveryStatus.SENT, now)
    )

    updated = await store.update(
        verification.id,
        lambda current: current.accept_message(MESSAGE_SID, DeliveryStatus.SENT, now),
    )

    assert updated is not None
    assert updated.message_sid == MESSAGE_SID


async def test_update_reruns_change_after_check_attempt_from_elsewhere(
    client: RedisClient, key_prefix: str
) -> None:
    worker = RedisVerificationStore(client, key_prefix=key_prefix)
    api = RedisVerificationStore(client, key_prefix=key_prefix)
    verification = new_verification()
    await worker.create(verification)
    await api.record_attempt(verification.id)
    seen: list[int] = []

    def change(current: Verification) -> Verification:
        seen.append(current.check_attempts)
        return current.approve(datetime.now(UTC))

    updated = await worker.update(verification.id, change)

    assert seen == [0, 1]
    assert updated is not None
    assert updated.check_attempts == 1


async def test_create_ignores_blocking_snapshot_of_deleted_record(
    store: RedisVerificationStore, client: RedisClient
) -> None:
    live = new_verification(code_digest="a" * 64)
    await store.create(live)
    await client.delete(store.record_key(live.id))
    newer = replace(live, code_digest="b" * 64)

    blocking = await store.create(newer, lambda current: False)

    assert blocking is None
    assert await store.get(live.id) == newer


async def test_stale_snapshot_skip_is_confirmed(client: RedisClient, key_prefix: str) -> None:
    now = datetime.now(UTC)
    worker, verification = await outdated_store(
        client,
        key_prefix,
        lambda current: current.accept_message(MESSAGE_SID, DeliveryStatus.SENT, now),
    )

    # The worker's snapshot has no message SID, which this change would skip.
    updated = await worker.update(
        verification.id,
        lambda current: (
            current.record_delivery(DeliveryStatus.DELIVERED, now, MESSAGE_SID)
            if current.message_sid == MESSAGE_SID
            else None
        ),
    )

    assert updated is not None
    assert updated.delivery_status is DeliveryStatus.DELIVERED


@pytest.mark.parametrize("seed", [1, 2, 3])
async def test_concurrent_reports_end_at_furthest_status(
    store: RedisVerificationStore, client: RedisClient, seed: int
) -> None:
    start = datetime.now(UTC)
    verification = new_verification(start).accept_message(MESSAGE_SID, DeliveryStatus.QUEUED, start)
    await store.create(verification)
    reports = [
        DeliveryStatus.SENDING,
        DeliveryStatus.SENT,
        DeliveryStatus.DELIVERED,
        DeliveryStatus.READ,
    ] * 5
    random.Random(seed).shuffle(reports)

    # Open the connections first: otherwise the tasks queue behind connection set-up
    # and run one after another instead of racing.
    await asyncio.gather(*(client.ping() for _ in reports))

    results = await asyncio.gather(
        *(
            store.update(verification.id, report(status, start + timedelta(milliseconds=index)))
            for index, status in enumerate(reports)
        )
    )

    stored = await store.get(verification.id)
    assert stored is not None
    assert stored.delivery_status is DeliveryStatus.READ
    statuses = [change.status for change in stored.history]
    assert statuses[0] is DeliveryStatus.QUEUED
    for earlier, later in itertools.pairwise(statuses):
        assert advances(earlier, later), f"history steps back from {earlier} to {later}"
    applied = [result for result in results if result is not None]
    assert len(applied) == len(stored.history) - 1


async def test_update_gives_up_after_max_attempts(client: RedisClient, key_prefix: str) -> None:
    store = RedisVerificationStore(client, key_prefix=key_prefix, max_update_attempts=3)
    verification = new_verification()
    # Created through another store, so every attempt starts from a fresh read.
    await RedisVerificationStore(client, key_prefix=key_prefix).create(verification)
    key = store.record_key(verification.id)
    calls = 0

    # A second connection rewrites the record during every attempt, as a competing
    # writer would, so each compare-and-set finds other bytes.
    with redis.Redis.from_url(await node_url(client, key)) as rival:

        def change(current: Verification) -> Verification | None:
            nonlocal calls
            calls += 1
            rival.set(
                key,
                json.dumps({**json.loads(rival.get(key) or b"{}"), "locale": str(calls)}),
                keepttl=True,
            )
            return current.record_delivery(DeliveryStatus.SENT, datetime.now(UTC))

        with pytest.raises(StoreUnavailable, match="changed the record concurrently"):
            await store.update(verification.id, change)

    assert calls == 3
    assert await store.get(verification.id) == replace(verification, locale="3")


# Secrets


async def test_stored_values_omit_plain_code(
    store: RedisVerificationStore, client: RedisClient, key_prefix: str
) -> None:
    code = VerificationCode("483920")
    verification_id = f"verification-{uuid4().hex}"
    digest = CodeDigester(b"test-code-secret").digest(code, verification_id)
    now = datetime.now(UTC)
    verification = Verification.start(verification_id, PHONE, digest, now, TIME_TO_LIVE, "es")

    await store.create(verification)
    await store.record_attempt(verification_id)
    await store.update(
        verification_id,
        lambda current: current.accept_message(MESSAGE_SID, DeliveryStatus.QUEUED, now),
    )
    await store.update(
        verification_id,
        lambda current: current.record_delivery(
            DeliveryStatus.FAILED, now, error_code="63003", error_message="Invalid recipient"
        ),
    )

    values = await stored_values(client, key_prefix)
    assert sorted(values) == sorted(
        [
            store.record_key(verification_id).encode(),
            store.attempts_key(verification_id).encode(),
            store.message_sid_key(MESSAGE_SID).encode(),
        ]
    )
    assert digest.encode() in values[store.record_key(verification_id).encode()]
    for key, value in values.items():
        assert code.value.encode() not in value, f"{key!r} contains the plain code"


# Connection failures


@pytest.fixture
def unreachable_store(unreachable_client: RedisClient) -> RedisVerificationStore:
    return RedisVerificationStore(unreachable_client, key_prefix=f"test-{uuid4().hex}")


# Each call of the store, and the text its error must quote, if any.
OUTAGE_CALLS: list[tuple[str, Callable[[RedisVerificationStore], Awaitable[object]], str]] = [
    ("create", lambda store: store.create(new_verification()), ""),
    (
        "conditional create",
        lambda store: store.create(new_verification(), may_replace=lambda current: False),
        "",
    ),
    ("get", lambda store: store.get("any-id"), "any-id"),
    ("find id", lambda store: store.find_id_by_message_sid(MESSAGE_SID), ""),
    ("update", lambda store: store.update("any-id", lambda current: current), ""),
    ("record attempt", lambda store: store.record_attempt("any-id"), "any-id"),
]


@pytest.mark.parametrize(
    ("call", "quoted"),
    [(call, quoted) for _, call, quoted in OUTAGE_CALLS],
    ids=[name for name, _, _ in OUTAGE_CALLS],
)
async def test_store_call_raises_unavailable_when_redis_down(
    unreachable_store: RedisVerificationStore,
    call: Callable[[RedisVerificationStore], Awaitable[object]],
    quoted: str,
) -> None:
    with pytest.raises(StoreUnavailable) as raised:
        await call(unreachable_store)

    assert is_refused_connection(raised.value)
    assert raised.value.retriable
    assert quoted in str(raised.value)
