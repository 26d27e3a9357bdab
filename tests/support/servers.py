"""Runs a uvicorn server inside the test's event loop for the duration of a block."""

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import uvicorn


@asynccontextmanager
async def serving(server: uvicorn.Server, timeout_seconds: float = 10.0) -> AsyncIterator[None]:
    """Start `server`, wait until it listens, and stop it on exit."""
    server.config.install_signal_handlers = False  # type: ignore[attr-defined]
    task = asyncio.create_task(server.serve())
    try:
        async with asyncio.timeout(timeout_seconds):
            while not server.started:
                if task.done():
                    task.result()
                    raise RuntimeError("the server stopped during startup")
                await asyncio.sleep(0.01)
        yield
    finally:
        server.should_exit = True
        async with asyncio.timeout(timeout_seconds):
            await task
