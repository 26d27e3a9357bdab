"""In-memory fake of the Notifier port that records events, for unit tests and demos."""

import asyncio

from adapters.notification.frames import event_to_frame
from domain.events import Event


class RecordingNotifier:
    """A `Notifier` that keeps every published event in memory, in publish order.

    Each event is also converted with `event_to_frame`, so a test can read the frame a
    real notifier would send, and an event that cannot be converted raises in
    `publish` just as it would in production. Use it from one event loop only.
    """

    def __init__(self) -> None:
        self._events: list[Event] = []
        self._frames: list[dict[str, object]] = []
        self._changed = asyncio.Condition()

    @property
    def events(self) -> list[Event]:
        """Copy of the events published so far, oldest first."""
        return list(self._events)

    @property
    def frames(self) -> list[dict[str, object]]:
        """Copy of the frames of the events published so far, oldest first."""
        return list(self._frames)

    async def publish(self, event: Event) -> None:
        frame = event_to_frame(event)
        async with self._changed:
            self._events.append(event)
            self._frames.append(frame)
            self._changed.notify_all()

    async def wait_for(self, count: int = 1, timeout: float = 5.0) -> list[Event]:
        """Wait until at least `count` events have been published in total, and return them.

        Raises `TimeoutError` naming the expected and the recorded count when fewer than
        `count` events arrive within `timeout` seconds.
        """
        if count < 1:
            raise ValueError(f"invalid count {count}: wait for 1 or more events")
        try:
            async with asyncio.timeout(timeout), self._changed:
                await self._changed.wait_for(lambda: len(self._events) >= count)
        except TimeoutError:
            raise TimeoutError(self._timeout_message(count, timeout)) from None
        return list(self._events)

    async def wait_for_next(self, timeout: float = 5.0) -> Event:
        """Wait for the first event published after this call, and return it.

        Raises `TimeoutError` when no event is published within `timeout` seconds.
        """
        seen = len(self._events)
        events = await self.wait_for(count=seen + 1, timeout=timeout)
        return events[seen]

    def clear(self) -> None:
        """Forget the events recorded so far."""
        self._events.clear()
        self._frames.clear()

    def _timeout_message(self, count: int, timeout: float) -> str:
        kinds = [type(event).__name__ for event in self._events]
        return (
            f"timed out after {timeout} s waiting for {count} published events; "
            f"{len(kinds)} were published: {kinds}"
        )
