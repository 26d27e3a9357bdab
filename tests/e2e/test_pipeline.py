"""End to end: a request on Kafka becomes a WhatsApp message, callbacks, and hub frames.

Real parts: the Tansu broker, the machine's Redis, the worker and webhook as child
processes, the official twilio SDK against the project's Twilio emulator, and a
`websockets` server standing in for the hub.
"""

import asyncio
import hashlib
import hmac
import json
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlencode

import httpx
import pytest
from aiokafka import AIOKafkaProducer
from redis.asyncio import Redis
from websockets.asyncio.server import ServerConnection, serve

from devtools.ports import free_port, wait_for_port_async
from devtools.tansu import TansuBroker
from tests.settings import (
    TEST_ACCOUNT_SID,
    TEST_AUTH_TOKEN,
    TEST_CODE_SECRET,
    TEST_SENDER,
)
from tests.support.processes import ServiceProcess
from twilio_emulator.config import EmulatorConfig
from twilio_emulator.server import RunningEmulator, running_emulator
from twilio_emulator.state import RecipientScript, ScriptedCallback

PHONE = "+593991234567"
OTHER_PHONE = "+593991234568"
CODE_MESSAGE = re.compile(r"Your verification code is: (\d{6})")
WAIT_SECONDS = 30


@dataclass
class Stack:
    broker: TansuBroker
    emulator: RunningEmulator
    frames: asyncio.Queue[dict[str, object]]
    topic: str
    key_prefix: str
    webhook_url: str
    worker: ServiceProcess
    webhook: ServiceProcess
    worker_metrics_url: str


@pytest.fixture
async def stack(broker: TansuBroker, unique: str, tmp_path: Path) -> AsyncIterator[Stack]:
    frames: asyncio.Queue[dict[str, object]] = asyncio.Queue()

    async def hub(connection: ServerConnection) -> None:
        async for frame in connection:
            await frames.put(json.loads(frame))

    webhook_port = free_port()
    webhook_url = f"http://127.0.0.1:{webhook_port}"
    metrics_port = free_port()
    config = EmulatorConfig(
        account_sid=TEST_ACCOUNT_SID, auth_token=TEST_AUTH_TOKEN, whatsapp_sender=TEST_SENDER
    )
    async with serve(hub, "127.0.0.1", 0) as hub_server, running_emulator(config) as emulator:
        hub_port = hub_server.sockets[0].getsockname()[1]
        topic, key_prefix = f"Verification-{unique}", f"e2e-{unique}"
        environment = {
            "KAFKA_SERVER": broker.bootstrap_servers,
            "KAFKA_TOPIC": topic,
            "KAFKA_GROUP_ID": f"verification-group-{unique}",
            "KAFKA_SESSION_TIMEOUT_MS": "6000",
            "KAFKA_PRODUCER_IDEMPOTENCE": "false",
            "REDIS_CONNECTION": "127.0.0.1:6379",
            "REDIS_KEY_PREFIX": key_prefix,
            "TWILIO_ACCOUNT_SID": TEST_ACCOUNT_SID,
            "TWILIO_AUTH_TOKEN": TEST_AUTH_TOKEN,
            "TWILIO_PHONE_NUMBER": f"whatsapp:{TEST_SENDER}",
            "TWILIO_API_BASE_URL": emulator.base_url,
            "WEBHOOK_PUBLIC_URL": webhook_url,
            "WEBHOOK_PORT": str(webhook_port),
            "MESSAGES_USERS_URL": f"ws://127.0.0.1:{hub_port}",
            "CODE_SECRET": TEST_CODE_SECRET,
            "DEFAULT_REGION": "EC",
            "METRICS_PORT": str(metrics_port),
        }
        webhook = ServiceProcess("entrypoints.webhook", environment, tmp_path / "webhook.log")
        worker = ServiceProcess("entrypoints.worker", environment, tmp_path / "worker.log")
        webhook.start()
        worker.start()
        try:
            await wait_for_port_async(webhook_port, WAIT_SECONDS)
            yield Stack(
                broker,
                emulator,
                frames,
                topic,
                key_prefix,
                webhook_url,
                worker,
                webhook,
                f"http://127.0.0.1:{metrics_port}",
            )
        finally:
            worker.kill()
            webhook.kill()


async def _publish(stack: Stack, payload: dict[str, str]) -> None:
    producer = AIOKafkaProducer(
        bootstrap_servers=stack.broker.bootstrap_servers, enable_idempotence=False
    )
    await producer.start()
    try:
        # One partition keeps the order of publishing, which the duplicate test needs.
        await producer.send_and_wait(stack.topic, json.dumps(payload).encode(), partition=0)
    finally:
        await producer.stop()


async def _next_frame(stack: Stack, verification_id: str) -> dict[str, object]:
    async with asyncio.timeout(WAIT_SECONDS):
        while True:
            frame = await stack.frames.get()
            if frame["verification_id"] == verification_id:
                return frame


async def _stored(redis_client: Redis, stack: Stack, verification_id: str) -> dict[str, object]:
    keys = [key async for key in redis_client.scan_iter(match=f"{stack.key_prefix}:*")]
    assert keys, f"no keys under {stack.key_prefix}"
    raw = b"".join(
        [
            json.dumps(
                {key.decode(): await _dump(redis_client, key) for key in keys}, default=str
            ).encode()
        ]
    )
    return {"keys": keys, "raw": raw}


async def _dump(redis_client: Redis, key: bytes) -> object:
    kind = (await redis_client.type(key)).decode()
    if kind == "hash":
        return {k.decode(): v.decode() for k, v in (await redis_client.hgetall(key)).items()}
    if kind == "zset":
        return [member.decode() for member in await redis_client.zrange(key, 0, -1)]
    return (await redis_client.get(key) or b"").decode()


async def test_request_flows_to_whatsapp_and_back(stack: Stack, redis_client: Redis) -> None:
    verification_id = f"user-{stack.key_prefix}"

    await _publish(stack, {"Id": verification_id, "Phone": PHONE})

    await stack.emulator.state.wait_for(lambda state: len(state.messages) == 1, WAIT_SECONDS)
    [message] = stack.emulator.state.messages.values()
    assert message.to == f"whatsapp:{PHONE}"
    assert message.from_ == f"whatsapp:{TEST_SENDER}"
    match = CODE_MESSAGE.fullmatch(message.body)
    assert match is not None, message.body
    code = match.group(1)

    frames = [await _next_frame(stack, verification_id) for _ in range(4)]
    assert [frame["event"] for frame in frames] == [
        "code_sent",
        "delivery_status",
        "delivery_status",
        "delivery_status",
    ]
    assert [frame.get("delivery_status") for frame in frames[1:]] == ["sent", "delivered", "read"]
    assert all(frame["ok"] is True for frame in frames)

    stored = await _stored(redis_client, stack, verification_id)
    raw = stored["raw"]
    assert isinstance(raw, bytes)
    assert b'"read"' in raw or b"read" in raw
    digest = hmac.new(
        TEST_CODE_SECRET.encode(), f"{verification_id}\x00{code}".encode(), hashlib.sha256
    ).hexdigest()
    assert digest.encode() in raw
    assert code.encode() not in raw.replace(digest.encode(), b"")
    assert all(attempt.http_status == 204 for attempt in message.callbacks)


async def test_worker_serves_readyz_and_metrics(stack: Stack) -> None:
    verification_id = f"user-{stack.key_prefix}"

    await _publish(stack, {"Id": verification_id, "Phone": PHONE})
    await stack.emulator.state.wait_for(lambda state: len(state.messages) == 1, WAIT_SECONDS)

    async with httpx.AsyncClient(base_url=stack.worker_metrics_url, timeout=5.0) as client:
        async with asyncio.timeout(WAIT_SECONDS):
            while True:
                ready = await client.get("/readyz")
                if ready.status_code == 200:
                    break
                await asyncio.sleep(0.2)
        assert ready.json() == {"status": "ok"}
        metrics = (await client.get("/metrics")).text
    assert 'verification_sends_total{error_code="",outcome="accepted"} 1.0' in metrics
    assert 'verification_requests_consumed_total{outcome="handled"} 1.0' in metrics


async def test_forged_callback_is_rejected_and_changes_nothing(
    stack: Stack, redis_client: Redis
) -> None:
    verification_id = f"other-{stack.key_prefix}"
    stack.emulator.state.set_script(
        OTHER_PHONE, RecipientScript(callbacks=(ScriptedCallback(status="sent"),))
    )
    await _publish(stack, {"Id": verification_id, "Phone": OTHER_PHONE})
    frames = [await _next_frame(stack, verification_id) for _ in range(2)]
    assert [frame.get("delivery_status") for frame in frames] == [None, "sent"]
    [message] = stack.emulator.state.messages.values()
    before = await _stored(redis_client, stack, verification_id)

    async with httpx.AsyncClient(base_url=stack.webhook_url, timeout=5) as client:
        response = await client.post(
            f"/twilio/status?{urlencode({'verification_id': verification_id})}",
            content=urlencode(
                {"MessageSid": message.sid, "MessageStatus": "read", "AccountSid": TEST_ACCOUNT_SID}
            ),
            headers={
                "Content-Type": "application/x-www-form-urlencoded",
                "X-Twilio-Signature": "bm90IGEgcmVhbCBzaWduYXR1cmU=",
            },
        )

    assert response.status_code == 403
    after = await _stored(redis_client, stack, verification_id)
    assert after["raw"] == before["raw"]
    with pytest.raises(TimeoutError):
        async with asyncio.timeout(1):
            await stack.frames.get()


async def test_worker_and_webhook_exit_cleanly_on_sigterm(stack: Stack) -> None:
    await _publish(stack, {"Id": f"exit-{stack.key_prefix}", "Phone": PHONE})
    await stack.emulator.state.wait_for(lambda state: len(state.messages) == 1, WAIT_SECONDS)

    # Stopped from a thread, so the hub in this event loop can complete the close handshake.
    worker_exit = await asyncio.to_thread(stack.worker.stop)
    webhook_exit = await asyncio.to_thread(stack.webhook.stop)

    assert worker_exit == 0, stack.worker.log()
    assert webhook_exit == 0, stack.webhook.log()
    assert "Traceback" not in stack.worker.log()
    assert "Traceback" not in stack.webhook.log()


async def test_code_from_whatsapp_checks_over_http(stack: Stack) -> None:
    verification_id = f"check-{stack.key_prefix}"
    await _publish(stack, {"Id": verification_id, "Phone": PHONE})
    await stack.emulator.state.wait_for(lambda state: len(state.messages) == 1, WAIT_SECONDS)
    [message] = stack.emulator.state.messages.values()
    match = CODE_MESSAGE.fullmatch(message.body)
    assert match is not None
    wrong = "000000" if match.group(1) != "000000" else "111111"

    async with httpx.AsyncClient(base_url=stack.webhook_url, timeout=5) as client:
        path = f"/verifications/{verification_id}"
        incorrect = await client.post(f"{path}/check", json={"code": wrong})
        approved = await client.post(f"{path}/check", json={"code": match.group(1)})
        again = await client.post(f"{path}/check", json={"code": match.group(1)})
        view = await client.get(path)

    assert (incorrect.status_code, incorrect.json()["status"]) == (422, "incorrect")
    assert (approved.status_code, approved.json()["status"]) == (200, "approved")
    assert (again.status_code, again.json()["status"]) == (410, "expired")
    assert view.json()["status"] == "approved"
    assert view.json()["attempts_used"] == 2


async def test_request_published_twice_sends_once(stack: Stack) -> None:
    payload = {"Id": f"twice-{stack.key_prefix}", "Phone": PHONE, "request_id": stack.key_prefix}

    await _publish(stack, payload)
    await stack.emulator.state.wait_for(lambda state: len(state.messages) == 1, WAIT_SECONDS)
    await _publish(stack, payload)
    await _publish(stack, {"Id": f"marker-{stack.key_prefix}", "Phone": OTHER_PHONE})
    await stack.emulator.state.wait_for(lambda state: len(state.messages) == 2, WAIT_SECONDS)

    recipients = sorted(message.to for message in stack.emulator.state.messages.values())
    assert recipients == [f"whatsapp:{PHONE}", f"whatsapp:{OTHER_PHONE}"]
