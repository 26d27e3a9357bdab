"""Consumes the request topic in a consumer group and commits each message once handled."""

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition
from aiokafka.errors import CommitFailedError, KafkaError

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class ConsumedMessage:
    """One Kafka record, with the coordinates that identify it in logs."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    headers: tuple[tuple[str, bytes], ...] = ()

    @classmethod
    def from_record(cls, record: ConsumerRecord[bytes, bytes]) -> "ConsumedMessage":
        return cls(
            topic=record.topic,
            partition=record.partition,
            offset=record.offset,
            key=record.key,
            value=record.value,
            headers=tuple(record.headers or ()),
        )


MessageHandler = Callable[[ConsumedMessage], Awaitable[None]]


class KafkaRequestConsumer:
    """Runs `handler` on each message in partition order, committing after each one.

    Delivery is at least once: a message whose handler did not return (a crash, a
    lost partition) is read again by the next owner of the partition. The handler
    must take care of bad input itself; an exception from it stops the consumer
    without committing that message.
    """

    def __init__(
        self,
        consumer: AIOKafkaConsumer,
        handler: MessageHandler,
        poll_timeout_ms: int = 500,
        max_records: int = 100,
    ) -> None:
        self._consumer = consumer
        self._handler = handler
        self._poll_timeout_ms = poll_timeout_ms
        self._max_records = max_records
        self._stopping = asyncio.Event()

    def request_stop(self) -> None:
        """Finish the message in hand, commit it and return from `run`."""
        self._stopping.set()

    async def run(self) -> None:
        await self._consumer.start()
        logger.info(
            "consumer_started",
            extra={"topics": sorted(self._consumer.subscription())},
        )
        try:
            while not self._stopping.is_set():
                batches = await self._consumer.getmany(
                    timeout_ms=self._poll_timeout_ms, max_records=self._max_records
                )
                for partition, records in batches.items():
                    await self._handle_partition(partition, records)
                    if self._stopping.is_set():
                        break
        finally:
            await self._stop_consumer()
            logger.info("consumer_stopped")

    async def _stop_consumer(self) -> None:
        try:
            await self._consumer.stop()
        except asyncio.CancelledError:
            # aiokafka 0.14 lets the cancellation of its own fetch task escape from
            # stop() when the broker is already gone. Only a cancellation of this task
            # itself is passed on.
            task = asyncio.current_task()
            if task is not None and task.cancelling():
                raise
            logger.warning("consumer_stop_interrupted")

    async def _handle_partition(
        self, partition: TopicPartition, records: list[ConsumerRecord[bytes, bytes]]
    ) -> None:
        for record in records:
            if self._stopping.is_set():
                return
            if partition not in self._consumer.assignment():
                # Revoked in a rebalance: the new owner reads the rest from the last commit.
                return
            await self._handler(ConsumedMessage.from_record(record))
            await self._commit(partition, record.offset + 1)

    async def _commit(self, partition: TopicPartition, next_offset: int) -> None:
        try:
            await self._consumer.commit({partition: next_offset})
        except CommitFailedError:
            # The group rebalanced and this member no longer owns the partition; the
            # message is handled again by the next owner, which the handler tolerates.
            logger.warning(
                "commit_failed_rebalance",
                extra={"topic": partition.topic, "partition": partition.partition},
            )
        except KafkaError as error:
            logger.warning(
                "commit_failed",
                extra={
                    "topic": partition.topic,
                    "partition": partition.partition,
                    "error": repr(error),
                },
            )
