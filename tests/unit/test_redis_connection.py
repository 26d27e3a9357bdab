"""Unit tests for reading the REDIS_CONNECTION setting and building clients without connecting."""

import pytest
from redis.asyncio.cluster import RedisCluster

from adapters.redis.batching import BatchingRedis
from adapters.redis.connection import create_redis_client, redis_url


@pytest.mark.parametrize(
    "url",
    [
        "redis://h:1/0",
        "rediss://user:password@cache.internal:6380/2",
        "unix:///run/redis/redis.sock",
        "redis://[::1]:6379",
    ],
)
def test_redis_url_keeps_supported_urls(url: str) -> None:
    assert redis_url(url) == url


@pytest.mark.parametrize(
    ("connection", "expected"),
    [
        ("localhost:6379", "redis://localhost:6379"),
        ("redis", "redis://redis:6379"),
        ("10.0.0.5", "redis://10.0.0.5:6379"),
        ("redis_cache:7000", "redis://redis_cache:7000"),
        ("[::1]:6380", "redis://[::1]:6380"),
        ("[::1]", "redis://[::1]:6379"),
        ("  localhost:6379\n", "redis://localhost:6379"),
    ],
)
def test_redis_url_turns_host_port_into_url(connection: str, expected: str) -> None:
    assert redis_url(connection) == expected


@pytest.mark.parametrize(
    ("connection", "reason"),
    [
        ("http://x", "scheme is not supported"),
        (":6379", "host name is missing"),
        ("host:notaport", "port is not a number"),
        ("host:", "port is not a number"),
        ("host:0", "port must be 1 to 65535"),
        ("host:65536", "port must be 1 to 65535"),
        ("::1", "IPv6 address must be written in brackets"),
        ("[not-ipv6]:6379", "brackets do not contain an IPv6 address"),
        ("[::1", "brackets do not contain an IPv6 address"),
        ("host/0", "needs the redis:// URL form"),
        ("redis://", "nothing after the scheme"),
        ("", "empty"),
        ("   ", "empty"),
    ],
)
def test_redis_url_rejects_invalid_value(connection: str, reason: str) -> None:
    with pytest.raises(ValueError) as raised:
        redis_url(connection)

    message = str(raised.value)
    assert repr(connection) in message
    assert reason in message
    assert "REDIS_CONNECTION" in message
    assert "localhost:6379" in message


def test_redis_url_hides_password_of_rejected_url() -> None:
    with pytest.raises(ValueError) as raised:
        redis_url("http://user:s3cret@cache.internal:6379")

    message = str(raised.value)
    assert "s3cret" not in message
    assert "'http://***@cache.internal:6379'" in message


def test_single_node_client_keeps_timeouts() -> None:
    client = create_redis_client(
        "redis://127.0.0.1:6379/2", connect_timeout_seconds=1.5, read_timeout_seconds=3.0
    )

    assert type(client) is BatchingRedis
    options = client.connection_pool.connection_kwargs
    assert options["db"] == 2
    assert options["socket_connect_timeout"] == 1.5
    assert options["socket_timeout"] == 3.0


def test_cluster_client_keeps_timeouts() -> None:
    client = create_redis_client(
        "redis://127.0.0.1:7000",
        cluster=True,
        connect_timeout_seconds=1.5,
        read_timeout_seconds=3.0,
        max_connections=16,
    )

    assert isinstance(client, RedisCluster)
    options = client.connection_kwargs
    assert options["socket_connect_timeout"] == 1.5
    assert options["socket_timeout"] == 3.0
    assert options["max_connections"] == 16
    assert options["decode_responses"] is False
    assert [(node.host, node.port) for node in client.startup_nodes] == [("127.0.0.1", 7000)]


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("unix:///run/redis/redis.sock", "Unix socket"),
        ("redis://127.0.0.1:7000/2", "'db' must be 0"),
    ],
)
def test_cluster_client_rejects_unfit_url(url: str, reason: str) -> None:
    with pytest.raises(ValueError) as raised:
        create_redis_client(url, cluster=True)

    message = str(raised.value)
    assert "invalid Redis Cluster connection" in message
    assert reason in message
    assert "REDIS_CONNECTION" in message


def test_cluster_client_error_hides_password() -> None:
    with pytest.raises(ValueError) as raised:
        create_redis_client("redis://user:s3cret@127.0.0.1:7000/2", cluster=True)

    assert "s3cret" not in str(raised.value)
