"""Translation of redis-py failures into the port error `StoreUnavailable`."""

from collections.abc import Iterator
from contextlib import contextmanager

from redis import exceptions as redis_errors

from application.errors import StoreUnavailable

# Failures after which the same call may succeed: Redis is unreachable, slow, still
# loading its data set (BusyLoadingError is a ConnectionError), failing over, or a
# cluster slot is moving or not served by any node yet.
_UNAVAILABLE_ERRORS = (
    redis_errors.ConnectionError,
    redis_errors.TimeoutError,
    redis_errors.ReadOnlyError,
    redis_errors.TryAgainError,
    redis_errors.ClusterDownError,
    redis_errors.RedisClusterUnreachableError,
    redis_errors.SlotNotCoveredError,
)

# redis-py derives these from ConnectionError, but a retry cannot fix bad credentials,
# so they propagate unchanged instead of becoming the retriable StoreUnavailable.
_CREDENTIAL_ERRORS = (redis_errors.AuthenticationError, redis_errors.AuthorizationError)


@contextmanager
def unavailable_errors(command: str, key: str) -> Iterator[None]:
    """Raise `StoreUnavailable` for connection-level Redis errors inside the block."""
    try:
        yield
    except _CREDENTIAL_ERRORS:
        raise
    except _UNAVAILABLE_ERRORS as error:
        raise StoreUnavailable(
            f"Redis {command} on key {key!r} failed: {type(error).__name__}: "
            f"{str(error).rstrip('.')}. "
            "Check that Redis is running and reachable at REDIS_CONNECTION."
        ) from error
