"""Redis implementation of the `VerificationStore` port.

Key layout, for the default prefix `verification`:

- `verification:{<id>}` is a string containing the record as JSON (see `codec`). The
  braces are a Redis Cluster hash tag, so any key added later for the same id lands in
  the same slot. Ids that pass `check_verification_id` contain no braces, so the tag is
  always the whole id.
- `verification:sid:<message sid>` is a string containing the verification id, for
  status callbacks that carry only the provider's message id.

Both keys expire at the verification's `expires_at` through `SET ... PXAT`, so a record
disappears when its code does. PXAT needs Redis 6.2 or later.

Why one JSON string and not a hash: the history is a nested list, which a hash could
only hold as an embedded JSON field anyway. A single `SET ... PXAT` also writes the
value and its expiry in one command, so no record ever exists without an expiry, while
a hash needs HSET followed by PEXPIREAT.
"""

import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta

from redis import exceptions as redis_errors
from redis.asyncio import Redis

from adapters.redis.codec import decode_verification, encode_verification
from application.errors import StoreUnavailable, VerificationNotFound
from domain.verification import Verification

logger = logging.getLogger(__name__)

DEFAULT_MAX_UPDATE_ATTEMPTS = 20

# Failures after which the same call may succeed: Redis is unreachable, slow, still
# loading its data set (BusyLoadingError is a ConnectionError), or failing over.
_UNAVAILABLE_ERRORS = (
    redis_errors.ConnectionError,
    redis_errors.TimeoutError,
    redis_errors.ReadOnlyError,
    redis_errors.TryAgainError,
    redis_errors.ClusterDownError,
)

# redis-py derives these from ConnectionError, but a retry cannot fix bad credentials,
# so they propagate unchanged instead of becoming the retriable StoreUnavailable.
_CREDENTIAL_ERRORS = (redis_errors.AuthenticationError, redis_errors.AuthorizationError)

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


class RedisVerificationStore:
    """Keeps each verification as one JSON string that expires together with its code."""

    def __init__(
        self,
        client: Redis,
        key_prefix: str = "verification",
        max_update_attempts: int = DEFAULT_MAX_UPDATE_ATTEMPTS,
    ) -> None:
        if not key_prefix or "{" in key_prefix or "}" in key_prefix:
            raise ValueError(
                f"invalid key prefix {key_prefix!r}: use a non-empty prefix without braces, "
                "because braces would change the Redis Cluster hash tag"
            )
        if max_update_attempts < 1:
            raise ValueError(f"invalid max_update_attempts {max_update_attempts}: use 1 or more")
        self._client = client
        self._key_prefix = key_prefix
        self._max_update_attempts = max_update_attempts

    def record_key(self, verification_id: str) -> str:
        """Return the key of the record for `verification_id`."""
        return f"{self._key_prefix}:{{{verification_id}}}"

    def message_sid_key(self, message_sid: str) -> str:
        """Return the key that maps `message_sid` to its verification id."""
        return f"{self._key_prefix}:sid:{message_sid}"

    async def create(self, verification: Verification) -> None:
        """Store `verification`, replacing any earlier one with the same id.

        Both keys expire at `verification.expires_at`, so a verification that has
        already expired is not stored at all. Raises `StoreUnavailable`.
        """
        key = self.record_key(verification.id)
        value = encode_verification(verification)
        expires_at = _epoch_milliseconds(verification.expires_at)

        if verification.message_sid is not None:
            await self._write_message_sid(verification.message_sid, verification.id, expires_at)
        with _unavailable_errors("SET", key):
            await self._client.set(key, value, pxat=expires_at)

    async def get(self, verification_id: str) -> Verification | None:
        """Return the live verification, or None when it is missing or expired.

        Raises `StoreUnavailable`, and `ValueError` for a record that cannot be decoded.
        """
        key = self.record_key(verification_id)
        with _unavailable_errors("GET", key):
            raw = await self._client.get(key)
        if raw is None:
            return None
        return decode_verification(key, verification_id, raw)

    async def find_id_by_message_sid(self, message_sid: str) -> str | None:
        """Return the id stored for `message_sid`, or None when the lookup has expired.

        The id may belong to a verification that was replaced since, so callers check
        the record's `message_sid`. Raises `StoreUnavailable`.
        """
        key = self.message_sid_key(message_sid)
        with _unavailable_errors("GET", key):
            value = await self._client.get(key)
        if value is None:
            return None
        return value.decode() if isinstance(value, bytes) else str(value)

    async def update(
        self,
        verification_id: str,
        change: Callable[[Verification], Verification | None],
    ) -> Verification | None:
        """Apply `change` with optimistic locking and return the stored result.

        The record is read under WATCH and written in MULTI/EXEC. When another writer
        changes it in between, EXEC fails and `change` runs again on the fresh record,
        up to `max_update_attempts` times, after which `StoreUnavailable` is raised.
        `change` returning None writes nothing and returns None. `change` must keep the
        id and `expires_at`, or `ValueError` is raised. Raises `VerificationNotFound`
        for a missing or expired record.
        """
        key = self.record_key(verification_id)
        for attempt in range(1, self._max_update_attempts + 1):
            try:
                with _unavailable_errors("WATCH/GET/MULTI/SET/EXEC", key):
                    return await self._update_once(key, verification_id, change)
            except redis_errors.WatchError:
                # redis-py also raises WatchError when the connection drops while a
                # key is watched, so the retry covers a reconnect as well.
                logger.debug(
                    "verification_update_conflict",
                    extra={"verification_id": verification_id, "attempt": attempt},
                )
        raise StoreUnavailable(
            f"update of verification {verification_id!r} failed {self._max_update_attempts} "
            "times because other writers changed the record concurrently. Retry later, "
            "or raise max_update_attempts if this contention is expected."
        )

    async def _update_once(
        self,
        key: str,
        verification_id: str,
        change: Callable[[Verification], Verification | None],
    ) -> Verification | None:
        async with self._client.pipeline(transaction=True) as pipe:
            await pipe.watch(key)
            raw = await pipe.get(key)
            if raw is None:
                raise VerificationNotFound(
                    f"verification {verification_id!r} not found: it never existed or "
                    "it has expired"
                )
            current = decode_verification(key, verification_id, raw)

            changed = change(current)
            if changed is None:
                return None
            _check_identity_kept(current, changed)

            # The expiry comes from the stored record rather than KEEPTTL: if the key
            # expired between GET and EXEC and the EXEC still ran, KEEPTTL would store a
            # record that never expires. Redis 7.0.15 aborts such an EXEC, but PXAT does
            # not depend on that.
            expires_at = _epoch_milliseconds(current.expires_at)
            if changed.message_sid is not None and changed.message_sid != current.message_sid:
                await self._write_message_sid(changed.message_sid, verification_id, expires_at)

            pipe.multi()  # type: ignore[no-untyped-call]  # redis-py leaves it unannotated
            pipe.set(key, encode_verification(changed), pxat=expires_at)
            await pipe.execute()
        return changed

    async def _write_message_sid(
        self, message_sid: str, verification_id: str, expires_at: int
    ) -> None:
        # Written before the record and outside its transaction, because the lookup key
        # lies in another cluster slot. This order means a stored record that names a
        # message has its lookup unless Redis evicted it. A lookup left by a failed
        # transaction points at a record with another or no message sid, which
        # RecordDeliveryStatus already checks.
        key = self.message_sid_key(message_sid)
        with _unavailable_errors("SET", key):
            await self._client.set(key, verification_id, pxat=expires_at)


@contextmanager
def _unavailable_errors(command: str, key: str) -> Iterator[None]:
    """Raise `StoreUnavailable` for connection-level Redis errors inside the block."""
    try:
        yield
    except _CREDENTIAL_ERRORS:
        raise
    except _UNAVAILABLE_ERRORS as error:
        raise StoreUnavailable(
            f"Redis {command} on key {key!r} failed: {type(error).__name__}: {error}. "
            "Check that Redis is running and reachable at REDIS_CONNECTION."
        ) from error


def _check_identity_kept(current: Verification, changed: Verification) -> None:
    if changed.id != current.id or changed.expires_at != current.expires_at:
        raise ValueError(
            f"the change for verification {current.id!r} returned id {changed.id!r} "
            f"expiring at {changed.expires_at.isoformat()}: update keeps the id and "
            f"expires_at ({current.expires_at.isoformat()}), so return a copy made with "
            "dataclasses.replace that leaves both unchanged"
        )


def _epoch_milliseconds(moment: datetime) -> int:
    """Return `moment` in Unix milliseconds for PXAT, at least 1 because PXAT rejects 0.

    Rounding down means the record never outlives `expires_at`.
    """
    return max((moment - _EPOCH) // timedelta(milliseconds=1), 1)
