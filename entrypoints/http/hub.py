"""The /ws WebSocket hub: live event frames of chosen verifications, or of all with a token.

A client connects to `/ws?verification_id=<id>` (the parameter may repeat) or to
`/ws?all=true` with the operator token (`DASHBOARD_TOKEN`) as `Authorization: Bearer`
or as the `token` query parameter. It may then send `{"subscribe": [ids]}` or
`{"unsubscribe": [ids]}`. The hub first sends `{"event": "subscribed", ...}` with the
current subscription after each change, then event frames as the notifiers publish
them on `NOTIFICATION_CHANNEL`, which every webhook process reads.
"""

import asyncio
import contextlib
import json
import logging
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass

from litestar import Litestar, WebSocket, websocket
from litestar.exceptions import WebSocketDisconnect

from domain.errors import InvalidVerificationId
from domain.verification import check_verification_id
from entrypoints.container import Container
from entrypoints.http.event_hub import (
    CLOSE_GOING_AWAY,
    CLOSE_POLICY_VIOLATION,
    EventHub,
    HubClient,
)
from entrypoints.http.operator_auth import operator_token_valid
from entrypoints.notifiers import channel_reader

logger = logging.getLogger(__name__)

MAX_SUBSCRIPTIONS_PER_CLIENT = 100
MAX_COMMAND_CHARACTERS = 16 * 1024
CLOSE_TIMEOUT_SECONDS = 5.0
# RFC 6455 limits a close frame's reason to 123 bytes.
MAX_CLOSE_REASON_BYTES = 123


class SubscriptionRejected(ValueError):
    """A subscription request the hub does not accept; the message is the close reason."""


@dataclass(frozen=True, slots=True)
class SubscriptionRequest:
    """Subscription a client requested when it connected."""

    all_events: bool
    verification_ids: frozenset[str]


@websocket("/ws")
async def event_hub_socket(socket: WebSocket[object, object, object]) -> None:
    """Send the client the event frames it subscribed to until one side closes."""
    hub: EventHub = socket.app.state.event_hub
    # Accepting first lets the close frame carry the reason, which a browser shows. A
    # handshake rejected with HTTP 403 gives the browser no reason at all.
    await socket.accept()
    try:
        request = subscription_request(socket, socket.app.state.dashboard_token)
    except SubscriptionRejected as rejection:
        logger.info("hub_client_rejected", extra={"reason": str(rejection)})
        await _close(socket, CLOSE_POLICY_VIOLATION, str(rejection))
        return

    client = hub.connect(all_events=request.all_events, verification_ids=request.verification_ids)
    logger.debug(
        "hub_client_connected",
        extra={
            "client": client.number,
            "all_events": request.all_events,
            "subscriptions": len(request.verification_ids),
        },
    )
    try:
        await _serve(socket, hub, client)
    finally:
        hub.disconnect(client)
        logger.debug(
            "hub_client_disconnected",
            extra={"client": client.number, "close_code": client.close_code},
        )


def subscription_request(
    socket: WebSocket[object, object, object], dashboard_token: bytes | None
) -> SubscriptionRequest:
    """Read the subscription from the query, or raise `SubscriptionRejected` saying why."""
    all_events = socket.query_params.get("all", "").lower() in ("true", "1", "yes")
    if all_events:
        if dashboard_token is None:
            raise SubscriptionRejected(
                "all=true is off: set DASHBOARD_TOKEN on the webhook to turn it on"
            )
        if not operator_token_valid(socket, dashboard_token):
            raise SubscriptionRejected(
                "missing or invalid operator token: pass token=<DASHBOARD_TOKEN> or a bearer"
            )
    ids = _checked_ids(socket.query_params.getall("verification_id", []))
    if not all_events and not ids:
        raise SubscriptionRejected(
            "nothing to subscribe to: pass verification_id=<id> or all=true with the token"
        )
    return SubscriptionRequest(all_events, ids)


async def _serve(
    socket: WebSocket[object, object, object], hub: EventHub, client: HubClient
) -> None:
    sender = asyncio.create_task(_send_frames(socket, client))
    receiver = asyncio.create_task(_receive_commands(socket, hub, client))
    closing = asyncio.create_task(client.wait_closing())
    tasks = {sender, receiver, closing}
    try:
        done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.wait(tasks)

    if closing in done and client.close_code is not None:
        await _close(socket, client.close_code, client.close_reason)
    for task in (sender, receiver):
        if task.done() and not task.cancelled() and task.exception() is not None:
            error = task.exception()
            if not isinstance(error, WebSocketDisconnect | OSError):
                logger.error("hub_client_failed", exc_info=error, extra={"client": client.number})


async def _send_frames(socket: WebSocket[object, object, object], client: HubClient) -> None:
    while True:
        text = await client.queue.get()
        await socket.send_text(text)


async def _receive_commands(
    socket: WebSocket[object, object, object], hub: EventHub, client: HubClient
) -> None:
    while True:
        text = await socket.receive_text()
        try:
            action, ids = _parse_command(text)
            if action == "subscribe":
                if len(client.verification_ids | ids) > MAX_SUBSCRIPTIONS_PER_CLIENT:
                    raise SubscriptionRejected(
                        f"too many subscriptions: at most {MAX_SUBSCRIPTIONS_PER_CLIENT} "
                        "ids per connection"
                    )
                hub.subscribe(client, ids)
            else:
                hub.unsubscribe(client, ids)
        except SubscriptionRejected as rejection:
            client.offer(
                json.dumps(
                    {"event": "subscription_error", "ok": False, "message": str(rejection)},
                    separators=(",", ":"),
                )
            )


def _parse_command(text: str) -> tuple[str, frozenset[str]]:
    if len(text) > MAX_COMMAND_CHARACTERS:
        raise SubscriptionRejected(
            f"message too long: send at most {MAX_COMMAND_CHARACTERS} characters"
        )
    try:
        command = json.loads(text)
    except ValueError:
        command = None
    if not isinstance(command, dict) or len(command) != 1:
        raise SubscriptionRejected(
            'invalid message: send {"subscribe": [ids]} or {"unsubscribe": [ids]}'
        )
    [(action, ids)] = command.items()
    if action not in ("subscribe", "unsubscribe") or not isinstance(ids, list):
        raise SubscriptionRejected(
            'invalid message: send {"subscribe": [ids]} or {"unsubscribe": [ids]}'
        )
    if not all(isinstance(item, str) for item in ids):
        raise SubscriptionRejected("invalid message: verification ids must be strings")
    return action, _checked_ids(ids)


def _checked_ids(ids: list[str]) -> frozenset[str]:
    if len(ids) > MAX_SUBSCRIPTIONS_PER_CLIENT:
        raise SubscriptionRejected(
            f"too many subscriptions: at most {MAX_SUBSCRIPTIONS_PER_CLIENT} ids per connection"
        )
    try:
        return frozenset(check_verification_id(item) for item in ids)
    except InvalidVerificationId as error:
        raise SubscriptionRejected(str(error)) from error


async def _close(socket: WebSocket[object, object, object], code: int, reason: str) -> None:
    reason_bytes = reason.encode()[:MAX_CLOSE_REASON_BYTES]
    try:
        async with asyncio.timeout(CLOSE_TIMEOUT_SECONDS):
            await socket.close(code=code, reason=reason_bytes.decode(errors="ignore"))
    except (TimeoutError, OSError, WebSocketDisconnect, RuntimeError) as error:
        # The client is gone or stopped reading; the server drops the connection anyway.
        logger.debug("hub_close_failed", extra={"close_code": code, "error": repr(error)})


def hub_lifespan(container: Container) -> Callable[[Litestar], AbstractAsyncContextManager[None]]:
    """Return the lifespan that feeds the hub from `NOTIFICATION_CHANNEL` while the app runs."""

    @asynccontextmanager
    async def lifespan(app: Litestar) -> AsyncIterator[None]:
        settings = container.settings()
        hub = EventHub(settings.HUB_CLIENT_QUEUE_SIZE, settings.HUB_HISTORY_SIZE)
        token = settings.DASHBOARD_TOKEN
        app.state.event_hub = hub
        app.state.dashboard_token = token.get_secret_value().encode() if token else None
        if settings.NOTIFIER != "redis":
            logger.info(
                "hub_reads_channel_only",
                extra={
                    "channel": settings.NOTIFICATION_CHANNEL,
                    "notifier": settings.NOTIFIER,
                    "hint": "events reach /ws and /dashboard only from processes with "
                    "NOTIFIER=redis",
                },
            )
        async with channel_reader(settings) as reader:
            app.state.channel_reader = reader
            feeder = asyncio.create_task(_feed(reader.messages(), hub), name="event-hub-feeder")
            try:
                yield
            finally:
                hub.close_all(CLOSE_GOING_AWAY, "the server is shutting down")
                feeder.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await feeder

    return lifespan


async def _feed(messages: AsyncIterator[str], hub: EventHub) -> None:
    async for text in messages:
        try:
            hub.dispatch(text)
        except Exception:
            # One bad frame must not stop the feed for every client.
            logger.exception("hub_dispatch_failed")
