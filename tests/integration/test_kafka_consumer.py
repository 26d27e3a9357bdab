"""KafkaRequestConsumer against the Tansu broker: order, commits and redelivery."""

import asyncio
import json
from pathlib import Path

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from adapters.kafka.consumer import ConsumedMessage, KafkaRequestConsumer
from devtools.tansu import TansuBroker


async def _publish(broker: TansuBroker, topic: str, values: list[bytes]) -> None:
    producer = AIOKafkaProducer(
        bootstrap_servers=broker.bootstrap_servers, enable_idempotence=False
    )
    await producer.start()
    try:
        for value in values:
            await producer.send_and_wait(topic, value, partition=0)
    finally:
        await producer.stop()


def _consumer(broker: TansuBroker, topic: str, group: str) -> AIOKafkaConsumer:
    return AIOKafkaConsumer(
        topic,
        bootstrap_servers=broker.bootstrap_servers,
        group_id=group,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        session_timeout_ms=6000,
        heartbeat_interval_ms=500,
    )


async def _committed(broker: TansuBroker, topic: str, group: str) -> int | None:
    # Tansu 0.6 cannot list group offsets through the admin client, so a consumer of
    # the group reads them.
    reader = AIOKafkaConsumer(bootstrap_servers=broker.bootstrap_servers, group_id=group)
    await reader.start()
    try:
        return await reader.committed(TopicPartition(topic, 0))
    finally:
        await reader.stop()


async def test_consumer_handles_in_order_and_commits(broker: TansuBroker, unique: str) -> None:
    topic, group = f"requests-{unique}", f"group-{unique}"
    values = [json.dumps({"n": n}).encode() for n in range(5)]
    await _publish(broker, topic, values)
    handled: list[ConsumedMessage] = []
    done = asyncio.Event()

    async def handler(message: ConsumedMessage) -> None:
        handled.append(message)
        if len(handled) == len(values):
            consumer.request_stop()
            done.set()

    consumer = KafkaRequestConsumer(
        lambda: _consumer(broker, topic, group), handler, poll_timeout_ms=100
    )
    await asyncio.wait_for(consumer.run(), timeout=30)

    assert done.is_set()
    assert [message.value for message in handled] == values
    assert [message.offset for message in handled] == [0, 1, 2, 3, 4]
    assert await _committed(broker, topic, group) == 5


async def test_failed_handler_leaves_message_uncommitted(broker: TansuBroker, unique: str) -> None:
    topic, group = f"requests-{unique}", f"group-{unique}"
    await _publish(broker, topic, [b"first", b"second", b"third"])
    seen: list[bytes | None] = []

    async def crashing_handler(message: ConsumedMessage) -> None:
        seen.append(message.value)
        if message.value == b"second":
            raise RuntimeError("handler crashed")

    crashing = KafkaRequestConsumer(
        lambda: _consumer(broker, topic, group), crashing_handler, poll_timeout_ms=100
    )
    with pytest.raises(RuntimeError, match="handler crashed"):
        await asyncio.wait_for(crashing.run(), timeout=30)

    assert seen == [b"first", b"second"]
    assert await _committed(broker, topic, group) == 1

    redelivered: list[bytes | None] = []

    async def handler(message: ConsumedMessage) -> None:
        redelivered.append(message.value)
        if len(redelivered) == 2:
            consumer.request_stop()

    consumer = KafkaRequestConsumer(
        lambda: _consumer(broker, topic, group), handler, poll_timeout_ms=100
    )
    await asyncio.wait_for(consumer.run(), timeout=30)

    assert redelivered == [b"second", b"third"]
    assert await _committed(broker, topic, group) == 3


async def test_stop_abandons_slow_message_uncommitted(broker: TansuBroker, unique: str) -> None:
    topic, group = f"requests-{unique}", f"group-{unique}"
    await _publish(broker, topic, [b"slow"])
    started = asyncio.Event()

    async def stuck_handler(message: ConsumedMessage) -> None:
        started.set()
        await asyncio.Event().wait()

    consumer = KafkaRequestConsumer(
        lambda: _consumer(broker, topic, group),
        stuck_handler,
        poll_timeout_ms=100,
        shutdown_timeout_seconds=0.5,
    )
    running = asyncio.create_task(consumer.run())
    await asyncio.wait_for(started.wait(), timeout=30)

    consumer.request_stop()
    await asyncio.wait_for(running, timeout=10)

    assert await _committed(broker, topic, group) is None


async def test_consumer_waits_for_broker_to_start(unique: str, tmp_path: Path) -> None:
    late_broker = TansuBroker(log_path=tmp_path / "late.log")
    topic, group = f"requests-{unique}", f"group-{unique}"
    handled: list[bytes | None] = []

    async def handler(message: ConsumedMessage) -> None:
        handled.append(message.value)
        consumer.request_stop()

    consumer = KafkaRequestConsumer(
        lambda: _consumer(late_broker, topic, group),
        handler,
        poll_timeout_ms=100,
        start_retry_max_wait_seconds=0.5,
    )
    running = asyncio.create_task(consumer.run())
    await asyncio.sleep(1)
    assert not running.done()

    await asyncio.to_thread(late_broker.start)
    try:
        await _publish(late_broker, topic, [b"after start"])
        await asyncio.wait_for(running, timeout=40)
    finally:
        late_broker.stop()

    assert handled == [b"after start"]
