"""A single-node Redis client that sends the commands of many tasks together, as one pipeline.

redis-py spends most of a command's CPU time around it: taking a connection from the
pool, packing, writing, and handing the reply back. Measured on a 2-core machine, one
GET alone cost about 60 µs of CPU, and about 25 µs in a batch. A worker with hundreds
of messages in flight issues many short commands at once. This client collects the
commands issued during one turn of the event loop, writes them in one go on one
connection, and reads the replies in order. Each caller still awaits its own reply,
and a command's error reaches only its caller. Commands keep their order within each
task, because a task awaits one command before it issues the next.

A batch is sent once and never resent: when the connection breaks or times out midway,
which commands ran is unknown, so every caller still waiting gets the error and decides
itself, as the store's retries do. A caller cancelled before its batch is written, as
by a timeout, is left out of it. Only stateless commands are batched. Anything else,
such as SCRIPT LOAD, PING or a pub/sub subscription, goes straight to the server as
before.
"""

import asyncio
from typing import Any, TypeAlias

from redis.asyncio import Redis
from redis.asyncio.connection import Connection
from redis.exceptions import ResponseError

# The commands the adapters issue for every verification. None of them depends on
# connection state, so its place in a pipeline changes nothing but the cost.
BATCHED_COMMANDS = frozenset({"GET", "MGET", "SET", "DEL", "EVALSHA", "PUBLISH"})


# A queued command: its arguments, its options for reply parsing, and its caller's future.
_Entry: TypeAlias = tuple[tuple[Any, ...], dict[str, Any], "asyncio.Future[Any]"]


class BatchingRedis(Redis):
    """`redis.asyncio.Redis` that sends concurrent commands in pipelines."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._pending: list[_Entry] = []
        self._batches: set[asyncio.Task[None]] = set()

    async def execute_command(self, *args: Any, **options: Any) -> Any:
        if str(args[0]).upper() not in BATCHED_COMMANDS:
            return await super().execute_command(*args, **options)  # type: ignore[no-untyped-call]
        loop = asyncio.get_running_loop()
        reply: asyncio.Future[Any] = loop.create_future()
        if not self._pending:
            # Runs after the callbacks already due in this turn, which may add commands.
            loop.call_soon(self._send_pending)
        self._pending.append((args, options, reply))
        return await reply

    def _send_pending(self) -> None:
        batch, self._pending = self._pending, []
        if not batch:
            return
        task = asyncio.create_task(self._send(batch), name="redis-batch")
        # The loop keeps only weak references to tasks.
        self._batches.add(task)
        task.add_done_callback(self._batches.discard)

    async def _send(self, batch: list[_Entry]) -> None:
        try:
            connection = await self.connection_pool.get_connection()  # type: ignore[no-untyped-call]
        except Exception as error:
            # Redis is unreachable, or no connection came free in time.
            _fail(batch, error)
            return
        except BaseException:
            _cancel(batch)
            raise
        try:
            await self._send_on(connection, batch)
        finally:
            await self.connection_pool.release(connection)

    async def _send_on(self, connection: Connection, batch: list[_Entry]) -> None:
        sent: list[_Entry] = []
        packed: list[bytes] = []
        for entry in batch:
            args, _, reply = entry
            if reply.done():
                continue  # the caller was cancelled while the batch waited
            try:
                packed.extend(connection.pack_command(*args))
            except Exception as error:
                # An argument that redis-py cannot encode fails its own command only.
                reply.set_exception(error)
                continue
            sent.append(entry)
        if not sent:
            return
        try:
            await connection.send_packed_command(packed, check_health=False)
            for args, options, reply in sent:
                try:
                    result = await self.parse_response(connection, args[0], **options)
                except ResponseError as error:
                    result = error
                _settle(reply, result)
        except Exception as error:
            # The replies left on the socket belong to this batch, so the connection
            # cannot serve another caller.
            await connection.disconnect(nowait=True)
            _fail(sent, error)
        except BaseException:
            await connection.disconnect(nowait=True)
            _cancel(sent)
            raise

    async def aclose(self, close_connection_pool: bool | None = None) -> None:
        # Commands queued in this turn of the loop go out before the pool closes.
        self._send_pending()
        if self._batches:
            await asyncio.gather(*self._batches, return_exceptions=True)
        await super().aclose(close_connection_pool)


def _settle(reply: asyncio.Future[Any], result: object) -> None:
    if reply.done():
        return  # the caller was cancelled while the batch ran
    if isinstance(result, Exception):
        reply.set_exception(result)
    else:
        reply.set_result(result)


def _fail(batch: list[_Entry], error: Exception) -> None:
    for _, _, reply in batch:
        _settle(reply, error)


def _cancel(batch: list[_Entry]) -> None:
    for _, _, reply in batch:
        reply.cancel()
