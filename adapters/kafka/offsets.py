"""Per-partition offset tracking: which offset is safe to commit while messages run at once."""

from collections import deque


class OffsetTracker:
    """Offsets of one partition that were dispatched, in order, and which have finished.

    The committable offset is the lowest unfinished one: committing it records in Kafka that
    every earlier message is done, so a slow message never lets a later commit skip it.
    """

    def __init__(self) -> None:
        self._dispatched: deque[int] = deque()
        self._finished: set[int] = set()
        self._next_offset: int | None = None
        self.committed: int | None = None

    @property
    def in_flight(self) -> int:
        return len(self._dispatched)

    def dispatched(self, offset: int) -> None:
        """Record that `offset` started; offsets of a partition arrive in increasing order."""
        if self._dispatched and offset <= self._dispatched[-1]:
            raise ValueError(
                f"offset {offset} dispatched after {self._dispatched[-1]}: offsets of one "
                "partition must arrive in increasing order"
            )
        self._dispatched.append(offset)

    def finished(self, offset: int) -> None:
        """Record that the message at `offset` was handled."""
        self._finished.add(offset)
        while self._dispatched and self._dispatched[0] in self._finished:
            done = self._dispatched.popleft()
            self._finished.discard(done)
            self._next_offset = done + 1

    def committable(self) -> int | None:
        """Return the offset to commit now, or None when nothing new is finished."""
        if self._next_offset is None or self._next_offset == self.committed:
            return None
        return self._next_offset
