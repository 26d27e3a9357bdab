"""BatchingRedis on the Redis at 127.0.0.1:6379: many tasks' commands in one pipeline."""

import asyncio
import socket
from collections.abc import AsyncIterator
from typing import Any

import pytest
from redis import exceptions as redis_errors

from adapters.redis.batching import BatchingRedis
from adapters.redis.connection import create_redis_client


@pytest.fixture
async def client() -> AsyncIterator[BatchingRedis]:
    client = create_redis_client("redis://127.0.0.1:6379")
    assert isinstance(client, BatchingRedis)
    yield client
    await client.aclose()


def count_batches(client: BatchingRedis, monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Record the connection checkouts of `client`'s pool: one for each batch or lone command."""
    checkouts: list[int] = []
    get_connection = client.connection_pool.get_connection

    async def counted(*args: Any, **kwargs: Any) -> Any:
        checkouts.append(1)
        return await get_connection(*args, **kwargs)

    monkeypatch.setattr(client.connection_pool, "get_connection", counted)
    return checkouts


async def test_concurrent_commands_share_one_batch(
    client: BatchingRedis, unique: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    keys = [f"{unique}:{index}" for index in range(50)]
    await asyncio.gather(*(client.set(key, key) for key in keys))
    checkouts = count_batches(client, monkeypatch)

    values = await asyncio.gather(*(client.get(key) for key in keys))

    assert values == [key.encode() for key in keys]
    assert checkouts == [1]
    await client.delete(*keys)


async def test_one_commands_error_reaches_only_its_caller(
    client: BatchingRedis, unique: str
) -> None:
    await client.set(f"{unique}:text", "a")
    await client.rpush(f"{unique}:list", "a")

    results = await asyncio.gather(
        client.get(f"{unique}:text"),
        client.get(f"{unique}:list"),
        client.mget([f"{unique}:text", f"{unique}:missing"]),
        return_exceptions=True,
    )

    assert results[0] == b"a"
    assert isinstance(results[1], redis_errors.ResponseError)
    assert "WRONGTYPE" in str(results[1])
    assert results[2] == [b"a", None]
    await client.delete(f"{unique}:text", f"{unique}:list")


async def test_scripts_load_themselves_through_the_batch(
    client: BatchingRedis, unique: str
) -> None:
    # A script body of its own, so its SHA is unknown to the server at first.
    script = client.register_script(f"-- {unique}\nreturn redis.call('INCR', KEYS[1])")

    counts = await asyncio.gather(*(script(keys=[f"{unique}:count"]) for _ in range(20)))

    assert sorted(counts) == list(range(1, 21))
    await client.delete(f"{unique}:count")


async def test_cancelled_caller_leaves_the_others_their_replies(
    client: BatchingRedis, unique: str
) -> None:
    await client.set(f"{unique}:a", "1")
    cancelled = asyncio.ensure_future(client.get(f"{unique}:a"))
    waiting = asyncio.ensure_future(client.get(f"{unique}:a"))
    await asyncio.sleep(0)
    cancelled.cancel()

    assert await waiting == b"1"
    with pytest.raises(asyncio.CancelledError):
        await cancelled
    await client.delete(f"{unique}:a")


async def test_connection_failure_fails_every_command_of_the_batch() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    # Nothing listens on the port, and the client does not retry forever.
    client = create_redis_client(f"redis://127.0.0.1:{port}", connection_retries=0)

    results = await asyncio.gather(client.get("a"), client.set("b", "1"), return_exceptions=True)

    assert all(isinstance(result, redis_errors.ConnectionError) for result in results)
    await client.aclose()


async def test_other_commands_go_straight_to_the_server(
    client: BatchingRedis, monkeypatch: pytest.MonkeyPatch
) -> None:
    checkouts = count_batches(client, monkeypatch)

    assert await asyncio.gather(client.ping(), client.ping()) == [True, True]
    assert checkouts == [1, 1]


async def test_unencodable_argument_fails_only_its_command(
    client: BatchingRedis, unique: str
) -> None:
    await client.set(f"{unique}:readable", "1")

    results = await asyncio.gather(
        client.get(f"{unique}:readable"),
        client.set(f"{unique}:bad", None),  # type: ignore[arg-type]
        return_exceptions=True,
    )

    assert results[0] == b"1"
    assert isinstance(results[1], redis_errors.DataError)
    await client.delete(f"{unique}:readable")


async def test_command_of_timed_out_caller_is_never_sent(unique: str) -> None:
    client = create_redis_client("redis://127.0.0.1:6379", max_connections=1)
    # BLPOP is not batched and keeps the only connection busy for half a second.
    blocking = asyncio.ensure_future(client.blpop([f"{unique}:list"], timeout=0.5))
    await asyncio.sleep(0.05)

    with pytest.raises(TimeoutError):
        async with asyncio.timeout(0.1):
            await client.set(f"{unique}:late", "1")
    await blocking

    assert await client.get(f"{unique}:late") is None
    await client.aclose()


async def test_batch_is_not_resent_after_connection_breaks(
    client: BatchingRedis, unique: str
) -> None:
    script = f"-- {unique}\nreturn redis.call('INCR', KEYS[1])"
    await client.script_load(script)
    proxy = await asyncio.start_server(_break_after_first_script, "127.0.0.1", 0)
    port = proxy.sockets[0].getsockname()[1]
    proxied = create_redis_client(f"redis://127.0.0.1:{port}")
    counting = proxied.register_script(script)
    keys = [f"{unique}:{index}" for index in range(20)]

    results = await asyncio.gather(*(counting(keys=[key]) for key in keys), return_exceptions=True)

    assert all(isinstance(result, redis_errors.ConnectionError) for result in results)
    # Redis ran each script once, and the client did not run them again.
    assert await client.mget(keys) == [b"1"] * 20
    await client.delete(*keys)
    await proxied.aclose()
    proxy.close()
    await proxy.wait_closed()


async def _break_after_first_script(
    client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter
) -> None:
    """Forward to the machine's Redis, but drop the connection once a script has run."""
    server_reader, server_writer = await asyncio.open_connection("127.0.0.1", 6379)
    try:
        while data := await client_reader.read(65536):
            server_writer.write(data)
            reply = await server_reader.read(65536)
            if b"EVALSHA" in data:
                # Redis has run the batch; the replies never reach the client.
                await asyncio.sleep(0.2)
                client_writer.transport.abort()
                return
            client_writer.write(reply)
    finally:
        server_writer.close()
