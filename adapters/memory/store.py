"""In-memory verification store with the same expiry and update rules as the real one."""

import asyncio
from collections.abc import Callable

from application.errors import VerificationNotFound
from application.ports import Clock
from domain.verification import Verification


class InMemoryVerificationStore:
    """Keeps verifications in a dict and hides them once the clock passes their expiry."""

    def __init__(self, clock: Clock) -> None:
        self._clock = clock
        self._records: dict[str, Verification] = {}
        self._ids_by_sid: dict[str, str] = {}
        self._lock = asyncio.Lock()

    async def create(self, verification: Verification) -> None:
        self._records[verification.id] = verification

    async def get(self, verification_id: str) -> Verification | None:
        verification = self._records.get(verification_id)
        if verification is None or verification.is_expired(self._clock.now()):
            return None
        return verification

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
