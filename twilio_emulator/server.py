"""Start and stop the emulator with uvicorn, in-process for tests or from the CLI."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import socket
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass

import uvicorn

from twilio_emulator.app import create_app
from twilio_emulator.callbacks import CallbackDispatcher
from twilio_emulator.config import EmulatorConfig
from twilio_emulator.state import EmulatorState

logger = logging.getLogger(__name__)

STARTUP_TIMEOUT_SECONDS = 10
SHUTDOWN_TIMEOUT_SECONDS = 10


class EmbeddedServer(uvicorn.Server):
    """A uvicorn server that leaves the host process's signal handlers alone.

    uvicorn 0.55 has no setting for this: `Server.serve` always replaces the SIGINT
    and SIGTERM handlers while it runs in the main thread, which would take Ctrl-C
    away from pytest or from the application embedding the emulator. After a signal
    it also re-raises it, which would end the CLI process before its own cleanup.
    """

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


@dataclass(frozen=True, slots=True)
class RunningEmulator:
    """An emulator serving on `base_url`, with its recorded `state`."""

    base_url: str
    config: EmulatorConfig
    state: EmulatorState


def build_server(
    config: EmulatorConfig, server_class: type[uvicorn.Server] = uvicorn.Server
) -> tuple[uvicorn.Server, EmulatorState]:
    """Build the uvicorn server that serves a new emulator, and return it with its state."""
    state = EmulatorState(config)
    dispatcher = CallbackDispatcher(config, state)
    app = create_app(config, state, dispatcher)
    uvicorn_config = uvicorn.Config(
        app,
        host=config.host,
        port=config.port,
        log_config=None,
        access_log=False,
        lifespan="on",
        timeout_graceful_shutdown=SHUTDOWN_TIMEOUT_SECONDS,
    )
    return server_class(uvicorn_config), state


def bind_socket(host: str, port: int) -> socket.socket:
    """Bind a listening TCP socket, where port 0 lets the operating system pick a free port."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # The protocol is named so that asyncio turns on TCP_NODELAY for accepted
    # connections. With protocol 0 it skips them, and Nagle's algorithm then delays
    # each response by about 40 ms.
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen()
    sock.setblocking(False)
    return sock


def url_of(sock: socket.socket) -> str:
    """Return the http:// base URL of a bound socket, with brackets around an IPv6 host."""
    host, port = sock.getsockname()[:2]
    if ":" in host:
        host = f"[{host}]"
    return f"http://{host}:{port}"


@contextlib.asynccontextmanager
async def running_emulator(config: EmulatorConfig) -> AsyncIterator[RunningEmulator]:
    """Serve an emulator in the current event loop for the duration of the block.

    With the default `config.port` of 0 the emulator listens on a free port, which
    `base_url` contains. On exit, pending status callbacks are cancelled and the
    server stops. Raises TimeoutError when the server does not start within 10 s.
    """
    server, state = build_server(config, EmbeddedServer)
    sock = bind_socket(config.host, config.port)
    base_url = url_of(sock)
    serve_task = asyncio.get_running_loop().create_task(
        server.serve(sockets=[sock]), name=f"twilio-emulator-{base_url}"
    )
    try:
        # uvicorn sets `started` but offers no event to await, so the flag is polled.
        async with asyncio.timeout(STARTUP_TIMEOUT_SECONDS):
            while not server.started:
                if serve_task.done():
                    # serve() ended before startup finished; result() re-raises its error.
                    serve_task.result()
                    raise RuntimeError(f"emulator on {base_url} stopped during startup")
                await asyncio.sleep(0.01)
        logger.info("emulator.started base_url=%s", base_url)
        yield RunningEmulator(base_url=base_url, config=config, state=state)
    finally:
        server.should_exit = True
        async with asyncio.timeout(SHUTDOWN_TIMEOUT_SECONDS):
            await asyncio.gather(serve_task, return_exceptions=True)
        sock.close()
        logger.info("emulator.stopped base_url=%s", base_url)


async def serve_until_stopped(config: EmulatorConfig) -> None:
    """Serve an emulator on the configured host and port until SIGINT or SIGTERM.

    Either signal starts a graceful shutdown, after which this coroutine returns.
    """
    server, _ = build_server(config, EmbeddedServer)
    sock = bind_socket(config.host, config.port)
    base_url = url_of(sock)
    loop = asyncio.get_running_loop()

    def request_exit() -> None:
        logger.info("emulator.stopping base_url=%s", base_url)
        server.should_exit = True

    for signal_number in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signal_number, request_exit)
    logger.info("emulator.started base_url=%s", base_url)
    try:
        await server.serve(sockets=[sock])
    finally:
        for signal_number in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(signal_number)
        sock.close()
        logger.info("emulator.stopped base_url=%s", base_url)
