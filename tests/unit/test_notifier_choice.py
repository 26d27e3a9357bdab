"""Unit tests of the notifier settings, the Profile payload, the frame buffer and the event hub."""

import asyncio
import json
import logging
from datetime import UTC, datetime

import pytest
from pydantic import ValidationError

from adapters.notification.buffer import FrameBuffer, backoff_delay
from adapters.notification.log import LogNotifier
from adapters.notification.socket_io import SocketIONotifier, profile_payload
from domain.delivery import DeliveryStatus
from domain.events import CodeSent, DeliveryStatusChanged, SendFailed, SendFailureReason
from entrypoints.http.dashboard import script_json
from entrypoints.http.event_hub import CLOSE_TRY_AGAIN_LATER, EventHub
from entrypoints.notifiers import notifier_resource
from entrypoints.startup import describe_errors
from tests.settings import make_settings

OCCURRED_AT = datetime(2026, 3, 4, 5, 6, 7, tzinfo=UTC)
TOKEN = "operator-token-0123456789"


@pytest.mark.parametrize(
    ("url", "kind"),
    [
        (None, "none"),
        ("", "none"),
        ("ws://127.0.0.1:4003", "websocket"),
        ("wss://hub.example.test/events", "websocket"),
        ("http://127.0.0.1:3000", "socketio"),
        ("https://hub.example.test", "socketio"),
    ],
)
def test_notifier_defaults_from_url_scheme(url: str | None, kind: str) -> None:
    settings = make_settings(MESSAGES_USERS_URL=url)

    assert settings.NOTIFIER == kind


@pytest.mark.parametrize("kind", ["redis", "none", "REDIS", " None "])
def test_notifier_accepts_redis_and_none_with_any_url(kind: str) -> None:
    settings = make_settings(NOTIFIER=kind, MESSAGES_USERS_URL="ws://127.0.0.1:4003")

    assert settings.NOTIFIER == kind.strip().lower()


@pytest.mark.parametrize(
    ("kind", "url", "expected"),
    [
        ("socketio", "ws://127.0.0.1:4003", "set NOTIFIER to websocket"),
        ("websocket", "http://127.0.0.1:3000", "set NOTIFIER to socketio"),
        ("socketio", None, "set MESSAGES_USERS_URL to a http:// or https:// URL"),
        ("websocket", None, "set MESSAGES_USERS_URL to a ws:// or wss:// URL"),
    ],
)
def test_notifier_rejects_url_of_other_scheme(kind: str, url: str | None, expected: str) -> None:
    with pytest.raises(ValidationError) as caught:
        make_settings(NOTIFIER=kind, MESSAGES_USERS_URL=url)

    [line] = describe_errors(caught.value)
    assert line.startswith(f"configuration error: NOTIFIER has invalid value '{kind}'")
    assert expected in line


def test_notifier_rejects_unknown_kind() -> None:
    with pytest.raises(ValidationError) as caught:
        make_settings(NOTIFIER="kafka")

    [line] = describe_errors(caught.value)
    assert "NOTIFIER has invalid value 'kafka'" in line
    assert "websocket, socketio, redis or none" in line


def test_invalid_url_is_reported_once() -> None:
    with pytest.raises(ValidationError) as caught:
        make_settings(NOTIFIER="websocket", MESSAGES_USERS_URL="ftp://hub.example.test")

    lines = describe_errors(caught.value)
    assert len(lines) == 1
    assert "MESSAGES_USERS_URL" in lines[0]


def test_dashboard_token_is_optional_and_secret() -> None:
    assert make_settings().DASHBOARD_TOKEN is None
    assert make_settings(DASHBOARD_TOKEN="").DASHBOARD_TOKEN is None
    with pytest.raises(ValidationError) as caught:
        make_settings(DASHBOARD_TOKEN="short-token")

    [line] = describe_errors(caught.value)
    assert "DASHBOARD_TOKEN" in line
    assert "short-token" not in line


def test_notification_channel_default_and_pattern() -> None:
    assert make_settings().NOTIFICATION_CHANNEL == "verification-events"
    with pytest.raises(ValidationError):
        make_settings(NOTIFICATION_CHANNEL="has space")


async def test_notifier_resource_logs_without_hub() -> None:
    resource = notifier_resource(make_settings())

    notifier = await anext(resource)

    assert isinstance(notifier, LogNotifier)
    with pytest.raises(StopAsyncIteration):
        await anext(resource)


def test_profile_payload_for_sent_code() -> None:
    event = CodeSent("user-42", "+593******567", "SM0001", OCCURRED_AT)

    assert profile_payload(event) == {
        "Id": "user-42_Verification",
        "Status": True,
        "Message": "The verification code has been sent",
    }


def test_profile_payload_for_failure_and_delivery() -> None:
    failed = SendFailed(
        "user-43", SendFailureReason.REJECTED_BY_PROVIDER, "outside the window", OCCURRED_AT
    )
    delivered = DeliveryStatusChanged("user-44", "SM0002", DeliveryStatus.DELIVERED, OCCURRED_AT)

    failed_payload = profile_payload(failed)
    delivered_payload = profile_payload(delivered)

    assert failed_payload["Id"] == "user-43_Verification"
    assert failed_payload["Status"] is False
    assert failed_payload["Message"] == "The provider rejected the message: outside the window"
    assert delivered_payload == {
        "Id": "user-44_Verification",
        "Status": True,
        "Message": "The message was delivered",
    }


@pytest.mark.parametrize(
    ("url", "namespace"),
    [
        ("http://127.0.0.1:3000", "/"),
        ("http://127.0.0.1:3000/", "/"),
        ("https://hub.example.test/events", "/events"),
    ],
)
def test_socketio_url_path_names_namespace(url: str, namespace: str) -> None:
    assert SocketIONotifier(url).namespace == namespace


@pytest.mark.parametrize("url", ["ws://127.0.0.1:3000", "http://", "127.0.0.1:3000"])
def test_socketio_notifier_rejects_invalid_url(url: str) -> None:
    with pytest.raises(ValueError, match="use http:// or https://"):
        SocketIONotifier(url)


def test_frame_buffer_drops_oldest_and_logs_once(caplog: pytest.LogCaptureFixture) -> None:
    buffer: FrameBuffer[str] = FrameBuffer(
        2, notifier="test", target="here", drop_log_interval_seconds=60
    )

    with caplog.at_level(logging.WARNING):
        for frame in ("a", "b", "c", "d", "e"):
            buffer.append(frame)

    assert buffer.first() == "d"
    assert len(buffer) == 2
    assert buffer.dropped == 3
    messages = [record.getMessage() for record in caplog.records]
    assert messages.count("notifier_frames_dropped") == 1


def test_backoff_delay_grows_to_ceiling() -> None:
    delays = [backoff_delay(failures, 0.1, 5.0) for failures in range(1, 12)]

    assert 0.05 <= delays[0] <= 0.1
    assert all(2.5 <= delay <= 5.0 for delay in delays[-3:])


def frame(verification_id: str, event: str = "code_sent") -> str:
    return json.dumps({"event": event, "verification_id": verification_id, "ok": True})


def queued(client_queue: asyncio.Queue[str]) -> list[dict[str, object]]:
    """Take every frame waiting in `client_queue`, parsed."""
    items = []
    while not client_queue.empty():
        items.append(json.loads(client_queue.get_nowait()))
    return items


async def test_hub_sends_only_subscribed_frames() -> None:
    hub = EventHub(queue_size=10, history_size=0)
    one = hub.connect(all_events=False, verification_ids={"a"})
    everything = hub.connect(all_events=True, verification_ids=())

    hub.dispatch(frame("a"))
    hub.dispatch(frame("b"))

    assert [item.get("verification_id") for item in queued(one.queue)] == [None, "a"]
    assert [item.get("verification_id") for item in queued(everything.queue)] == [None, "a", "b"]


async def test_hub_confirms_subscription_changes() -> None:
    hub = EventHub(queue_size=10, history_size=0)
    client = hub.connect(all_events=False, verification_ids={"a"})

    hub.subscribe(client, {"b"})
    hub.unsubscribe(client, {"a"})
    hub.dispatch(frame("a"))
    hub.dispatch(frame("b"))

    items = queued(client.queue)
    assert [item["verification_ids"] for item in items[:3]] == [["a"], ["a", "b"], ["b"]]
    assert [item["verification_id"] for item in items[3:]] == ["b"]


async def test_hub_replays_history_to_new_subscription() -> None:
    hub = EventHub(queue_size=10, history_size=3)
    for verification_id in ("a", "b", "a", "c", "a"):
        hub.dispatch(frame(verification_id))

    client = hub.connect(all_events=False, verification_ids={"a"})

    # The history keeps the last three frames (a, c, a), and two of them match.
    assert [item.get("verification_id") for item in queued(client.queue)] == [None, "a", "a"]


async def test_hub_closes_client_with_full_queue() -> None:
    hub = EventHub(queue_size=3, history_size=0)
    slow = hub.connect(all_events=True, verification_ids=())
    fast = hub.connect(all_events=True, verification_ids=())

    for number in range(4):
        hub.dispatch(frame(f"id-{number}"))
        queued(fast.queue)

    assert slow.closing
    assert slow.close_code == CLOSE_TRY_AGAIN_LATER
    assert "too slow" in slow.close_reason
    assert not fast.closing
    assert hub.client_count == 1
    assert hub.clients_dropped == 1


@pytest.mark.parametrize(
    "text", ["not json", "[1, 2]", '{"event": "code_sent"}', '{"verification_id": 5, "event": "x"}']
)
async def test_hub_skips_messages_that_are_not_frames(text: str) -> None:
    hub = EventHub(queue_size=10, history_size=10)
    client = hub.connect(all_events=True, verification_ids=())

    hub.dispatch(text)

    assert hub.frames_invalid == 1
    assert len(queued(client.queue)) == 1


def test_script_json_cannot_end_script_element() -> None:
    text = script_json({"1": "</script><b>&"})

    assert "<" not in text
    assert ">" not in text
    assert "&" not in text
    assert json.loads(text) == {"1": "</script><b>&"}
