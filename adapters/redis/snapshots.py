"""The last record bytes a store read or wrote per verification, as a guess for the next write.

A compare-and-set needs the bytes it expects to replace. A worker that has just read or
written a record usually has them already, so it can skip the read before its next
write. A wrong guess costs nothing but the refused write, because the script then
returns what the record holds, and the store never serves a read from these snapshots.
"""

from dataclasses import dataclass

DEFAULT_MAX_SNAPSHOTS = 4096


@dataclass(frozen=True, slots=True)
class Snapshot:
    """A record's raw bytes, or None when it was absent, and its check attempt count."""

    raw: bytes | str | None
    attempts: int


class RecentSnapshots:
    """Keeps the snapshots of the most recently used verifications, up to `capacity`."""

    def __init__(self, capacity: int = DEFAULT_MAX_SNAPSHOTS) -> None:
        if capacity < 1:
            raise ValueError(f"invalid snapshot capacity {capacity}: use 1 or more")
        self._capacity = capacity
        # Dicts keep insertion order, so the first key is the least recently stored.
        self._snapshots: dict[str, Snapshot] = {}

    def __len__(self) -> int:
        return len(self._snapshots)

    def get(self, verification_id: str) -> Snapshot | None:
        return self._snapshots.get(verification_id)

    def put(self, verification_id: str, snapshot: Snapshot) -> None:
        self._snapshots.pop(verification_id, None)
        self._snapshots[verification_id] = snapshot
        if len(self._snapshots) > self._capacity:
            del self._snapshots[next(iter(self._snapshots))]
