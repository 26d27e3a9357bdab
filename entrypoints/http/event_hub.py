"""In-process fan-out of event frames to the WebSocket clients of the /ws hub."""

import asyncio
import itertools
import json
import logging
import time
from collections import deque
from collections.abc import Callable, Iterable

logger = logging.getLogger(__name__)

# Close codes of RFC 6455: 1008 is a policy violation (bad token or subscription),
# 1013 tells the client to try again later (it read too slowly), and 1001 says the
# server is going away.
CLOSE_POLICY_VIOLATION = 1008
CLOSE_TRY_AGAIN_LATER = 1013
CLOSE_GOING_AWAY = 1001

INVALID_FRAME_LOG_INTERVAL_SECONDS = 10.0


class HubClient:
    """One connected /ws client: what it subscribed to and the frames waiting for it.

    The queue contains at most `queue_size` frames. A frame offered to a full queue marks
    the client for closing with code 1013 instead of waiting, so one slow client never
    delays the others or the hub.
    """

    def __init__(
        self, number: int, queue_size: int, all_events: bool, verification_ids: Iterable[str]
    ) -> None:
        self.number = number
        self.all_events = all_events
        self.verification_ids: set[str] = set(verification_ids)
        self.queue: asyncio.Queue[str] = asyncio.Queue(maxsize=queue_size)
        self.close_code: int | None = None
        self.close_reason = ""
        self._closing = asyncio.Event()

    @property
    def closing(self) -> bool:
        """True once the hub asked for this client's connection to be closed."""
        return self._closing.is_set()

    def wants(self, verification_id: str) -> bool:
        """Return True when the client subscribed to `verification_id` or to every event."""
        return self.all_events or verification_id in self.verification_ids

    def offer(self, text: str) -> bool:
        """Queue `text`, or mark the client for closing and return False when its queue is full."""
        if self.closing:
            return False
        try:
            self.queue.put_nowait(text)
        except asyncio.QueueFull:
            self.close(
                CLOSE_TRY_AGAIN_LATER,
                f"client too slow: {self.queue.maxsize} events were waiting; reconnect",
            )
            return False
        return True

    def close(self, code: int, reason: str) -> None:
        """Ask for the connection to be closed with `code` and `reason`; the first call wins."""
        if self.closing:
            return
        self.close_code = code
        self.close_reason = reason
        self._closing.set()

    async def wait_closing(self) -> None:
        """Wait until the hub requests that this client's connection be closed."""
        await self._closing.wait()


class EventHub:
    """Fans the frames read from the event channel out to the subscribed clients.

    `dispatch` takes the JSON text of one frame, as the notifiers send it, and offers it
    to every client subscribed to the frame's `verification_id` or to every event. It
    keeps the last `history_size` frames, and a new subscription first receives the
    kept frames it matches, at most half of its queue, oldest first, so a page opened
    after an event still shows it. Use it from one event loop only.
    """

    def __init__(self, queue_size: int, history_size: int) -> None:
        if queue_size < 1:
            raise ValueError(f"invalid queue_size {queue_size}: use 1 or more frames")
        if history_size < 0:
            raise ValueError(f"invalid history_size {history_size}: use 0 or more frames")
        self._queue_size = queue_size
        self._history: deque[tuple[str, str]] = deque(maxlen=history_size)
        self._clients: set[HubClient] = set()
        self._numbers = itertools.count(1)
        self._frames_dispatched = 0
        self._frames_invalid = 0
        self._invalid_not_logged = 0
        self._last_invalid_log_at: float | None = None
        self._clients_dropped = 0

    @property
    def client_count(self) -> int:
        """Number of connected clients."""
        return len(self._clients)

    @property
    def frames_dispatched(self) -> int:
        """Number of valid frames received from the channel."""
        return self._frames_dispatched

    @property
    def frames_invalid(self) -> int:
        """Number of channel messages skipped because they were not event frames."""
        return self._frames_invalid

    @property
    def clients_dropped(self) -> int:
        """Number of clients closed because their queue was full."""
        return self._clients_dropped

    def connect(self, *, all_events: bool, verification_ids: Iterable[str]) -> HubClient:
        """Register a client, queue its `subscribed` frame and its history, and return it."""
        client = HubClient(next(self._numbers), self._queue_size, all_events, verification_ids)
        client.offer(_subscribed_frame(client))
        self._replay(client, client.wants)
        self._clients.add(client)
        return client

    def disconnect(self, client: HubClient) -> None:
        """Forget `client`; frames are no longer queued for it."""
        self._clients.discard(client)

    def subscribe(self, client: HubClient, verification_ids: Iterable[str]) -> None:
        """Add `verification_ids` to the client's subscription and queue their history."""
        added = set(verification_ids) - client.verification_ids
        client.verification_ids |= added
        client.offer(_subscribed_frame(client))
        if not client.all_events:
            self._replay(client, added.__contains__)
        self._drop_if_closing(client)

    def unsubscribe(self, client: HubClient, verification_ids: Iterable[str]) -> None:
        """Remove `verification_ids` from the client's subscription."""
        client.verification_ids -= set(verification_ids)
        client.offer(_subscribed_frame(client))
        self._drop_if_closing(client)

    def dispatch(self, text: str) -> None:
        """Offer one frame's JSON text to every subscribed client, and keep it in the history."""
        verification_id = self._verification_id(text)
        if verification_id is None:
            return
        self._frames_dispatched += 1
        self._history.append((verification_id, text))
        for client in list(self._clients):
            if client.wants(verification_id) and not client.offer(text):
                self._drop_if_closing(client)

    def close_all(self, code: int, reason: str) -> None:
        """Ask every client's connection to close, for example when the server stops."""
        for client in list(self._clients):
            client.close(code, reason)

    def _replay(self, client: HubClient, matches: Callable[[str], bool]) -> None:
        # At most half the queue, so the history alone cannot mark the client too slow.
        limit = self._queue_size // 2
        if limit == 0:
            return
        matching = [text for verification_id, text in self._history if matches(verification_id)]
        for text in matching[-limit:]:
            client.offer(text)

    def _drop_if_closing(self, client: HubClient) -> None:
        if not client.closing or client not in self._clients:
            return
        self._clients.discard(client)
        if client.close_code == CLOSE_TRY_AGAIN_LATER:
            self._clients_dropped += 1
            logger.warning(
                "hub_client_too_slow",
                extra={
                    "client": client.number,
                    "queue_size": self._queue_size,
                    "all_events": client.all_events,
                    "subscriptions": len(client.verification_ids),
                },
            )

    def _verification_id(self, text: str) -> str | None:
        try:
            frame = json.loads(text)
        except ValueError:
            frame = None
        if isinstance(frame, dict):
            verification_id = frame.get("verification_id")
            if isinstance(verification_id, str) and isinstance(frame.get("event"), str):
                return verification_id
        self._record_invalid()
        return None

    def _record_invalid(self) -> None:
        self._frames_invalid += 1
        self._invalid_not_logged += 1
        now = time.monotonic()
        if (
            self._last_invalid_log_at is not None
            and now - self._last_invalid_log_at < INVALID_FRAME_LOG_INTERVAL_SECONDS
        ):
            return
        logger.warning(
            "hub_frame_invalid",
            extra={
                "frames_skipped": self._invalid_not_logged,
                "frames_skipped_total": self._frames_invalid,
                "fix": "publish JSON objects with string event and verification_id fields",
            },
        )
        self._invalid_not_logged = 0
        self._last_invalid_log_at = now


def _subscribed_frame(client: HubClient) -> str:
    """Return the control frame that confirms the client's current subscription."""
    return json.dumps(
        {
            "event": "subscribed",
            "all": client.all_events,
            "verification_ids": sorted(client.verification_ids),
        },
        separators=(",", ":"),
    )
