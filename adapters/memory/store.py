"""In-memory verification store with the same expiry and update rules as the Redis one."""

import asyncio
from collections.abc import Callable
from dataclasses import replace
from datetime import timedelta

from application.errors import VerificationNotFound
from application.ports import Clock
from domain.verification import Verification


class InMemoryVerificationStore:
    """Keeps verifications in a dict until the clock passes expiry plus `retention`."""

    def __init__(self, clock: Clock, retention: timedelta = timedelta(hours=1)) -> None:
        self._clock = clock
        self._retention = retention
        self._records: dict[str, Verification] = {}
        self._attempts: dict[str, int] = {}
        self._ids_by_sid: dict[str, str] = {}
        self._lock = asyncio.Lock()

    async def create(
        self,
        verification: Verification,
        may_replace: Callable[[Verification], bool] = lambda _: True,
    ) -> Verification | None:
        async with self._lock:
            current = await self.get(verification.id)
            if current is not None and not may_replace(current):
                return current
            self._records[verification.id] = verification
            self._attempts.pop(verification.id, None)
            return None

    async def record_attempt(self, verification_id: str) -> int:
        async with self._lock:
            if await self.get(verification_id) is None:
                raise VerificationNotFound(f"verification {verification_id!r} not found")
            self._attempts[verification_id] = self._attempts.get(verification_id, 0) + 1
            return self._attempts[verification_id]

    async def get(self, verification_id: str) -> Verification | None:
        verification = self._records.get(verification_id)
        if verification is None:
            return None
        if self._clock.now() >= verification.expires_at + self._retention:
            return None
        return replace(verification, check_attempts=self._attempts.get(verification_id, 0))

    async def find_id_by_message_sid(self, message_sid: str) -> str | None:
        verification_id = self._ids_by_sid.get(message_sid)
        if verification_id is None or await self.get(verification_id) is None:
            return None
        return verification_id

    async def update(
        self,
        verification_id: str,
        change: Callable[[Verification], Verification | None],
    ) -> Verification | None:
        async with self._lock:
            current = await self.get(verification_id)
            if current is None:
                raise VerificationNotFound(f"verification {verification_id!r} not found")
            updated = change(current)
            if updated is None:
                return None
            self._records[verification_id] = updated
            if updated.message_sid is not None:
                self._ids_by_sid[updated.message_sid] = verification_id
            return updated
