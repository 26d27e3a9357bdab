"""Records and helpers shared by the Redis store tests on one server and on a cluster."""

from datetime import UTC, datetime, timedelta
from uuid import uuid4

from redis import exceptions as redis_errors
from redis.asyncio.cluster import RedisCluster

from adapters.redis.connection import RedisClient
from application.errors import StoreUnavailable
from domain.phone import PhoneNumber
from domain.verification import Verification

SINGLE_NODE_URL = "redis://127.0.0.1:6379"
PHONE = PhoneNumber("+593991234567")
TIME_TO_LIVE = timedelta(minutes=10)


def new_verification(
    now: datetime | None = None,
    time_to_live: timedelta = TIME_TO_LIVE,
    code_digest: str = "d" * 64,
) -> Verification:
    """Return a new verification of PHONE with an id of its own."""
    return Verification.start(
        f"verification-{uuid4().hex}",
        PHONE,
        code_digest,
        now or datetime.now(UTC),
        time_to_live,
        locale="es-EC",
    )


async def node_url(client: RedisClient, key: str) -> str:
    """Return the URL of the server that stores `key`, for a plain client of that node."""
    if isinstance(client, RedisCluster):
        await client.initialize()
        node = client.get_node_from_key(key)
        assert node is not None, f"no cluster node serves {key!r}"
        return f"redis://{node.host}:{node.port}"
    return SINGLE_NODE_URL


def is_refused_connection(error: StoreUnavailable) -> bool:
    """Tell whether a refused connection caused `error`, also through the cluster client.

    The cluster client wraps the connection error in RedisClusterUnreachableError.
    """
    cause = error.__cause__
    if isinstance(cause, redis_errors.RedisClusterUnreachableError):
        cause = cause.__cause__
    return isinstance(cause, redis_errors.ConnectionError)
