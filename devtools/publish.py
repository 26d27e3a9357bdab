"""Publishes one verification request to the local broker (`python -m devtools.publish`)."""

import argparse
import asyncio
import json

from aiokafka import AIOKafkaProducer

LOCAL_BROKER = "127.0.0.1:9092"


async def publish_request(
    bootstrap_servers: str, topic: str, verification_id: str, phone: str
) -> None:
    """Send `{"Id", "Phone"}`, the form existing producers use, to `topic`."""
    # Tansu, the local broker, rejects the idempotent producer.
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap_servers, enable_idempotence=False)
    await producer.start()
    try:
        payload = json.dumps({"Id": verification_id, "Phone": phone}).encode()
        await producer.send_and_wait(topic, payload)
    finally:
        await producer.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--id", required=True, help="verification id, for example user-42")
    parser.add_argument("--phone", required=True, help="phone number, E.164 or national")
    parser.add_argument("--topic", default="Verification", help="topic (default: Verification)")
    parser.add_argument(
        "--bootstrap-servers", default=LOCAL_BROKER, help=f"broker (default: {LOCAL_BROKER})"
    )
    arguments = parser.parse_args()
    asyncio.run(
        publish_request(arguments.bootstrap_servers, arguments.topic, arguments.id, arguments.phone)
    )
    print(f"published request {arguments.id} to {arguments.topic}")


if __name__ == "__main__":
    main()
