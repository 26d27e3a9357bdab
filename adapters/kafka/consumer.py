"""Consumes the request topic in a consumer group and commits each message once handled."""

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition
from aiokafka.errors import CommitFailedError, KafkaConnectionError, KafkaError

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
        consumer_factory: Callable[[], AIOKafkaConsumer],
        handler: MessageHandler,
        poll_timeout_ms: int = 500,
        max_records: int = 100,
        shutdown_timeout_seconds: float = 30.0,
        start_retry_max_wait_seconds: float = 10.0,
    ) -> None:
        self._consumer_factory = consumer_factory
        self._consumer = consumer_factory()
        self._handler = handler
        self._poll_timeout_ms = poll_timeout_ms
        self._max_records = max_records
        self._shutdown_timeout_seconds = shutdown_timeout_seconds
        self._start_retry_max_wait_seconds = start_retry_max_wait_seconds
        self._stopping = asyncio.Event()

    def request_stop(self) -> None:
        """Finish the message in hand, commit it and return from `run`.

        A message still in hand after the shutdown timeout is abandoned uncommitted,
        so the next owner of its partition handles it again.
        """
        self._stopping.set()

    async def run(self) -> None:
        if not await self._start():
            return
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

    async def _start(self) -> bool:
        """Start the consumer, retrying while the broker is unreachable; False if stopped."""
        wait = 0.5
        while not self._stopping.is_set():
            try:
                await self._consumer.start()
                return True
            except KafkaConnectionError as error:
                logger.warning(
                    "consumer_start_failed",
                    extra={"error": str(error), "retry_in_seconds": wait},
                )
                await self._stop_consumer()
                # aiokafka consumers cannot be started again once stopped.
                self._consumer = self._consumer_factory()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), wait)
            wait = min(wait * 2, self._start_retry_max_wait_seconds)
        await self._stop_consumer()
        return False

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
            if not await self._handle_in_time(ConsumedMessage.from_record(record)):
                return
            await self._commit(partition, record.offset + 1)

    async def _handle_in_time(self, message: ConsumedMessage) -> bool:
        """Run the handler; once a stop is requested, give it the shutdown timeout.

        Returns False when the handler was cancelled at the timeout, so the message
        must not be committed.
        """
        handling = asyncio.ensure_future(self._handler(message))
        stopping = asyncio.ensure_future(self._stopping.wait())
        try:
            await asyncio.wait({handling, stopping}, return_when=asyncio.FIRST_COMPLETED)
            if not handling.done():
                await asyncio.wait({handling}, timeout=self._shutdown_timeout_seconds)
        finally:
            stopping.cancel()
        if handling.done():
            handling.result()
            return True
        handling.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await handling
        logger.warning(
            "message_abandoned_at_shutdown",
            extra={
                "topic": message.topic,
                "partition": message.partition,
                "offset": message.offset,
                "shutdown_timeout_seconds": self._shutdown_timeout_seconds,
            },
        )
        return False

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
