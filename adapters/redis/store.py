"""Redis implementation of the `VerificationStore` port, for one server or a Redis Cluster.

Key layout, for the default prefix `verification`:

- `verification:{<id>}` is a string containing the record as JSON (see `codec`). The
  braces are a Redis Cluster hash tag. Ids that pass `check_verification_id` contain no
  braces, so the tag is always the whole id.
- `verification:{<id>}:attempts` is the integer count of check attempts. It has the
  same hash tag, so it lies in the record's slot and one script can change both keys.
- `verification:sid:<message sid>` is a string containing the verification id, for
  status callbacks that carry only the provider's message id. It lies in another slot
  and is never written in the same command as the record.

The record and the SID lookup expire `retention_seconds` after the verification's
`expires_at`, so the final status (approved, canceled or expired) can still be read for
a while after the code stopped working. The domain decides from `expires_at` whether
the code has expired, and the store only keeps the record longer. The counter expires
at the record's expiry time.

Every write of a record or counter is one Lua script on keys of one slot, which runs
atomically on one server and on the cluster node that owns the slot. The store does not
use WATCH/MULTI, whose state lives on one connection: a script routes like any keyed
command in a cluster and has no watched connection to lose on a reconnect or redirect.
A read-modify-write instead applies the change in Python to the record as last seen and
stores the result with a compare-and-set script that writes only if the record still has
those bytes and attempt count. On a mismatch the script returns what the record holds,
and the change runs again on that, up to `max_update_attempts` times. The record as last
seen is the store's own snapshot from its latest read or write of that id when it has
one (see `snapshots`), so a worker that stores a code and then records the send reads
the record once, not before every write.

Why one JSON string and not a hash: the history is a nested list, which a hash could
only hold as an embedded JSON field anyway. Equal bytes also make the compare-and-set a
single string comparison. PEXPIRETIME needs Redis 7.0 or later.
"""

import logging
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from adapters.redis.codec import decode_verification, encode_verification
from adapters.redis.connection import RedisClient
from adapters.redis.errors import unavailable_errors
from adapters.redis.snapshots import RecentSnapshots, Snapshot
from application.errors import StoreUnavailable, VerificationNotFound
from domain.verification import Verification

logger = logging.getLogger(__name__)

DEFAULT_MAX_UPDATE_ATTEMPTS = 20
DEFAULT_RETENTION_SECONDS = 3600

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

# Writes ARGV[3] to the record only if the record is as the caller last saw it. Modes:
# 'any' writes unconditionally, 'absent' requires that no record exists, and 'equal'
# requires the record to equal ARGV[2] and the attempt counter (KEYS[2], same slot) to
# equal ARGV[6]. ARGV[4] is the expiry in Unix milliseconds, or 'keep' to keep the
# current one, which is safe because 'equal' has just proved that the key exists.
# ARGV[5] = '1' also deletes the attempt counter. Returns {1} when written, and
# {0, record, counter} with what the keys hold when the record differed.
_COMPARE_AND_SET_SCRIPT = """
local current = redis.call('GET', KEYS[1])
local counter = redis.call('GET', KEYS[2])
if (ARGV[1] == 'absent' and current)
  or (ARGV[1] == 'equal' and (current ~= ARGV[2] or (counter or '0') ~= ARGV[6])) then
  return {0, current, counter}
end
if ARGV[4] == 'keep' then
  redis.call('SET', KEYS[1], ARGV[3], 'KEEPTTL')
else
  redis.call('SET', KEYS[1], ARGV[3], 'PXAT', ARGV[4])
end
if ARGV[5] == '1' then redis.call('DEL', KEYS[2]) end
return {1}
"""

# Counts one check attempt in KEYS[2] and gives the counter the expiry time of the
# record KEYS[1] (same slot), in the same atomic step, so the counter never lacks an
# expiry and never outlives the record. Returns the new count, -2 when the record does
# not exist, and -1 when the record has no expiry, which no write of this store leaves.
_RECORD_ATTEMPT_SCRIPT = """
local expires_at = redis.call('PEXPIRETIME', KEYS[1])
if expires_at < 0 then return expires_at end
local count = redis.call('INCR', KEYS[2])
redis.call('PEXPIREAT', KEYS[2], expires_at)
return count
"""

_RECORD_MISSING = -2
_RECORD_WITHOUT_EXPIRY = -1


_ABSENT = Snapshot(None, 0)


def _replace_any(_: Verification) -> bool:
    return True


class RedisVerificationStore:
    """Keeps each verification as one JSON string, plus an attempt counter in the same slot."""

    def __init__(
        self,
        client: RedisClient,
        key_prefix: str = "verification",
        max_update_attempts: int = DEFAULT_MAX_UPDATE_ATTEMPTS,
        retention_seconds: int = DEFAULT_RETENTION_SECONDS,
    ) -> None:
        if not key_prefix or "{" in key_prefix or "}" in key_prefix:
            raise ValueError(
                f"invalid key prefix {key_prefix!r}: use a non-empty prefix without braces, "
                "because braces would change the Redis Cluster hash tag"
            )
        if max_update_attempts < 1:
            raise ValueError(f"invalid max_update_attempts {max_update_attempts}: use 1 or more")
        if retention_seconds < 0:
            raise ValueError(
                f"invalid retention_seconds {retention_seconds}: use 0 or more seconds"
            )
        self._client = client
        self._key_prefix = key_prefix
        self._max_update_attempts = max_update_attempts
        self._retention = timedelta(seconds=retention_seconds)
        self._snapshots = RecentSnapshots()
        self._compare_and_set = client.register_script(_COMPARE_AND_SET_SCRIPT)
        self._record_attempt = client.register_script(_RECORD_ATTEMPT_SCRIPT)

    def record_key(self, verification_id: str) -> str:
        """Return the key of the record for `verification_id`."""
        return f"{self._key_prefix}:{{{verification_id}}}"

    def attempts_key(self, verification_id: str) -> str:
        """Return the key of the check attempt counter, in the same slot as the record."""
        return f"{self.record_key(verification_id)}:attempts"

    def message_sid_key(self, message_sid: str) -> str:
        """Return the key that maps `message_sid` to its verification id."""
        return f"{self._key_prefix}:sid:{message_sid}"

    async def create(
        self,
        verification: Verification,
        may_replace: Callable[[Verification], bool] = _replace_any,
    ) -> Verification | None:
        """Store `verification` and reset its check attempts, unless a stored one blocks it.

        When a record with the same id exists and `may_replace(record)` is False,
        nothing is written and that record is returned, even if its code has expired:
        `may_replace` decides that from the record's times. Otherwise the record is
        written and None is returned. The record's `check_attempts` is not stored, so
        the new record starts at 0. `may_replace` may run more than once when another
        writer changes the record at the same time. Raises `StoreUnavailable`, also
        after `max_update_attempts` such collisions, and `ValueError` for a stored
        record that cannot be decoded.
        """
        key = self.record_key(verification.id)
        value = encode_verification(verification)
        expires_at = self._retained_until(verification)

        if verification.message_sid is not None:
            await self._write_message_sid(verification.message_sid, verification.id, expires_at)
        if may_replace is _replace_any:
            await self._write(verification.id, "any", _ABSENT, value, expires_at)
            return None

        # Without a snapshot the id is most likely new, so the first write expects no record.
        seen = self._snapshots.get(verification.id) or _ABSENT
        confirmed = False
        conflicts = 0
        while True:
            condition = "absent"
            if seen.raw is not None:
                current = decode_verification(key, verification.id, seen.raw, seen.attempts)
                if not may_replace(current):
                    if confirmed:
                        return current
                    # A snapshot may be out of date: only a fresh read may block the write.
                    seen, confirmed = await self._read(verification.id), True
                    continue
                condition = "equal"
            written, seen = await self._write(verification.id, condition, seen, value, expires_at)
            if written:
                return None
            # A write refused for an out-of-date snapshot is no conflict with another writer.
            if confirmed:
                conflicts += 1
                logger.debug(
                    "verification_create_conflict",
                    extra={"verification_id": verification.id, "attempt": conflicts},
                )
                if conflicts >= self._max_update_attempts:
                    raise self._contention("create", verification.id)
            confirmed = True

    async def record_attempt(self, verification_id: str) -> int:
        """Count one check attempt atomically and return the attempts made so far.

        The counter gets the record's expiry time and `create` deletes it. Raises
        `VerificationNotFound` when the record is gone, `StoreUnavailable`, and
        `ValueError` for a record without expiry, which this store never writes.
        """
        key = self.record_key(verification_id)
        with unavailable_errors("EVALSHA record-attempt", key):
            result = await self._record_attempt(keys=[key, self.attempts_key(verification_id)])
        count = int(result)
        if count == _RECORD_MISSING:
            raise VerificationNotFound(
                f"verification {verification_id!r} not found: it never existed or its "
                "record has expired"
            )
        if count == _RECORD_WITHOUT_EXPIRY:
            raise ValueError(
                f"the verification record at Redis key {key!r} has no expiry, so its "
                "attempts cannot expire with it. Delete the key or store the verification "
                "again with create()."
            )
        seen = self._snapshots.get(verification_id)
        if seen is not None:
            self._snapshots.put(verification_id, Snapshot(seen.raw, count))
        return count

    async def get(self, verification_id: str) -> Verification | None:
        """Return the stored verification with its check attempts, or None when it is gone.

        The record stays readable for `retention_seconds` after its code expired, so
        callers ask `Verification.status` or `is_expired`. Raises `StoreUnavailable`,
        and `ValueError` for a record or counter that cannot be decoded.
        """
        seen = await self._read(verification_id)
        if seen.raw is None:
            return None
        return decode_verification(
            self.record_key(verification_id), verification_id, seen.raw, seen.attempts
        )

    async def find_id_by_message_sid(self, message_sid: str) -> str | None:
        """Return the id stored for `message_sid`, or None when the lookup has expired.

        The id may belong to a verification that was replaced since, so callers check
        the record's `message_sid`. Raises `StoreUnavailable`.
        """
        key = self.message_sid_key(message_sid)
        with unavailable_errors("GET", key):
            value = await self._client.get(key)
        if value is None:
            return None
        return value.decode() if isinstance(value, bytes) else str(value)

    async def update(
        self,
        verification_id: str,
        change: Callable[[Verification], Verification | None],
    ) -> Verification | None:
        """Apply `change` with compare-and-set and return the stored result.

        `change` gets the record with its check attempts. When another writer changes
        the record or counts a check attempt before the write, nothing is written and
        `change` runs again on the fresh record, up to `max_update_attempts` times,
        after which `StoreUnavailable` is raised. `change` returning None for the
        record as Redis contains it writes nothing and returns None. `change` must keep
        the id and `expires_at`, or `ValueError` is raised. The record keeps its expiry
        time. Raises `VerificationNotFound` when the record is gone, which can happen
        before its code's `expires_at` only if the key was deleted.
        """
        key = self.record_key(verification_id)
        seen = self._snapshots.get(verification_id)
        confirmed = False
        if seen is None or seen.raw is None:
            seen, confirmed = await self._read(verification_id), True
        conflicts = 0
        while True:
            if seen.raw is None:
                raise VerificationNotFound(
                    f"verification {verification_id!r} not found: it never existed or "
                    "its record has expired"
                )
            current = decode_verification(key, verification_id, seen.raw, seen.attempts)
            changed = change(current)
            if changed is None:
                if confirmed:
                    return None
                # A snapshot may be out of date: only a fresh read may skip the write.
                seen, confirmed = await self._read(verification_id), True
                continue
            _check_identity_kept(current, changed)

            if changed.message_sid is not None and changed.message_sid != current.message_sid:
                await self._write_message_sid(
                    changed.message_sid, verification_id, self._retained_until(current)
                )
            encoded = encode_verification(changed)
            written, seen = await self._write(verification_id, "equal", seen, encoded, None)
            if written:
                return changed
            # A write refused for an out-of-date snapshot is no conflict with another writer.
            if confirmed:
                conflicts += 1
                logger.debug(
                    "verification_update_conflict",
                    extra={"verification_id": verification_id, "attempt": conflicts},
                )
                if conflicts >= self._max_update_attempts:
                    raise self._contention("update", verification_id)
            confirmed = True

    async def _read(self, verification_id: str) -> Snapshot:
        """Return the raw record, or None, and the check attempts, from one MGET."""
        key = self.record_key(verification_id)
        counter_key = self.attempts_key(verification_id)
        # Both keys lie in one slot, so a cluster client sends this MGET to one node.
        with unavailable_errors("MGET", key):
            raw, counter = await self._client.mget([key, counter_key])
        return self._remember(verification_id, raw, counter)

    async def _write(
        self,
        verification_id: str,
        condition: str,
        expected: Snapshot,
        value: bytes,
        expires_at: int | None,
    ) -> tuple[bool, Snapshot]:
        """Run the compare-and-set script; return whether it wrote, and the record after.

        `condition` is the script's mode: 'any', 'absent' or 'equal' to `expected`.
        `expires_at` in Unix milliseconds comes with a new record, which also resets
        the attempt counter. None keeps the record's expiry and counter, as an update
        does.
        """
        key = self.record_key(verification_id)
        if expires_at is None:
            expiry, reset_attempts = "keep", "0"
        else:
            expiry, reset_attempts = str(expires_at), "1"
        with unavailable_errors("EVALSHA compare-and-set", key):
            reply = await self._compare_and_set(
                keys=[key, self.attempts_key(verification_id)],
                args=[
                    condition,
                    expected.raw or b"",
                    value,
                    expiry,
                    reset_attempts,
                    str(expected.attempts),
                ],
            )
        if int(reply[0]) == 1:
            attempts = 0 if expires_at is not None else expected.attempts
            return True, self._remember(verification_id, value, attempts)
        return False, self._remember(verification_id, reply[1], reply[2])

    def _remember(self, verification_id: str, raw: object, counter: object) -> Snapshot:
        """Keep and return the snapshot of a record and counter as Redis returned them."""
        # A script's missing key arrives as None over RESP2 and as False over RESP3.
        record = raw if isinstance(raw, bytes | str) else None
        snapshot = Snapshot(record, self._attempts_from(verification_id, counter))
        self._snapshots.put(verification_id, snapshot)
        return snapshot

    def _attempts_from(self, verification_id: str, counter: object) -> int:
        if counter is None or counter is False:
            return 0
        try:
            return int(counter) if isinstance(counter, int | bytes | str) else int(str(counter))
        except ValueError:
            raise ValueError(
                f"the check attempt counter at Redis key "
                f"{self.attempts_key(verification_id)!r} is not an integer. "
                "Delete the key: the next check counts from 1 again."
            ) from None

    async def _write_message_sid(
        self, message_sid: str, verification_id: str, expires_at: int
    ) -> None:
        # Written before the record and outside its script, because the lookup key lies
        # in another cluster slot. This order means a stored record that names a message
        # has its lookup unless Redis evicted it. A lookup left by a failed write points
        # at a record with another or no message sid, which RecordDeliveryStatus checks.
        key = self.message_sid_key(message_sid)
        with unavailable_errors("SET", key):
            await self._client.set(key, verification_id, pxat=expires_at)

    def _retained_until(self, verification: Verification) -> int:
        return _epoch_milliseconds(verification.expires_at + self._retention)

    def _contention(self, operation: str, verification_id: str) -> StoreUnavailable:
        return StoreUnavailable(
            f"{operation} of verification {verification_id!r} failed "
            f"{self._max_update_attempts} times because other writers changed the record "
            "concurrently. Retry later, or raise max_update_attempts if this contention "
            "is expected."
        )


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

    Rounding down means the record never outlives `moment`.
    """
    return max((moment - _EPOCH) // timedelta(milliseconds=1), 1)
