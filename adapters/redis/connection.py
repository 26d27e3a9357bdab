"""Redis client set-up: reading the REDIS_CONNECTION setting and building the async client."""

import ipaddress
import re
from typing import Any, Literal, TypeAlias, overload

from redis.asyncio import BlockingConnectionPool, Redis
from redis.asyncio.cluster import RedisCluster
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialWithJitterBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisClusterException

from adapters.redis.batching import BatchingRedis

# The client types the Redis adapters accept: one server, or a Redis Cluster.
RedisClient: TypeAlias = Redis | RedisCluster

# Connections one single-node client opens at most. A worker with 256 messages in
# flight shares them; each Redis command uses one for about a round trip.
DEFAULT_MAX_CONNECTIONS = 64
# How long a command waits for a free connection before it fails as unavailable.
POOL_WAIT_SECONDS = 20.0

DEFAULT_PORT = 6379

_URL_SCHEMES = ("redis://", "rediss://", "unix://")

_ACCEPTED_FORMS = (
    "Set REDIS_CONNECTION to a redis://, rediss:// or unix:// URL, "
    "or to host[:port] such as localhost:6379 or [::1]:6379."
)

# Host names as Docker, Kubernetes and DNS write them. Underscores are allowed because
# Compose service names may contain them.
_HOST_NAME = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9._-]*[A-Za-z0-9])?")
_PORT = re.compile(r"[0-9]{1,5}")


def redis_url(connection: str) -> str:
    """Return the Redis URL for the REDIS_CONNECTION setting, or raise `ValueError`.

    URLs with the redis://, rediss:// or unix:// scheme are returned as they are, apart
    from surrounding whitespace, and redis-py validates the rest of them. The bare form
    `host[:port]` that existing deployments use becomes `redis://host:port`, with port
    6379 when none is given. IPv6 addresses must be written in brackets: `[::1]:6379`.
    """
    value = connection.strip()
    if value == "":
        raise _invalid(connection, "it is empty")
    if value.lower().startswith(_URL_SCHEMES):
        if value.partition("://")[2] == "":
            raise _invalid(connection, "the URL has nothing after the scheme")
        return value
    if "://" in value:
        raise _invalid(connection, "the URL scheme is not supported")
    if "/" in value or "@" in value:
        raise _invalid(connection, "a path or user name needs the redis:// URL form")

    host, port = _split_host_port(value, connection)
    return f"redis://{host}:{port}"


@overload
def create_redis_client(
    url: str,
    *,
    cluster: Literal[False] = False,
    connect_timeout_seconds: float = 2.0,
    read_timeout_seconds: float = 2.0,
    connection_retries: int = 2,
    max_connections: int | None = None,
) -> Redis: ...


@overload
def create_redis_client(
    url: str,
    *,
    cluster: Literal[True],
    connect_timeout_seconds: float = 2.0,
    read_timeout_seconds: float = 2.0,
    connection_retries: int = 2,
    max_connections: int | None = None,
) -> RedisCluster: ...


@overload
def create_redis_client(
    url: str,
    *,
    cluster: bool,
    connect_timeout_seconds: float = 2.0,
    read_timeout_seconds: float = 2.0,
    connection_retries: int = 2,
    max_connections: int | None = None,
) -> RedisClient: ...


def create_redis_client(
    url: str,
    *,
    cluster: bool = False,
    connect_timeout_seconds: float = 2.0,
    read_timeout_seconds: float = 2.0,
    connection_retries: int = 2,
    max_connections: int | None = None,
) -> RedisClient:
    """Build a client for `url`. It connects on its first command, not here.

    With `cluster` set, `url` names any one node of a Redis Cluster, and the client
    discovers the other nodes and the slot map on its first command. Cluster mode
    needs a redis:// or rediss:// URL without a database number, or `ValueError` is
    raised. `max_connections` then applies to each node.

    `connection_retries` is how often redis-py repeats a command after a connection
    error or timeout, with jittered exponential backoff. It is kept low so that an
    outage reaches the caller quickly as `StoreUnavailable`, whose retriable flag lets
    the caller choose its own retry policy. Responses stay bytes because the stores
    decode their values themselves.
    """
    options: dict[str, Any] = {
        "socket_connect_timeout": connect_timeout_seconds,
        "socket_timeout": read_timeout_seconds,
        # A command that timed out may have run, and repeating a non-idempotent script
        # such as the attempt counter would count one check twice, so timeouts are not
        # retried. Connection errors are, even a reset after a command was sent. The
        # batching client never resends, so this retry applies only to the commands it
        # does not batch, such as SCRIPT LOAD, PING and pub/sub.
        "retry": Retry(
            ExponentialWithJitterBackoff(),
            connection_retries,
            supported_errors=(RedisConnectionError,),
        ),
        "decode_responses": False,
    }
    if not cluster:
        # A blocking pool makes a burst of concurrent commands wait for a free
        # connection instead of failing with "Too many connections".
        pool = BlockingConnectionPool.from_url(
            url,
            max_connections=max_connections or DEFAULT_MAX_CONNECTIONS,
            timeout=POOL_WAIT_SECONDS,
            **options,
        )
        return BatchingRedis(connection_pool=pool)

    if url.lower().startswith("unix://"):
        raise _invalid_for_cluster(url, "a cluster cannot be reached through a Unix socket")
    if max_connections is not None:
        # RedisCluster rejects None, so its own per-node default applies when unset.
        options["max_connections"] = max_connections
    try:
        return RedisCluster.from_url(url, **options)
    except RedisClusterException as error:
        raise _invalid_for_cluster(url, str(error)) from error


def _split_host_port(value: str, connection: str) -> tuple[str, int]:
    if value.startswith("["):
        address, bracket, port_part = value[1:].partition("]")
        if not bracket or not _is_ipv6(address):
            raise _invalid(connection, "the brackets do not contain an IPv6 address")
        host = f"[{address}]"
    else:
        address, colon, port_text = value.partition(":")
        if ":" in port_text:
            raise _invalid(connection, "an IPv6 address must be written in brackets")
        if not _HOST_NAME.fullmatch(address):
            raise _invalid(connection, "the host name is missing or invalid")
        host = address
        port_part = colon + port_text

    if port_part == "":
        return host, DEFAULT_PORT
    port_text = port_part.removeprefix(":")
    if not port_part.startswith(":") or not _PORT.fullmatch(port_text):
        raise _invalid(connection, "the port is not a number")
    port = int(port_text)
    if not 1 <= port <= 65535:
        raise _invalid(connection, "the port must be 1 to 65535")
    return host, port


def _is_ipv6(address: str) -> bool:
    # Zone ids (`fe80::1%eth0`) are rejected because they need percent-encoding in a URL.
    if "%" in address:
        return False
    try:
        ipaddress.IPv6Address(address)
    except ValueError:
        return False
    return True


def _invalid(connection: str, reason: str) -> ValueError:
    return ValueError(
        f"invalid Redis connection {_redact(connection)!r} because {reason}. {_ACCEPTED_FORMS}"
    )


def _invalid_for_cluster(url: str, reason: str) -> ValueError:
    return ValueError(
        f"invalid Redis Cluster connection {_redact(url)!r} because {reason}. Set "
        "REDIS_CONNECTION to the redis:// or rediss:// URL of one cluster node without a "
        "database number, such as redis://10.0.0.5:6379, or to host[:port]."
    )


def _redact(connection: str) -> str:
    """Hide the user and password part of a URL-like value, so errors never show a password."""
    scheme, separator, rest = connection.rpartition("://")
    credentials, at, location = rest.rpartition("@")
    if not at:
        return connection
    hidden = "***" if credentials else ""
    return f"{scheme}{separator}{hidden}@{location}"
