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


def count_pipelines(client: BatchingRedis, monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Record the number of commands in each pipeline the client executes."""
    sizes: list[int] = []
    make_pipeline = client.pipeline

    def counted(*args: Any, **kwargs: Any) -> Any:
        pipeline = make_pipeline(*args, **kwargs)
        execute = pipeline.execute

        async def execute_counted(*args: Any, **kwargs: Any) -> Any:
            sizes.append(len(pipeline.command_stack))
            return await execute(*args, **kwargs)

        pipeline.execute = execute_counted  # type: ignore[method-assign]
        return pipeline

    monkeypatch.setattr(client, "pipeline", counted)
    return sizes


async def test_concurrent_commands_share_a_pipeline_and_get_their_own_replies(
    client: BatchingRedis, unique: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    keys = [f"{unique}:{index}" for index in range(50)]
    await asyncio.gather(*(client.set(key, key) for key in keys))
    sizes = count_pipelines(client, monkeypatch)

    values = await asyncio.gather(*(client.get(key) for key in keys))

    assert values == [key.encode() for key in keys]
    assert sizes == [50]
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
    kept = asyncio.ensure_future(client.get(f"{unique}:a"))
    await asyncio.sleep(0)
    cancelled.cancel()

    assert await kept == b"1"
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
    sizes = count_pipelines(client, monkeypatch)

    assert await client.ping() is True
    assert sizes == []
