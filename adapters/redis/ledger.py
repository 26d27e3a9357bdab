"""Redis implementation of the `RequestLedger` port: one hash per request, changed by Lua scripts.

Key layout, for the prefix `verification`: `verification:request:{<request key>}` is a
hash with the fields `state` (claimed, send_started or completed), `owner`,
`claimed_at_ms` and `lease_ms`, plus `send_started_at_ms` and `completed_at_ms` once
those states are reached. Times are the Redis server's clock in Unix milliseconds, so
workers with skewed clocks agree on when a lease runs out. Each operation is one
script on that one key, so it is atomic on a single server and in a Redis Cluster.
The key expires `window_seconds` after its last change.
"""

import logging
import math

from adapters.redis.connection import RedisClient
from adapters.redis.errors import unavailable_errors
from application.errors import RequestInProgress
from application.ports import Claim

logger = logging.getLogger(__name__)

# A topic name (up to 249 characters) with partition, offset and timestamp fits.
MAX_REQUEST_KEY_LENGTH = 320
DEFAULT_WINDOW_SECONDS = 86400

# Shared by the scripts: the server time in Unix milliseconds. TIME is allowed before
# writes because Redis 7 replicates a script's effects, not the script.
_NOW_MS = """
local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000 + math.floor(tonumber(clock[2]) / 1000)
"""

# ARGV[1] owner, ARGV[2] lease in ms, ARGV[3] window in seconds. Returns
# {result, previous owner}. The owner keeps its claim in any state but completed and
# renews its lease. Another owner waits while the lease runs, then takes the claim
# over. Once a send started, the result is send_started for the owner and for a new
# owner alike, so either one queries the provider whether that send went through.
_CLAIM_SCRIPT = (
    _NOW_MS
    + """
local entry = redis.call('HMGET', KEYS[1], 'state', 'owner', 'claimed_at_ms', 'lease_ms')
local state, owner = entry[1], entry[2]
if state and state ~= 'claimed' and state ~= 'send_started' and state ~= 'completed' then
  return redis.error_reply('unknown request ledger state at ' .. KEYS[1])
end
if state == 'completed' then return {'completed', owner or ''} end
local result = 'acquired'
if state and owner ~= ARGV[1] then
  if now < tonumber(entry[3]) + tonumber(entry[4]) then return {'in_progress', owner or ''} end
  if state == 'send_started' then result = 'send_started' else result = 'taken_over' end
elseif state == 'send_started' then
  result = 'send_started'
end
redis.call('HSET', KEYS[1], 'state', state or 'claimed', 'owner', ARGV[1],
  'claimed_at_ms', now, 'lease_ms', ARGV[2])
redis.call('EXPIRE', KEYS[1], ARGV[3])
return {result, owner or ''}
"""
)

# ARGV[1] owner, ARGV[2] window in seconds. Returns 'ok', or why the send must not
# happen: 'completed', or 'held' when another owner has claimed the request. A
# missing entry is written as started, because no other owner can send without one.
_MARK_SEND_STARTED_SCRIPT = (
    _NOW_MS
    + """
local entry = redis.call('HMGET', KEYS[1], 'state', 'owner')
local state, owner = entry[1], entry[2]
if state == 'completed' then return 'completed' end
if state and owner ~= ARGV[1] then return 'held' end
-- The lease runs from the send's start, so the send has the whole lease to finish.
redis.call('HSET', KEYS[1], 'state', 'send_started', 'owner', ARGV[1],
  'send_started_at_ms', now, 'claimed_at_ms', now)
redis.call('EXPIRE', KEYS[1], ARGV[2])
return 'ok'
"""
)

# ARGV[1] owner, ARGV[2] window in seconds. Returns {result, previous owner}, where
# result is 'completed' or 'already_completed'.
_COMPLETE_SCRIPT = (
    _NOW_MS
    + """
local entry = redis.call('HMGET', KEYS[1], 'state', 'owner')
if entry[1] == 'completed' then return {'already_completed', entry[2] or ''} end
redis.call('HSET', KEYS[1], 'state', 'completed', 'owner', ARGV[1], 'completed_at_ms', now)
redis.call('EXPIRE', KEYS[1], ARGV[2])
return {'completed', entry[2] or ''}
"""
)


class RedisRequestLedger:
    """Tracks each request from claim to completion in a Redis hash that expires after a window."""

    def __init__(
        self,
        client: RedisClient,
        key_prefix: str = "verification",
        window_seconds: int = DEFAULT_WINDOW_SECONDS,
    ) -> None:
        if not key_prefix or "{" in key_prefix or "}" in key_prefix:
            raise ValueError(
                f"invalid key prefix {key_prefix!r}: use a non-empty prefix without braces, "
                "because braces would change the Redis Cluster hash tag"
            )
        if window_seconds < 1:
            raise ValueError(f"invalid window_seconds {window_seconds}: use 1 or more seconds")
        self._key_prefix = key_prefix
        self._window_seconds = window_seconds
        self._claim = client.register_script(_CLAIM_SCRIPT)
        self._mark_send_started = client.register_script(_MARK_SEND_STARTED_SCRIPT)
        self._complete = client.register_script(_COMPLETE_SCRIPT)

    def request_key(self, request_key: str) -> str:
        """Return the Redis key of the ledger entry for `request_key`.

        Raises `ValueError` for an empty key or one longer than `MAX_REQUEST_KEY_LENGTH` characters.
        """
        if not request_key or len(request_key) > MAX_REQUEST_KEY_LENGTH:
            raise ValueError(
                f"invalid request key {request_key[:40]!r} of {len(request_key)} characters: "
                f"use 1 to {MAX_REQUEST_KEY_LENGTH} characters"
            )
        return f"{self._key_prefix}:request:{{{request_key}}}"

    async def claim(self, request_key: str, owner: str, lease_seconds: float) -> Claim:
        """Claim `request_key` for `owner` for `lease_seconds`, measured on the Redis clock.

        Follows the `RequestLedger.claim` contract. Every claim that returns ACQUIRED
        or SEND_STARTED gives `owner` the request and renews the lease and the window.
        Raises `StoreUnavailable`, and `ValueError` for an empty owner or a lease that
        is not a positive number of seconds.
        """
        key = self.request_key(request_key)
        _check_owner(owner)
        if not math.isfinite(lease_seconds) or lease_seconds <= 0:
            raise ValueError(f"invalid lease_seconds {lease_seconds}: use a positive number")
        lease_ms = max(math.ceil(lease_seconds * 1000), 1)

        with unavailable_errors("EVALSHA ledger-claim", key):
            reply = await self._claim(keys=[key], args=[owner, lease_ms, self._window_seconds])
        result, previous_owner = _text(reply[0]), _text(reply[1])
        if result == "taken_over" or (result == "send_started" and previous_owner != owner):
            logger.info(
                "request_claim_taken_over",
                extra={
                    "request_key": request_key,
                    "owner": owner,
                    "previous_owner": previous_owner,
                    "send_started": result == "send_started",
                },
            )
            return Claim.ACQUIRED if result == "taken_over" else Claim.SEND_STARTED
        return Claim(result)

    async def mark_send_started(self, request_key: str, owner: str) -> None:
        """Record that `owner` is about to call the provider for this request.

        Raises `RequestInProgress` and records nothing when another owner took the
        request over after this owner's lease ran out, or the request was completed,
        because a send now could duplicate theirs. The retry's `claim` then reports
        the request's state. Raises `StoreUnavailable`.
        """
        key = self.request_key(request_key)
        _check_owner(owner)

        with unavailable_errors("EVALSHA ledger-mark-send-started", key):
            reply = await self._mark_send_started(keys=[key], args=[owner, self._window_seconds])
        result = _text(reply)
        if result == "ok":
            return
        logger.warning(
            "request_send_start_refused",
            extra={"request_key": request_key, "owner": owner, "state": result},
        )
        reason = "was completed" if result == "completed" else "is held by another owner"
        raise RequestInProgress(
            f"request {request_key!r} {reason}, so owner {owner!r} must not send it. "
            "Retry later: the next claim returns the request's state."
        )

    async def complete(self, request_key: str, owner: str) -> None:
        """Record that the request was handled, whatever its outcome.

        This also applies when another owner has claimed the request since, because
        `owner` has handled it already. A request completed already stays as it is.
        Raises `StoreUnavailable`.
        """
        key = self.request_key(request_key)
        _check_owner(owner)

        with unavailable_errors("EVALSHA ledger-complete", key):
            reply = await self._complete(keys=[key], args=[owner, self._window_seconds])
        result, previous_owner = _text(reply[0]), _text(reply[1])
        if previous_owner not in ("", owner):
            # The owner's lease ran out and another worker claimed the request, so both
            # may have handled it.
            logger.warning(
                "request_completed_by_other_owner",
                extra={
                    "request_key": request_key,
                    "owner": owner,
                    "previous_owner": previous_owner,
                    "already_completed": result == "already_completed",
                },
            )


def _check_owner(owner: str) -> None:
    if not owner:
        raise ValueError("invalid owner '': name the worker or handling that claims the request")


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value
