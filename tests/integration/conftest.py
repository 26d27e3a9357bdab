"""Redis fixtures for integration tests: the machine's server, a local cluster, and both at once."""

import socket
from collections.abc import AsyncIterator, Iterator
from uuid import uuid4

import pytest
from redis import exceptions as redis_errors

from adapters.redis.connection import RedisClient, create_redis_client
from adapters.redis.store import RedisVerificationStore
from tests.support.redis_cluster import LocalRedisCluster

SINGLE_NODE_URL = "redis://127.0.0.1:6379"


@pytest.fixture(scope="session")
def redis_cluster() -> Iterator[LocalRedisCluster]:
    """A three-node Redis Cluster on free loopback ports, shared by the whole session."""
    with LocalRedisCluster() as cluster:
        yield cluster


@pytest.fixture
async def single_node_client() -> AsyncIterator[RedisClient]:
    """A client of the machine's Redis at 127.0.0.1:6379; the test fails if it is down."""
    client = create_redis_client(SINGLE_NODE_URL)
    try:
        await client.ping()
    except redis_errors.ConnectionError as error:
        await client.aclose()
        pytest.fail(
            f"Redis is not reachable at {SINGLE_NODE_URL} ({error}). Start it with "
            "`redis-server --bind 127.0.0.1 --port 6379 --save '' --appendonly no`."
        )
    yield client
    await client.aclose()


@pytest.fixture
async def cluster_client(redis_cluster: LocalRedisCluster) -> AsyncIterator[RedisClient]:
    """A cluster client of the session's local Redis Cluster."""
    client = create_redis_client(redis_cluster.url, cluster=True)
    yield client
    await client.aclose()


@pytest.fixture(params=["single_node", "cluster"])
def client(request: pytest.FixtureRequest) -> RedisClient:
    """Each kind of client in turn, so a test runs against one server and a cluster.

    A plain function, because pytest-asyncio cannot set up the requested async fixture
    from inside a running event loop.
    """
    kind: RedisClient = request.getfixturevalue(f"{request.param}_client")
    return kind


@pytest.fixture
async def key_prefix(client: RedisClient) -> AsyncIterator[str]:
    """A key prefix of this test alone; its keys are deleted afterwards."""
    prefix = f"test-{uuid4().hex}"
    yield prefix
    keys = [key async for key in client.scan_iter(match=f"{prefix}:*")]
    if keys:
        await client.delete(*keys)


@pytest.fixture(params=["single_node", "cluster"])
async def unreachable_client(request: pytest.FixtureRequest) -> AsyncIterator[RedisClient]:
    """A client of each kind aimed at a loopback port where nothing listens."""
    client = create_redis_client(
        f"redis://127.0.0.1:{_closed_loopback_port()}",
        cluster=request.param == "cluster",
        connect_timeout_seconds=1.0,
        read_timeout_seconds=1.0,
        connection_retries=0,
    )
    yield client
    await client.aclose()


def _closed_loopback_port() -> int:
    """Return a loopback port that was just free, so a connection to it is refused."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


@pytest.fixture
def store(client: RedisClient, key_prefix: str) -> RedisVerificationStore:
    """A verification store on `client`, under the test's own key prefix."""
    return RedisVerificationStore(client, key_prefix=key_prefix)
