"""Consumes the request topic in a consumer group, many messages at once, committing in order."""

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from aiokafka import AIOKafkaConsumer, ConsumerRebalanceListener, ConsumerRecord, TopicPartition
from aiokafka.errors import CommitFailedError, KafkaConnectionError, KafkaError

from adapters.kafka.offsets import OffsetTracker
from adapters.observability import metrics

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
    # Milliseconds since the epoch, as the producer or the broker stamped the record.
    timestamp: int = 0

    @classmethod
    def from_record(cls, record: ConsumerRecord[bytes, bytes]) -> "ConsumedMessage":
        return cls(
            topic=record.topic,
            partition=record.partition,
            offset=record.offset,
            key=record.key,
            value=record.value,
            headers=tuple(record.headers or ()),
            timestamp=record.timestamp,
        )


MessageHandler = Callable[[ConsumedMessage], Awaitable[None]]
OrderingKey = Callable[[ConsumedMessage], object]


def record_key_order(message: ConsumedMessage) -> object:
    """Order messages by their Kafka key; keyless messages of a partition run freely."""
    return message.key


@dataclass(frozen=True, slots=True)
class ConsumerOptions:
    """Tuning of `KafkaRequestConsumer`."""

    max_in_flight: int = 256
    poll_timeout_ms: int = 200
    commit_interval_seconds: float = 0.2
    shutdown_timeout_seconds: float = 30.0
    start_retry_max_wait_seconds: float = 10.0
    lag_interval_seconds: float = 5.0


class KafkaRequestConsumer:
    """Runs `handler` on up to `max_in_flight` messages at once and commits what is done.

    Messages with the same ordering key run one after another in offset order; the
    rest run concurrently. Per partition, the committed offset only moves past a
    message once it and every earlier message are finished, so delivery is at least
    once: a message whose handler did not finish (a crash, a lost partition, the
    shutdown timeout) is read again by the next owner of its partition. The handler
    must deal with bad input itself; an exception from it stops the consumer without
    committing that message.
    """

    def __init__(
        self,
        consumer_factory: Callable[[], AIOKafkaConsumer],
        topic: str,
        handler: MessageHandler,
        options: ConsumerOptions | None = None,
        ordering_key: OrderingKey = record_key_order,
        admission: Callable[[], Awaitable[None]] | None = None,
    ) -> None:
        self._consumer_factory = consumer_factory
        self._consumer = consumer_factory()
        self._topic = topic
        self._handler = handler
        self._options = options or ConsumerOptions()
        self._ordering_key = ordering_key
        # Awaited before each fetch, so the handler can hold new messages back, for
        # example while its store is unreachable.
        self._admission = admission
        self._stopping = asyncio.Event()
        self._capacity = asyncio.Semaphore(self._options.max_in_flight)
        self._trackers: dict[TopicPartition, OffsetTracker] = {}
        self._tails: dict[object, asyncio.Task[None]] = {}
        self._in_flight: set[asyncio.Task[None]] = set()
        self._failure: BaseException | None = None
        self._started = False

    @property
    def in_flight(self) -> int:
        return len(self._in_flight)

    async def check_broker(self) -> None:
        """Raise unless partitions are assigned or the broker responds to a metadata request.

        A member of a group with more members than partitions gets none and is still
        healthy, so the metadata request is the fallback. Raises `KafkaError`, or
        `RuntimeError` before the consumer has started.
        """
        if self._consumer.assignment():
            return
        if not self._started:
            raise RuntimeError("the Kafka consumer has not connected to the broker yet")
        await self._consumer.topics()

    def request_stop(self) -> None:
        """Stop fetching, let messages in hand finish within the shutdown timeout, commit.

        Messages still running after the shutdown timeout are cancelled and left
        uncommitted, so the next owner of their partition handles them again.
        """
        self._stopping.set()

    async def run(self) -> None:
        if not await self._start():
            return
        logger.info("consumer_started", extra={"topic": self._topic})
        self._started = True
        committer = asyncio.create_task(self._commit_periodically())
        lag_meter = asyncio.create_task(self._measure_lag_periodically())
        try:
            await self._fetch_until_stopped()
            await self._drain()
        finally:
            for task in (committer, lag_meter):
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            self._started = False
            await self._commit_finished()
            await self._stop_consumer()
            logger.info("consumer_stopped")
        if self._failure is not None:
            raise self._failure

    async def _start(self) -> bool:
        """Start the consumer, retrying while the broker is unreachable; False if stopped."""
        wait = 0.5
        while not self._stopping.is_set():
            self._consumer.subscribe([self._topic], listener=_RebalanceListener(self))
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
            wait = min(wait * 2, self._options.start_retry_max_wait_seconds)
        await self._stop_consumer()
        return False

    async def _fetch_until_stopped(self) -> None:
        while not self._stopping.is_set():
            if self._admission is not None:
                await self._until_stopping(self._admission())
                if self._stopping.is_set():
                    return
            free = self._options.max_in_flight - len(self._in_flight)
            if free <= 0:
                await self._until_stopping(self._capacity_freed())
                continue
            batches = await self._consumer.getmany(
                timeout_ms=self._options.poll_timeout_ms, max_records=free
            )
            for partition, records in batches.items():
                for record in records:
                    await self._dispatch(partition, record)

    async def _dispatch(
        self, partition: TopicPartition, record: ConsumerRecord[bytes, bytes]
    ) -> None:
        tracker = self._trackers.get(partition)
        if tracker is None:
            # Fetched just before the partition was revoked: its new owner reads it.
            return
        message = ConsumedMessage.from_record(record)
        await self._capacity.acquire()
        tracker.dispatched(message.offset)
        key = self._ordering_key(message)
        previous = self._tails.get(key) if key is not None else None
        task = asyncio.create_task(self._run_one(tracker, message, previous))
        self._in_flight.add(task)
        metrics.IN_FLIGHT.inc()
        if key is not None:
            self._tails[key] = task
        task.add_done_callback(lambda done: self._forget(done, key))

    async def _run_one(
        self,
        tracker: OffsetTracker,
        message: ConsumedMessage,
        previous: asyncio.Task[None] | None,
    ) -> None:
        if previous is not None:
            # Same ordering key: wait for the earlier message, whatever its outcome.
            await asyncio.wait({previous})
        try:
            await self._handler(message)
        except asyncio.CancelledError:
            raise
        except Exception as error:
            logger.exception(
                "handler_failed",
                extra={
                    "topic": message.topic,
                    "partition": message.partition,
                    "offset": message.offset,
                },
            )
            self._failure = error
            self._stopping.set()
            return
        tracker.finished(message.offset)

    def _forget(self, task: asyncio.Task[None], key: object) -> None:
        self._in_flight.discard(task)
        metrics.IN_FLIGHT.dec()
        self._capacity.release()
        if key is not None and self._tails.get(key) is task:
            del self._tails[key]

    async def _capacity_freed(self) -> None:
        async with self._capacity:
            pass

    async def _until_stopping(self, waiting: Awaitable[None]) -> None:
        """Wait for `waiting`, or return early when a stop is requested."""
        work = asyncio.ensure_future(waiting)
        stop = asyncio.ensure_future(self._stopping.wait())
        try:
            await asyncio.wait({work, stop}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for future in (work, stop):
                if not future.done():
                    future.cancel()

    async def _drain(self) -> None:
        """Give the messages in hand the shutdown timeout, then cancel the rest."""
        if not self._in_flight:
            return
        pending = set(self._in_flight)
        _, still_running = await asyncio.wait(
            pending, timeout=self._options.shutdown_timeout_seconds
        )
        for task in still_running:
            task.cancel()
        if still_running:
            await asyncio.wait(still_running)
            logger.warning(
                "messages_abandoned_at_shutdown",
                extra={
                    "count": len(still_running),
                    "shutdown_timeout_seconds": self._options.shutdown_timeout_seconds,
                },
            )

    async def _commit_periodically(self) -> None:
        while True:
            await asyncio.sleep(self._options.commit_interval_seconds)
            await self._commit_finished()

    async def _measure_lag_periodically(self) -> None:
        while True:
            await asyncio.sleep(self._options.lag_interval_seconds)
            for partition in list(self._trackers):
                await self._measure_lag(partition)

    async def _measure_lag(self, partition: TopicPartition) -> None:
        if partition not in self._consumer.assignment():
            # Revoked between the rebalance and this pass; its lag is no longer ours.
            return
        highwater = self._consumer.highwater(partition)
        if highwater is None:
            # No fetch response for this partition yet, so its end is unknown.
            return
        try:
            # position() waits while an offset reset runs; a bound keeps the loop moving.
            async with asyncio.timeout(1.0):
                position = await self._consumer.position(partition)
        except (TimeoutError, KafkaError):
            return
        metrics.CONSUMER_LAG.labels(partition.topic, str(partition.partition)).set(
            max(highwater - position, 0)
        )

    async def _commit_finished(self, partitions: set[TopicPartition] | None = None) -> None:
        offsets = {}
        for partition, tracker in self._trackers.items():
            if partitions is not None and partition not in partitions:
                continue
            offset = tracker.committable()
            if offset is not None:
                offsets[partition] = offset
        if not offsets:
            return
        try:
            await self._consumer.commit(offsets)
        except CommitFailedError:
            # The group rebalanced and this member lost some of these partitions; their
            # messages are handled again by the next owner, which the ledger tolerates.
            logger.warning("commit_failed_rebalance", extra={"partitions": _names(offsets)})
            return
        except KafkaError as error:
            logger.warning(
                "commit_failed", extra={"partitions": _names(offsets), "error": repr(error)}
            )
            return
        for partition, offset in offsets.items():
            tracker = self._trackers.get(partition)
            if tracker is not None:
                tracker.committed = offset

    async def on_revoked(self, revoked: set[TopicPartition]) -> None:
        """Commit what is finished in the revoked partitions, then stop tracking them."""
        await self._commit_finished(revoked)
        for partition in revoked:
            with contextlib.suppress(KeyError):
                metrics.CONSUMER_LAG.remove(partition.topic, str(partition.partition))
            tracker = self._trackers.pop(partition, None)
            if tracker is not None and tracker.in_flight:
                logger.info(
                    "partition_revoked_in_flight",
                    extra={"partition": str(partition), "in_flight": tracker.in_flight},
                )

    def on_assigned(self, assigned: set[TopicPartition]) -> None:
        for partition in assigned:
            self._trackers.setdefault(partition, OffsetTracker())
        logger.info("partitions_assigned", extra={"partitions": sorted(map(str, assigned))})

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


class _RebalanceListener(ConsumerRebalanceListener):  # type: ignore[misc]
    """Forwards aiokafka's rebalance callbacks, which run inside `getmany`."""

    def __init__(self, owner: KafkaRequestConsumer) -> None:
        self._owner = owner

    async def on_partitions_revoked(self, revoked: set[TopicPartition]) -> None:
        await self._owner.on_revoked(set(revoked))

    async def on_partitions_assigned(self, assigned: set[TopicPartition]) -> None:
        self._owner.on_assigned(set(assigned))


def _names(offsets: dict[TopicPartition, int]) -> list[str]:
    return sorted(
        f"{partition.topic}:{partition.partition}@{offset}" for partition, offset in offsets.items()
    )
