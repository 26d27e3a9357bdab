"""KafkaDeadLetterSink against the Tansu broker: what a dead letter holds, and broker outages."""

from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError

from adapters.kafka.consumer import ConsumedMessage
from adapters.kafka.dead_letters import (
    MAX_ERROR_LENGTH,
    DeadLetter,
    DeadLetterReason,
    DeadLetterUnavailable,
    KafkaDeadLetterSink,
    create_dead_letter_producer,
)
from adapters.memory.clock import FakeClock
from devtools.tansu import TansuBroker
from tests.support.kafka import read_topic

FAILED_AT = datetime(2026, 3, 1, 9, 30, 15, 123456, tzinfo=UTC)


def _message(topic: str, **changes: Any) -> ConsumedMessage:
    message = ConsumedMessage(
        topic=topic,
        partition=2,
        offset=41,
        key=b"user-42",
        value=b'{"Id": "user-42", "Phone": "12"}',
        headers=(("trace-id", b"trace-1"), ("source", b"signup")),
    )
    return replace(message, **changes)


def _sink(broker: TansuBroker) -> KafkaDeadLetterSink:
    producer = create_dead_letter_producer(broker.bootstrap_servers, enable_idempotence=False)
    return KafkaDeadLetterSink(producer, clock=FakeClock(FAILED_AT))


async def _send(broker: TansuBroker, *letters: DeadLetter) -> None:
    sink = _sink(broker)
    try:
        for letter in letters:
            await sink.send(letter)
    finally:
        await sink.close()


async def test_sink_copies_record_to_dlq_topic(broker: TansuBroker, unique: str) -> None:
    topic = f"requests-{unique}"
    message = _message(topic)

    await _send(broker, DeadLetter(message, DeadLetterReason.INVALID_REQUEST, "Phone is invalid"))

    [record] = await read_topic(broker, f"{topic}.DLQ")
    assert record.key == b"user-42"
    assert record.value == b'{"Id": "user-42", "Phone": "12"}'
    assert list(record.headers) == [
        ("dlq.reason", b"invalid_request"),
        ("dlq.error", b"Phone is invalid"),
        ("dlq.original.topic", topic.encode()),
        ("dlq.original.partition", b"2"),
        ("dlq.original.offset", b"41"),
        ("dlq.failed_at", b"2026-03-01T09:30:15.123456Z"),
        ("trace-id", b"trace-1"),
        ("source", b"signup"),
    ]


async def test_sink_keeps_each_dlq_header_once(broker: TansuBroker, unique: str) -> None:
    topic = f"requests-{unique}"
    message = _message(
        topic,
        headers=(
            ("dlq.reason", b"invalid_json"),
            ("dlq.replayed_from", f"{topic}.DLQ:0:7".encode()),
        ),
    )

    await _send(broker, DeadLetter(message, DeadLetterReason.RETRIES_EXHAUSTED, "timed out"))

    [record] = await read_topic(broker, f"{topic}.DLQ")
    names = [name for name, _ in record.headers]
    headers = dict(record.headers)
    assert len(names) == len(set(names))
    assert headers["dlq.reason"] == b"retries_exhausted"
    assert headers["dlq.replayed_from"] == f"{topic}.DLQ:0:7".encode()


async def test_sink_masks_digit_runs_in_error(broker: TansuBroker, unique: str) -> None:
    topic = f"requests-{unique}"
    error = "invalid phone +593991234567 (also 0991234567, +1 (415) 555-0100); Twilio error 21211"

    await _send(broker, DeadLetter(_message(topic), DeadLetterReason.INVALID_REQUEST, error))

    [record] = await read_topic(broker, f"{topic}.DLQ")
    stored = dict(record.headers)["dlq.error"].decode()
    assert "593991234567" not in stored
    assert "0991234567" not in stored
    assert "555-0100" not in stored
    assert "+593******567" in stored
    assert "Twilio error 21211" in stored


async def test_sink_truncates_long_error(broker: TansuBroker, unique: str) -> None:
    topic = f"requests-{unique}"
    error = "Traceback line\n" * 500

    await _send(broker, DeadLetter(_message(topic), DeadLetterReason.RETRIES_EXHAUSTED, error))

    [record] = await read_topic(broker, f"{topic}.DLQ")
    stored = dict(record.headers)["dlq.error"].decode()
    assert len(stored) == MAX_ERROR_LENGTH
    assert stored.startswith("Traceback line\nTraceback line\n")
    assert stored.endswith("…")


async def test_sink_keeps_record_without_key_or_value(broker: TansuBroker, unique: str) -> None:
    topic = f"requests-{unique}"
    message = _message(topic, key=None, value=None, headers=())

    await _send(broker, DeadLetter(message, DeadLetterReason.INVALID_JSON, "empty record"))

    [record] = await read_topic(broker, f"{topic}.DLQ")
    assert record.key is None
    assert record.value == b""
    assert dict(record.headers)["dlq.reason"] == b"invalid_json"


async def test_sink_send_after_broker_stopped_is_retriable(unique: str, tmp_path: Path) -> None:
    topic = f"requests-{unique}"
    stopped_broker = TansuBroker(log_path=tmp_path / "stopped.log")
    stopped_broker.start()
    producer = AIOKafkaProducer(
        bootstrap_servers=stopped_broker.bootstrap_servers,
        acks="all",
        enable_idempotence=False,
        request_timeout_ms=2000,
    )
    sink = KafkaDeadLetterSink(producer)
    letter = DeadLetter(_message(topic), DeadLetterReason.RETRIES_EXHAUSTED, "Twilio timed out")
    try:
        await sink.send(letter)
        stopped_broker.stop()

        with pytest.raises(DeadLetterUnavailable) as raised:
            await sink.send(letter)
    finally:
        stopped_broker.stop()
        await sink.close()

    assert raised.value.retriable is True
    assert isinstance(raised.value.__cause__, KafkaError)
    assert f"{topic}:2:41" in str(raised.value)
    assert f"{topic}.DLQ" in str(raised.value)


async def test_sink_first_send_without_broker_is_retriable(unique: str, tmp_path: Path) -> None:
    stopped_broker = TansuBroker(log_path=tmp_path / "stopped.log")
    stopped_broker.start()
    stopped_broker.stop()
    producer = create_dead_letter_producer(
        stopped_broker.bootstrap_servers, enable_idempotence=False
    )
    sink = KafkaDeadLetterSink(producer)
    letter = DeadLetter(_message(f"requests-{unique}"), DeadLetterReason.INVALID_JSON, "not JSON")
    try:
        with pytest.raises(DeadLetterUnavailable) as raised:
            await sink.send(letter)
    finally:
        await sink.close()

    assert raised.value.retriable is True
    assert isinstance(raised.value.__cause__, KafkaError)
