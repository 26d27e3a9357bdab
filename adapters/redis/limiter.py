"""Redis implementation of the `SendLimiter` port with sliding-window logs in sorted sets.

Key layout, for the prefix `verification`:

- `verification:limit:{<e164>}:hour` and `verification:limit:{<e164>}:day` log the sends
  to one phone. They share the hash tag `{<e164>}`, so one script checks and adds to
  both on the cluster node that owns the phone's slot.
- `verification:limit:global:minute` logs the sends to every phone.

Each log is a sorted set whose members are the callers' tokens, scored with the `now`
of `acquire` in Unix milliseconds. A send counts in a window while
`now - window < score`. Each key expires one window after its last send.
"""

import logging
import math
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from adapters.redis.connection import RedisClient
from adapters.redis.errors import unavailable_errors
from application.errors import StoreUnavailable
from application.ports import LimitDecision
from domain.events import SendRejectionReason
from domain.phone import PhoneNumber

logger = logging.getLogger(__name__)

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_HOUR_MS = 3_600_000
_DAY_MS = 86_400_000
_MINUTE_MS = 60_000

# KEYS are sliding-window logs of one hash slot. ARGV[1] is now in Unix ms, ARGV[2] the
# token, and ARGV[3..] a limit and a window length in ms for each key in turn. A limit
# of 0 means no limit, and that key is neither read nor written.
#
# Drops entries that left their window, then rejects the call when any limited log
# already contains `limit` entries without the token. It then returns {index of the
# key, Unix ms when the send that must leave first has left the window}, for the key
# that frees up last, and writes nothing else, so a rejected call counts nothing.
# Otherwise it adds the token to every limited log and returns {0, added to key 1
# (1 or 0), added to key 2, ...}.
#
# A token that a log contains already counts once: ZADD NX keeps its first score, so a
# caller that retries with the same token is neither rejected by its own send nor
# counted twice.
_ACQUIRE_SCRIPT = """
local now = tonumber(ARGV[1])
local token = ARGV[2]
local rejected, retry_at = 0, 0
for i, key in ipairs(KEYS) do
  local limit = tonumber(ARGV[1 + 2 * i])
  local window = tonumber(ARGV[2 + 2 * i])
  if limit > 0 then
    redis.call('ZREMRANGEBYSCORE', key, '-inf', now - window)
    local count = redis.call('ZCARD', key)
    if count >= limit and not redis.call('ZSCORE', key, token) then
      local first = redis.call('ZRANGE', key, count - limit, count - limit, 'WITHSCORES')
      local frees_at = tonumber(first[2]) + window
      if frees_at > retry_at then rejected, retry_at = i, frees_at end
    end
  end
end
if rejected > 0 then return {rejected, retry_at} end
local added = {0}
for i, key in ipairs(KEYS) do
  local limit = tonumber(ARGV[1 + 2 * i])
  local window = tonumber(ARGV[2 + 2 * i])
  added[i + 1] = 0
  if limit > 0 then
    added[i + 1] = redis.call('ZADD', key, 'NX', now, token)
    redis.call('PEXPIRE', key, window)
  end
end
return added
"""

# Removes the token ARGV[1] from every log in KEYS, all of one hash slot, in one step.
_REMOVE_TOKEN_SCRIPT = """
for _, key in ipairs(KEYS) do redis.call('ZREM', key, ARGV[1]) end
return 0
"""


@dataclass(frozen=True, slots=True)
class _Window:
    """One sliding window: its limit, its length in milliseconds and the rejection reason."""

    limit: int
    length_ms: int
    reason: SendRejectionReason


class RedisSendLimiter:
    """Counts sends per phone per hour and day, and over all phones per minute.

    A limit of 0 turns that window off: nothing is counted or checked in it. Each
    limit is a maximum number of sends within the sliding window.
    """

    def __init__(
        self,
        client: RedisClient,
        key_prefix: str = "verification",
        per_phone_per_hour: int = 5,
        per_phone_per_day: int = 10,
        global_per_minute: int = 0,
    ) -> None:
        if not key_prefix or "{" in key_prefix or "}" in key_prefix:
            raise ValueError(
                f"invalid key prefix {key_prefix!r}: use a non-empty prefix without braces, "
                "because braces would change the Redis Cluster hash tag"
            )
        limits = {
            "per_phone_per_hour": per_phone_per_hour,
            "per_phone_per_day": per_phone_per_day,
            "global_per_minute": global_per_minute,
        }
        for name, limit in limits.items():
            if limit < 0:
                raise ValueError(f"invalid {name} {limit}: use 0 for no limit or a positive count")
        self._key_prefix = key_prefix
        self._phone_windows = (
            _Window(per_phone_per_hour, _HOUR_MS, SendRejectionReason.PHONE_HOURLY_LIMIT),
            _Window(per_phone_per_day, _DAY_MS, SendRejectionReason.PHONE_DAILY_LIMIT),
        )
        self._global_window = _Window(
            global_per_minute, _MINUTE_MS, SendRejectionReason.GLOBAL_LIMIT
        )
        self._acquire = client.register_script(_ACQUIRE_SCRIPT)
        self._remove_token = client.register_script(_REMOVE_TOKEN_SCRIPT)

    def phone_keys(self, phone: PhoneNumber) -> tuple[str, str]:
        """Return the hourly and daily log keys of `phone`, which share one hash slot."""
        base = f"{self._key_prefix}:limit:{{{phone.e164}}}"
        return f"{base}:hour", f"{base}:day"

    def global_key(self) -> str:
        """Return the key of the log of sends to every phone."""
        return f"{self._key_prefix}:limit:global:minute"

    async def acquire(self, phone: PhoneNumber, token: str, now: datetime) -> LimitDecision:
        """Count one send to `phone` under `token` if every limit allows it.

        The phone's hourly and daily logs are checked and written together by one
        script. The global log is checked next by a second script, and when it rejects
        the call, the phone entries just added are removed again, so a rejected call
        counts nothing. Between those two scripts a concurrent caller may be rejected
        by the phone entry that is then removed, but no caller ever passes a limit.
        A token counted already in a window counts once there. `retry_after_seconds` is
        the time until the send that must leave the window first has left it, rounded up
        and at least 1. Raises `StoreUnavailable`, and `ValueError` for a naive `now`.
        """
        now_ms = _epoch_milliseconds(now)
        phone_keys = self.phone_keys(phone)

        phone_label = self._phone_label(phone)
        added = await self._run_acquire(phone_keys, self._phone_windows, token, now_ms, phone_label)
        if isinstance(added, LimitDecision):
            return added

        if self._global_window.limit == 0:
            return LimitDecision(allowed=True)
        added_keys = [key for key, was_added in zip(phone_keys, added, strict=True) if was_added]
        try:
            decision = await self._run_acquire(
                (self.global_key(),), (self._global_window,), token, now_ms, self.global_key()
            )
        except StoreUnavailable:
            await self._compensate(added_keys, token, phone_label)
            raise
        if isinstance(decision, LimitDecision):
            await self._compensate(added_keys, token, phone_label)
            return decision
        return LimitDecision(allowed=True)

    async def release(self, phone: PhoneNumber, token: str) -> None:
        """Remove the send counted under `token` from every window of `phone` and the global one.

        Releasing a token that is not counted changes nothing. Raises `StoreUnavailable`.
        """
        if any(window.limit for window in self._phone_windows):
            await self._remove(list(self.phone_keys(phone)), token, self._phone_label(phone))
        if self._global_window.limit:
            await self._remove([self.global_key()], token, self.global_key())

    def _phone_label(self, phone: PhoneNumber) -> str:
        """Return the phone's key prefix with the number masked, for error messages and logs."""
        return f"{self._key_prefix}:limit:{{{phone.masked()}}}"

    async def _run_acquire(
        self,
        keys: tuple[str, ...],
        windows: tuple[_Window, ...],
        token: str,
        now_ms: int,
        label: str,
    ) -> LimitDecision | list[bool]:
        """Run the acquire script and return the rejection, or which keys got the token.

        `label` names the keys in errors without a full phone number.
        """
        if not any(window.limit for window in windows):
            return [False] * len(keys)
        args: list[str | int] = [now_ms, token]
        for window in windows:
            args += [window.limit, window.length_ms]
        with unavailable_errors("EVALSHA limiter-acquire", label):
            reply = await self._acquire(keys=list(keys), args=args)

        rejected = int(reply[0])
        if rejected == 0:
            return [int(was_added) == 1 for was_added in reply[1:]]
        window = windows[rejected - 1]
        retry_after = max(math.ceil((int(reply[1]) - now_ms) / 1000), 1)
        return LimitDecision(allowed=False, reason=window.reason, retry_after_seconds=retry_after)

    async def _compensate(self, added_keys: list[str], token: str, phone_label: str) -> None:
        """Remove the token from the phone logs it was just added to, after a global rejection.

        A failure is logged and not raised, because the rejection is still valid. The
        entries then count until their window ends, which may hold back a later send
        but never lets one pass a limit.
        """
        if not added_keys:
            return
        try:
            await self._remove(added_keys, token, phone_label)
        except StoreUnavailable as error:
            logger.warning(
                "send_limit_compensation_failed",
                extra={"keys": phone_label, "token": token, "error": str(error)},
            )

    async def _remove(self, keys: list[str], token: str, label: str) -> None:
        with unavailable_errors("EVALSHA limiter-remove-token", label):
            await self._remove_token(keys=keys, args=[token])


def _epoch_milliseconds(moment: datetime) -> int:
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError(
            f"invalid now {moment.isoformat()!r} without a time zone: "
            "use an aware datetime such as datetime.now(UTC)"
        )
    return (moment - _EPOCH) // timedelta(milliseconds=1)
