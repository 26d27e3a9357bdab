"""Reading a whole topic back in tests, without joining a consumer group."""

from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition

from devtools.tansu import TansuBroker


async def read_topic(broker: TansuBroker, topic: str) -> list[ConsumerRecord[bytes, bytes]]:
    """Return every record of `topic` by partition and offset, or none if it does not exist."""
    consumer = AIOKafkaConsumer(bootstrap_servers=broker.bootstrap_servers)
    await consumer.start()
    try:
        if topic not in await consumer.topics():
            return []
        partitions = [
            TopicPartition(topic, number)
            for number in sorted(consumer.partitions_for_topic(topic) or ())
        ]
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        end_offsets = await consumer.end_offsets(partitions)
        records: list[ConsumerRecord[bytes, bytes]] = []
        for partition in partitions:
            while await consumer.position(partition) < end_offsets[partition]:
                batch = await consumer.getmany(partition, timeout_ms=1000)
                records.extend(batch.get(partition, []))
        return records
    finally:
        await consumer.stop()
