"""In-memory request ledger, send limiter and plain-code store, for tests and demos."""

import math
from dataclasses import dataclass
from datetime import datetime, timedelta

from application.errors import RequestInProgress
from application.ports import Claim, Clock, LimitDecision
from domain.code import VerificationCode
from domain.events import SendRejectionReason
from domain.phone import PhoneNumber


@dataclass
class _Entry:
    owner: str
    state: Claim
    claimed_at: datetime
    lease: timedelta = timedelta(0)


class InMemoryRequestLedger:
    """Follows the `RequestLedger` contract with a dict and the given clock."""

    def __init__(self, clock: Clock) -> None:
        self._clock = clock
        self.entries: dict[str, _Entry] = {}

    async def claim(self, request_key: str, owner: str, lease_seconds: float) -> Claim:
        now = self._clock.now()
        lease = timedelta(seconds=lease_seconds)
        entry = self.entries.get(request_key)
        if entry is None:
            self.entries[request_key] = _Entry(owner, Claim.ACQUIRED, now, lease)
            return Claim.ACQUIRED
        if entry.state is Claim.COMPLETED:
            return Claim.COMPLETED
        if entry.owner == owner:
            entry.claimed_at = now
            entry.lease = lease
            return Claim.SEND_STARTED if entry.state is Claim.SEND_STARTED else Claim.ACQUIRED
        # The claimant's own lease decides, as in the Redis ledger.
        if now - entry.claimed_at < entry.lease:
            return Claim.IN_PROGRESS
        taken = Claim.SEND_STARTED if entry.state is Claim.SEND_STARTED else Claim.ACQUIRED
        self.entries[request_key] = _Entry(owner, entry.state, now, lease)
        return taken

    async def mark_send_started(self, request_key: str, owner: str) -> None:
        entry = self._held_by(request_key, owner)
        entry.state = Claim.SEND_STARTED
        entry.claimed_at = self._clock.now()

    async def complete(self, request_key: str, owner: str) -> None:
        entry = self.entries.get(request_key)
        if entry is None or entry.state is not Claim.COMPLETED:
            self.entries[request_key] = _Entry(owner, Claim.COMPLETED, self._clock.now())

    def _held_by(self, request_key: str, owner: str) -> _Entry:
        entry = self.entries.get(request_key)
        if entry is None or entry.owner != owner or entry.state is Claim.COMPLETED:
            raise RequestInProgress(f"request {request_key} is no longer held by {owner}")
        return entry


class InMemorySendLimiter:
    """Sliding-window send limits per phone (hour, day) and overall (minute)."""

    def __init__(
        self, per_phone_per_hour: int = 5, per_phone_per_day: int = 10, global_per_minute: int = 0
    ) -> None:
        self._windows = [
            (SendRejectionReason.PHONE_HOURLY_LIMIT, timedelta(hours=1), per_phone_per_hour),
            (SendRejectionReason.PHONE_DAILY_LIMIT, timedelta(days=1), per_phone_per_day),
        ]
        self._global_per_minute = global_per_minute
        self.sends: dict[str, dict[str, datetime]] = {}

    async def acquire(self, phone: PhoneNumber, token: str, now: datetime) -> LimitDecision:
        if token in self.sends.get(phone.e164, {}):
            # A token counts once, as in the Redis limiter, so a retry is not limited twice.
            return LimitDecision(allowed=True)
        for reason, window, limit in self._windows:
            decision = self._check(phone.e164, now, window, limit, reason)
            if decision is not None:
                return decision
        if self._global_per_minute:
            decision = self._check(
                None,
                now,
                timedelta(minutes=1),
                self._global_per_minute,
                SendRejectionReason.GLOBAL_LIMIT,
            )
            if decision is not None:
                return decision
        self.sends.setdefault(phone.e164, {})[token] = now
        return LimitDecision(allowed=True)

    async def release(self, phone: PhoneNumber, token: str) -> None:
        self.sends.get(phone.e164, {}).pop(token, None)

    def _check(
        self,
        e164: str | None,
        now: datetime,
        window: timedelta,
        limit: int,
        reason: SendRejectionReason,
    ) -> LimitDecision | None:
        if limit <= 0:
            return None
        if e164 is None:
            times = [at for sends in self.sends.values() for at in sends.values()]
        else:
            times = list(self.sends.get(e164, {}).values())
        recent = sorted(at for at in times if now - at < window)
        if len(recent) < limit:
            return None
        wait = (recent[-limit] + window - now).total_seconds()
        return LimitDecision(False, reason, max(math.ceil(wait), 1))


class InMemoryPlainCodeStore:
    """Keeps legacy plain codes in a dict; for tests of the legacy contract."""

    def __init__(self) -> None:
        self.codes: dict[str, tuple[str, int]] = {}

    async def put(self, verification_id: str, code: VerificationCode, ttl_seconds: int) -> None:
        self.codes[verification_id] = (code.value, ttl_seconds)

    async def delete(self, verification_id: str) -> None:
        self.codes.pop(verification_id, None)
