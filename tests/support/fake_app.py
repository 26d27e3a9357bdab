"""The HTTP app on a free loopback port, wired with in-memory fakes instead of Redis."""

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import httpx
from dependency_injector import providers

from adapters.memory.clock import FakeClock, FixedCodeGenerator
from adapters.memory.limits import (
    InMemoryPlainCodeStore,
    InMemoryRequestLedger,
    InMemorySendLimiter,
)
from adapters.memory.sender import RecordingMessageSender
from adapters.memory.store import InMemoryVerificationStore
from adapters.notification.recording import RecordingNotifier
from devtools.ports import free_port
from entrypoints.container import Container
from entrypoints.webhook import build_server
from tests.settings import make_settings
from tests.support.servers import serving


@dataclass
class FakeApp:
    client: httpx.AsyncClient
    container: Container
    clock: FakeClock
    store: InMemoryVerificationStore
    notifier: RecordingNotifier
    plain_codes: InMemoryPlainCodeStore


@asynccontextmanager
async def fake_app(code: str = "907153", **settings: Any) -> AsyncIterator[FakeApp]:
    """Serve the app with fakes; `settings` override the test settings."""
    port = free_port()
    container = Container(settings=providers.Object(make_settings(WEBHOOK_PORT=port, **settings)))
    clock = FakeClock()
    store = InMemoryVerificationStore(clock)
    notifier = RecordingNotifier()
    plain_codes = InMemoryPlainCodeStore()
    container.clock.override(providers.Object(clock))
    container.store.override(providers.Object(store))
    container.notifier.override(providers.Object(notifier))
    container.sender.override(providers.Object(RecordingMessageSender()))
    container.codes.override(providers.Object(FixedCodeGenerator(code)))
    container.ledger.override(providers.Object(InMemoryRequestLedger(clock)))
    container.limiter.override(providers.Object(InMemorySendLimiter()))
    container.plain_codes.override(providers.Object(plain_codes))

    async with (
        serving(build_server(container.settings(), container)),
        httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=5) as client,
    ):
        yield FakeApp(client, container, clock, store, notifier, plain_codes)
