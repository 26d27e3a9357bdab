"""KafkaRequestConsumer against the Tansu broker: order, commits and redelivery."""

import asyncio
import json
from pathlib import Path

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from adapters.kafka.consumer import ConsumedMessage, ConsumerOptions, KafkaRequestConsumer
from devtools.tansu import TansuBroker

FAST = ConsumerOptions(poll_timeout_ms=100, commit_interval_seconds=0.05)


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


def _consumer(broker: TansuBroker, group: str) -> AIOKafkaConsumer:
    return AIOKafkaConsumer(
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


async def _run_until(consumer: KafkaRequestConsumer, done: asyncio.Event) -> None:
    running = asyncio.create_task(consumer.run())
    await asyncio.wait_for(done.wait(), timeout=30)
    consumer.request_stop()
    await asyncio.wait_for(running, timeout=30)


async def test_consumer_handles_all_and_commits(broker: TansuBroker, unique: str) -> None:
    topic, group = f"requests-{unique}", f"group-{unique}"
    values = [json.dumps({"n": n}).encode() for n in range(5)]
    await _publish(broker, topic, values)
    handled: list[ConsumedMessage] = []
    done = asyncio.Event()

    async def handler(message: ConsumedMessage) -> None:
        handled.append(message)
        if len(handled) == len(values):
            done.set()

    await _run_until(
        KafkaRequestConsumer(lambda: _consumer(broker, group), topic, handler, options=FAST), done
    )

    assert sorted(message.value for message in handled) == sorted(values)
    assert sorted(message.offset for message in handled) == [0, 1, 2, 3, 4]
    assert await _committed(broker, topic, group) == 5


async def test_slow_message_holds_back_commit(broker: TansuBroker, unique: str) -> None:
    topic, group = f"requests-{unique}", f"group-{unique}"
    await _publish(broker, topic, [b"0", b"1", b"slow", b"3", b"4"])
    release = asyncio.Event()
    fast_done = asyncio.Event()
    finished: list[bytes | None] = []

    async def handler(message: ConsumedMessage) -> None:
        if message.value == b"slow":
            await release.wait()
        finished.append(message.value)
        if len(finished) == 4:
            fast_done.set()

    consumer = KafkaRequestConsumer(lambda: _consumer(broker, group), topic, handler, options=FAST)
    running = asyncio.create_task(consumer.run())
    await asyncio.wait_for(fast_done.wait(), timeout=30)
    # Several commit intervals pass while the slow message is still in hand.
    await asyncio.sleep(0.5)

    assert b"slow" not in finished
    assert await _committed(broker, topic, group) == 2

    release.set()
    consumer.request_stop()
    await asyncio.wait_for(running, timeout=30)
    assert await _committed(broker, topic, group) == 5


async def test_same_key_runs_in_order(broker: TansuBroker, unique: str) -> None:
    topic, group = f"requests-{unique}", f"group-{unique}"
    producer = AIOKafkaProducer(
        bootstrap_servers=broker.bootstrap_servers, enable_idempotence=False
    )
    await producer.start()
    try:
        for number in range(6):
            key = b"a" if number % 2 == 0 else b"b"
            await producer.send_and_wait(topic, str(number).encode(), key=key, partition=0)
    finally:
        await producer.stop()
    running_keys: set[bytes | None] = set()
    overlaps: list[bytes | None] = []
    order: list[bytes | None] = []
    done = asyncio.Event()

    async def handler(message: ConsumedMessage) -> None:
        if message.key in running_keys:
            overlaps.append(message.key)
        running_keys.add(message.key)
        await asyncio.sleep(0.05)
        running_keys.discard(message.key)
        order.append(message.value)
        if len(order) == 6:
            done.set()

    await _run_until(
        KafkaRequestConsumer(lambda: _consumer(broker, group), topic, handler, options=FAST), done
    )

    assert overlaps == []
    assert [value for value in order if int(value or b"0") % 2 == 0] == [b"0", b"2", b"4"]
    assert [value for value in order if int(value or b"0") % 2 == 1] == [b"1", b"3", b"5"]


async def test_in_flight_never_exceeds_maximum(broker: TansuBroker, unique: str) -> None:
    topic, group = f"requests-{unique}", f"group-{unique}"
    await _publish(broker, topic, [str(number).encode() for number in range(10)])
    active = 0
    peak = 0
    count = 0
    done = asyncio.Event()

    async def handler(message: ConsumedMessage) -> None:
        nonlocal active, peak, count
        active += 1
        peak = max(peak, active)
        await asyncio.sleep(0.05)
        active -= 1
        count += 1
        if count == 10:
            done.set()

    options = ConsumerOptions(max_in_flight=3, poll_timeout_ms=100, commit_interval_seconds=0.05)
    await _run_until(
        KafkaRequestConsumer(lambda: _consumer(broker, group), topic, handler, options=options),
        done,
    )

    assert peak == 3
    assert await _committed(broker, topic, group) == 10


async def test_failed_handler_leaves_message_uncommitted(broker: TansuBroker, unique: str) -> None:
    topic, group = f"requests-{unique}", f"group-{unique}"
    await _publish(broker, topic, [b"first", b"second", b"third"])
    seen: list[bytes | None] = []

    async def crashing_handler(message: ConsumedMessage) -> None:
        seen.append(message.value)
        if message.value == b"second":
            raise RuntimeError("handler crashed")

    crashing = KafkaRequestConsumer(
        lambda: _consumer(broker, group), topic, crashing_handler, options=FAST
    )
    with pytest.raises(RuntimeError, match="handler crashed"):
        await asyncio.wait_for(crashing.run(), timeout=30)

    assert seen[:2] == [b"first", b"second"]
    assert await _committed(broker, topic, group) == 1

    redelivered: list[bytes | None] = []
    done = asyncio.Event()

    async def handler(message: ConsumedMessage) -> None:
        redelivered.append(message.value)
        if len(redelivered) == 2:
            done.set()

    await _run_until(
        KafkaRequestConsumer(lambda: _consumer(broker, group), topic, handler, options=FAST), done
    )

    assert sorted(redelivered) == [b"second", b"third"]
    assert await _committed(broker, topic, group) == 3


async def test_stop_abandons_slow_message_uncommitted(broker: TansuBroker, unique: str) -> None:
    topic, group = f"requests-{unique}", f"group-{unique}"
    await _publish(broker, topic, [b"slow"])
    started = asyncio.Event()

    async def stuck_handler(message: ConsumedMessage) -> None:
        started.set()
        await asyncio.Event().wait()

    consumer = KafkaRequestConsumer(
        lambda: _consumer(broker, group),
        topic,
        stuck_handler,
        options=ConsumerOptions(poll_timeout_ms=100, shutdown_timeout_seconds=0.5),
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
        lambda: _consumer(late_broker, group),
        topic,
        handler,
        options=ConsumerOptions(poll_timeout_ms=100, start_retry_max_wait_seconds=0.5),
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
