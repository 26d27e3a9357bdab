"""The worker as a child process under faults: kill -9, SIGTERM, provider errors, bad input.

Each test starts its own worker on a topic, group and key prefix of its own against
the session's Tansu broker, the machine's Redis and an in-process Twilio emulator.
"""

import asyncio
import json
import subprocess
import time
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRecord, TopicPartition
from redis.asyncio import Redis

from devtools.ports import free_port, wait_for_port, wait_for_port_async
from devtools.tansu import TansuBroker
from tests.settings import TEST_ACCOUNT_SID, TEST_AUTH_TOKEN, TEST_SENDER
from tests.support.processes import ServiceProcess
from tests.support.stack import create_topic, phone_for, publish_requests, worker_environment
from twilio_emulator.config import EmulatorConfig
from twilio_emulator.server import RunningEmulator, running_emulator
from twilio_emulator.state import EmulatorState, RecipientScript, ScriptedError

WAIT_SECONDS = 90


@pytest.fixture
async def emulator() -> AsyncIterator[RunningEmulator]:
    config = EmulatorConfig(
        account_sid=TEST_ACCOUNT_SID,
        auth_token=TEST_AUTH_TOKEN,
        whatsapp_sender=TEST_SENDER,
        response_delay_ms=100,
        default_callback_statuses=(),
    )
    async with running_emulator(config) as running:
        yield running


def _requests(prefix: str, count: int, first: int = 0) -> list[dict[str, str]]:
    numbers = range(first, first + count)
    return [{"Id": f"{prefix}-{number}", "Phone": phone_for(number)} for number in numbers]


def _sends_per_phone(state: EmulatorState) -> Counter[str]:
    return Counter(message.to for message in state.messages.values())


async def _settled(state: EmulatorState, expected: int, quiet_seconds: float = 3.0) -> None:
    """Wait for `expected` messages, then for a quiet spell in which no more arrive."""
    await state.wait_for(lambda current: len(current.messages) >= expected, WAIT_SECONDS)
    seen = len(state.messages)
    while True:
        await asyncio.sleep(quiet_seconds)
        if len(state.messages) == seen:
            return
        seen = len(state.messages)


def _worker(environment: dict[str, str], log: Path) -> ServiceProcess:
    worker = ServiceProcess("entrypoints.worker", environment, log)
    worker.start()
    return worker


async def test_kill_9_then_restart_sends_each_once(
    broker: TansuBroker, emulator: RunningEmulator, unique: str, tmp_path: Path
) -> None:
    environment = worker_environment(
        broker, emulator.base_url, unique, CLAIM_LEASE_SECONDS=3, TWILIO_MAX_MPS=0
    )
    topic = environment["KAFKA_TOPIC"]
    await create_topic(broker, topic, 4)
    first = _worker(environment, tmp_path / "first.log")
    try:
        await publish_requests(broker, topic, _requests("kill", 1000), partitions=4)
        await emulator.state.wait_for(lambda state: len(state.messages) >= 300, WAIT_SECONDS)
    finally:
        first.kill()
    in_flight_at_kill = 1000 - len(emulator.state.messages)

    second = _worker(environment, tmp_path / "second.log")
    try:
        await _settled(emulator.state, 1000)
    finally:
        exit_code = await asyncio.to_thread(second.stop)

    sends = _sends_per_phone(emulator.state)
    assert in_flight_at_kill > 0
    assert len(sends) == 1000, second.log()[-3000:]
    assert set(sends.values()) == {1}
    assert exit_code == 0


async def test_sigterm_mid_stream_loses_and_repeats_nothing(
    broker: TansuBroker, emulator: RunningEmulator, unique: str, tmp_path: Path
) -> None:
    environment = worker_environment(broker, emulator.base_url, unique, MAX_IN_FLIGHT=20)
    topic = environment["KAFKA_TOPIC"]
    await create_topic(broker, topic, 2)
    first = _worker(environment, tmp_path / "first.log")
    await publish_requests(broker, topic, _requests("term", 200), partitions=2)
    await emulator.state.wait_for(lambda state: len(state.messages) >= 40, WAIT_SECONDS)

    exit_code = await asyncio.to_thread(first.stop)

    assert exit_code == 0, first.log()[-3000:]
    assert "Traceback" not in first.log()
    second = _worker(environment, tmp_path / "second.log")
    try:
        await _settled(emulator.state, 200)
    finally:
        await asyncio.to_thread(second.stop)
    sends = _sends_per_phone(emulator.state)
    assert len(sends) == 200
    assert set(sends.values()) == {1}


async def test_rate_limit_retried_then_sent_once(
    broker: TansuBroker, emulator: RunningEmulator, unique: str, tmp_path: Path
) -> None:
    environment = worker_environment(broker, emulator.base_url, unique)
    phone = phone_for(1)
    emulator.state.set_script(
        phone,
        RecipientScript(
            error=ScriptedError(code=20429, http_status=429, remaining=2, retry_after_seconds=1)
        ),
    )
    worker = _worker(environment, tmp_path / "worker.log")
    try:
        await publish_requests(broker, environment["KAFKA_TOPIC"], [{"Id": "r-1", "Phone": phone}])
        await _settled(emulator.state, 1, quiet_seconds=2)
    finally:
        await asyncio.to_thread(worker.stop)

    assert len(emulator.state.rejections) == 2
    assert _sends_per_phone(emulator.state) == {f"whatsapp:{phone}": 1}
    assert worker.log().count('"event": "request_retry"') == 2


async def test_unsubscribed_recipient_is_not_retried(
    broker: TansuBroker, emulator: RunningEmulator, unique: str, tmp_path: Path
) -> None:
    environment = worker_environment(broker, emulator.base_url, unique)
    phone = phone_for(2)
    emulator.state.set_script(
        phone, RecipientScript(error=ScriptedError(code=21610, http_status=400))
    )
    worker = _worker(environment, tmp_path / "worker.log")
    try:
        await publish_requests(broker, environment["KAFKA_TOPIC"], [{"Id": "u-1", "Phone": phone}])
        await emulator.state.wait_for(lambda state: len(state.rejections) >= 1, WAIT_SECONDS)
        await asyncio.sleep(2)
    finally:
        await asyncio.to_thread(worker.stop)

    assert len(emulator.state.rejections) == 1
    assert emulator.state.messages == {}
    assert '"error_code": "21610"' in worker.log()


async def test_unreadable_message_goes_to_dead_letters(
    broker: TansuBroker, emulator: RunningEmulator, unique: str, tmp_path: Path
) -> None:
    environment = worker_environment(broker, emulator.base_url, unique)
    topic = environment["KAFKA_TOPIC"]
    await create_topic(broker, topic, 1)
    worker = _worker(environment, tmp_path / "worker.log")
    try:
        await _publish_raw(
            broker, topic, [b"not json", json.dumps({"Id": "ok-1", "Phone": phone_for(3)}).encode()]
        )
        await emulator.state.wait_for(lambda state: len(state.messages) >= 1, WAIT_SECONDS)
        letters = await _read_all(broker, f"{topic}.DLQ", 1)
    finally:
        await asyncio.to_thread(worker.stop)

    [letter] = letters
    headers = dict(letter.headers)
    assert letter.value == b"not json"
    assert headers["dlq.reason"] == b"invalid_json"
    assert headers["dlq.original.topic"] == topic.encode()
    assert headers["dlq.original.offset"] == b"0"
    assert await _committed(broker, topic, environment["KAFKA_GROUP_ID"]) == 2


async def _publish_raw(broker: TansuBroker, topic: str, values: list[bytes]) -> None:
    producer = AIOKafkaProducer(
        bootstrap_servers=broker.bootstrap_servers, enable_idempotence=False
    )
    await producer.start()
    try:
        for value in values:
            await producer.send_and_wait(topic, value, partition=0)
    finally:
        await producer.stop()


async def _read_all(
    broker: TansuBroker, topic: str, count: int
) -> list[ConsumerRecord[bytes, bytes]]:
    consumer = AIOKafkaConsumer(
        topic, bootstrap_servers=broker.bootstrap_servers, auto_offset_reset="earliest"
    )
    await consumer.start()
    records: list[ConsumerRecord[bytes, bytes]] = []
    try:
        async with asyncio.timeout(WAIT_SECONDS):
            while len(records) < count:
                batches = await consumer.getmany(timeout_ms=500)
                for batch in batches.values():
                    records.extend(batch)
    finally:
        await consumer.stop()
    return records


async def _committed(broker: TansuBroker, topic: str, group: str) -> int | None:
    async with asyncio.timeout(WAIT_SECONDS):
        while True:
            reader = AIOKafkaConsumer(bootstrap_servers=broker.bootstrap_servers, group_id=group)
            await reader.start()
            try:
                offset = await reader.committed(TopicPartition(topic, 0))
            finally:
                await reader.stop()
            if offset is not None:
                return offset
            await asyncio.sleep(0.5)


class _OwnRedis:
    """A redis-server of this test on a free port, with AOF so a restart keeps the data."""

    def __init__(self, directory: Path) -> None:
        self.port = free_port()
        self._directory = directory
        self._process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self._process = subprocess.Popen(
            [
                "redis-server",
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--dir",
                str(self._directory),
                "--appendonly",
                "yes",
                "--appendfsync",
                "always",
                "--save",
                "",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.STDOUT,
        )
        wait_for_port(self.port, 10)

    def stop(self) -> None:
        if self._process is not None:
            self._process.terminate()
            self._process.wait(timeout=10)
            self._process = None


async def test_redis_outage_mid_stream_loses_nothing(
    broker: TansuBroker, emulator: RunningEmulator, unique: str, tmp_path: Path
) -> None:
    redis = _OwnRedis(tmp_path)
    redis.start()
    environment = worker_environment(
        broker, emulator.base_url, unique, REDIS_CONNECTION=f"127.0.0.1:{redis.port}"
    )
    topic = environment["KAFKA_TOPIC"]
    await create_topic(broker, topic, 2)
    worker = _worker(environment, tmp_path / "worker.log")
    try:
        await publish_requests(broker, topic, _requests("outage", 30), partitions=2)
        await emulator.state.wait_for(lambda state: len(state.messages) >= 30, WAIT_SECONDS)
        await asyncio.to_thread(redis.stop)
        await publish_requests(broker, topic, _requests("during", 30, first=30), partitions=2)
        # The worker keeps retrying without committing while Redis is away.
        await asyncio.sleep(3)
        sent_during_outage = len(emulator.state.messages)
        await asyncio.to_thread(redis.start)
        await _settled(emulator.state, 60)
    finally:
        exit_code = await asyncio.to_thread(worker.stop)
        redis.stop()

    sends = _sends_per_phone(emulator.state)
    assert sent_during_outage == 30
    assert len(sends) == 60
    assert set(sends.values()) == {1}
    assert exit_code == 0
    assert '"error": "StoreUnavailable(' in worker.log()


async def test_rebalance_during_slow_send_sends_once(
    broker: TansuBroker, emulator: RunningEmulator, unique: str, tmp_path: Path
) -> None:
    emulator.state.response_delay_ms = 3000
    environment = worker_environment(broker, emulator.base_url, unique)
    topic = environment["KAFKA_TOPIC"]
    await create_topic(broker, topic, 2)
    worker_a = _worker(environment, tmp_path / "a.log")
    worker_b: ServiceProcess | None = None
    try:
        await asyncio.sleep(8)  # Tansu needs a session timeout before A's first join.
        await publish_requests(broker, topic, _requests("slow", 2), partitions=2)
        await asyncio.sleep(1)
        worker_b = _worker(environment, tmp_path / "b.log")
        await _settled(emulator.state, 2, quiet_seconds=12)
    finally:
        exit_b = await asyncio.to_thread(worker_b.stop) if worker_b else None
        exit_a = await asyncio.to_thread(worker_a.stop)

    sends = _sends_per_phone(emulator.state)
    assert len(sends) == 2
    assert set(sends.values()) == {1}
    assert (exit_a, exit_b) == (0, 0)
    assert "Traceback" not in worker_a.log()


async def _record(redis_client: Redis, environment: dict[str, str], verification_id: str) -> Any:
    raw = await redis_client.get(f"{environment['REDIS_KEY_PREFIX']}:{{{verification_id}}}")
    return json.loads(raw) if raw is not None else None


async def _with_message_sid(
    redis_client: Redis, environment: dict[str, str], verification_id: str
) -> Any:
    """Wait until the stored record names its message, and return the record."""
    deadline = time.monotonic() + WAIT_SECONDS
    while True:
        record = await _record(redis_client, environment, verification_id)
        if record is not None and record["message_sid"] is not None:
            return record
        assert time.monotonic() < deadline, f"{verification_id} never got its message SID"
        await asyncio.sleep(0.5)


async def _seconds_to_answer(url: str) -> float:
    started = time.monotonic()
    async with httpx.AsyncClient(timeout=5.0) as client:
        response = await client.get(url)
    assert response.status_code == 200
    return time.monotonic() - started


async def test_hanging_twilio_call_is_recovered(
    broker: TansuBroker,
    emulator: RunningEmulator,
    unique: str,
    tmp_path: Path,
    redis_client: Redis,
) -> None:
    hung, normal = _requests("hang", 2)
    # Twilio records the message, but its response does not arrive within the timeout.
    emulator.state.set_script(hung["Phone"], RecipientScript(hold_response_ms=600_000))
    metrics_port, webhook_port = free_port(), free_port()
    environment = worker_environment(
        broker,
        emulator.base_url,
        unique,
        TWILIO_TIMEOUT_SECONDS=1,
        METRICS_PORT=metrics_port,
        WEBHOOK_PORT=webhook_port,
    )
    topic = environment["KAFKA_TOPIC"]
    await create_topic(broker, topic, 2)
    worker = _worker(environment, tmp_path / "worker.log")
    webhook = ServiceProcess("entrypoints.webhook", environment, tmp_path / "webhook.log")
    webhook.start()
    try:
        await wait_for_port_async(webhook_port, WAIT_SECONDS)
        await publish_requests(broker, topic, [hung], partitions=2)
        await emulator.state.wait_for(lambda state: len(state.messages) == 1, WAIT_SECONDS)
        # While the call hangs and then waits to be retried, both processes respond
        # and the worker goes on with other requests.
        answer_times = [
            await _seconds_to_answer(f"http://127.0.0.1:{metrics_port}/healthz"),
            await _seconds_to_answer(f"http://127.0.0.1:{webhook_port}/healthz"),
        ]
        await publish_requests(broker, topic, [normal], partitions=1)
        await emulator.state.wait_for(lambda state: len(state.messages) == 2, 10)
        hung_record_meanwhile = await _record(redis_client, environment, hung["Id"])
        # The timed-out call is retried after 15 s and finds the message at Twilio.
        record = await _with_message_sid(redis_client, environment, hung["Id"])
    finally:
        emulator.state.delete_script(hung["Phone"])
        await asyncio.to_thread(webhook.stop)
        exit_code = await asyncio.to_thread(worker.stop)

    (hung_message,) = [
        message for message in emulator.state.messages.values() if hung["Phone"] in message.to
    ]
    assert max(answer_times) < 1.0
    assert hung_record_meanwhile["message_sid"] is None
    assert record["message_sid"] == hung_message.sid
    assert set(_sends_per_phone(emulator.state).values()) == {1}
    assert "send_recovered" in worker.log()
    assert "commit_failed_rebalance" not in worker.log()
    assert exit_code == 0


async def test_kill_9_after_accept_sends_once(
    broker: TansuBroker,
    emulator: RunningEmulator,
    unique: str,
    tmp_path: Path,
    redis_client: Redis,
) -> None:
    (request,) = _requests("accepted", 1)
    # Long enough to kill the worker after Twilio has the message, before its response.
    emulator.state.set_script(request["Phone"], RecipientScript(hold_response_ms=3000))
    environment = worker_environment(broker, emulator.base_url, unique, CLAIM_LEASE_SECONDS=3)
    topic = environment["KAFKA_TOPIC"]
    await create_topic(broker, topic, 1)
    first = _worker(environment, tmp_path / "first.log")
    try:
        await publish_requests(broker, topic, [request])
        await emulator.state.wait_for(lambda state: len(state.messages) == 1, WAIT_SECONDS)
    finally:
        first.kill()
    before_restart = await _record(redis_client, environment, request["Id"])
    emulator.state.delete_script(request["Phone"])

    second = _worker(environment, tmp_path / "second.log")
    try:
        after_restart = await _with_message_sid(redis_client, environment, request["Id"])
        await _settled(emulator.state, 1)
    finally:
        exit_code = await asyncio.to_thread(second.stop)

    (message,) = emulator.state.messages.values()
    assert before_restart["message_sid"] is None
    assert after_restart["code_digest"] == before_restart["code_digest"]
    assert after_restart["message_sid"] == message.sid
    assert "send_recovered" in second.log()
    assert exit_code == 0
