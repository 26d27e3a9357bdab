"""Settings and helpers for tests that run the worker as a child process."""

import json
from typing import Any

from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from devtools.tansu import TansuBroker
from tests.settings import TEST_ACCOUNT_SID, TEST_AUTH_TOKEN, TEST_CODE_SECRET, TEST_SENDER


def worker_environment(
    broker: TansuBroker,
    emulator_url: str,
    unique: str,
    **overrides: Any,
) -> dict[str, str]:
    """Return the environment of a worker on a topic, group and key prefix of its own."""
    environment = {
        "KAFKA_SERVER": broker.bootstrap_servers,
        "KAFKA_TOPIC": f"Verification-{unique}",
        "KAFKA_GROUP_ID": f"verification-group-{unique}",
        "KAFKA_SESSION_TIMEOUT_MS": "6000",
        "KAFKA_PRODUCER_IDEMPOTENCE": "false",
        "REDIS_CONNECTION": "127.0.0.1:6379",
        "REDIS_KEY_PREFIX": f"faults-{unique}",
        "TWILIO_ACCOUNT_SID": TEST_ACCOUNT_SID,
        "TWILIO_AUTH_TOKEN": TEST_AUTH_TOKEN,
        "TWILIO_PHONE_NUMBER": TEST_SENDER,
        "TWILIO_API_BASE_URL": emulator_url,
        # Callbacks go nowhere: these tests watch sends, not deliveries.
        "WEBHOOK_PUBLIC_URL": "http://127.0.0.1:9",
        "CODE_SECRET": TEST_CODE_SECRET,
        "MAX_SENDS_PER_PHONE_PER_HOUR": "0",
        "MAX_SENDS_PER_PHONE_PER_DAY": "0",
        "LOG_LEVEL": "INFO",
        # Several workers of one test may run at once, and the default port is shared.
        "METRICS_PORT": "0",
    }
    environment.update({key: str(value) for key, value in overrides.items()})
    return environment


async def create_topic(broker: TansuBroker, topic: str, partitions: int) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=broker.bootstrap_servers)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(topic, partitions, 1)])
    finally:
        await admin.close()


async def publish_requests(
    broker: TansuBroker, topic: str, requests: list[dict[str, str]], partitions: int = 1
) -> None:
    """Publish `requests` as JSON, spread round-robin over `partitions`."""
    producer = AIOKafkaProducer(
        bootstrap_servers=broker.bootstrap_servers, enable_idempotence=False, linger_ms=5
    )
    await producer.start()
    try:
        batch = [
            await producer.send(topic, json.dumps(request).encode(), partition=index % partitions)
            for index, request in enumerate(requests)
        ]
        for sent in batch:
            await sent
    finally:
        await producer.stop()


def phone_for(number: int) -> str:
    """Return a distinct Ecuadorian mobile number in E.164 for `number` below 10 million."""
    return f"+5939{number:08d}"
