"""Unit-test wiring: the real container with every I/O adapter overridden by a fake."""

from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from dependency_injector import providers

from adapters.kafka.request_handler import RetryPolicy
from adapters.memory.clock import FakeClock, FixedCodeGenerator
from adapters.memory.dead_letters import RecordingDeadLetterSink
from adapters.memory.limits import (
    InMemoryPlainCodeStore,
    InMemoryRequestLedger,
    InMemorySendLimiter,
)
from adapters.memory.sender import RecordingMessageSender
from adapters.memory.store import InMemoryVerificationStore
from adapters.notification.recording import RecordingNotifier
from entrypoints.container import Container
from tests.settings import make_settings

CODE = "907153"


@dataclass
class Fakes:
    container: Container
    clock: FakeClock
    store: InMemoryVerificationStore
    sender: RecordingMessageSender
    notifier: RecordingNotifier
    ledger: InMemoryRequestLedger
    limiter: InMemorySendLimiter
    plain_codes: InMemoryPlainCodeStore
    dead_letters: RecordingDeadLetterSink


@pytest.fixture
def settings_overrides() -> dict[str, object]:
    """Settings a test module changes for its `fakes`, by overriding this fixture."""
    return {}


@pytest.fixture
def fakes(settings_overrides: dict[str, object]) -> Iterator[Fakes]:
    clock = FakeClock()
    store = InMemoryVerificationStore(clock)
    sender = RecordingMessageSender()
    notifier = RecordingNotifier()
    ledger = InMemoryRequestLedger(clock)
    settings = make_settings(**settings_overrides)
    limiter = InMemorySendLimiter(
        settings.MAX_SENDS_PER_PHONE_PER_HOUR,
        settings.MAX_SENDS_PER_PHONE_PER_DAY,
        settings.MAX_SENDS_PER_MINUTE,
    )
    plain_codes = InMemoryPlainCodeStore()
    container = Container(settings=providers.Object(settings))
    container.clock.override(providers.Object(clock))
    container.codes.override(providers.Object(FixedCodeGenerator(CODE, "480267")))
    container.store.override(providers.Object(store))
    container.sender.override(providers.Object(sender))
    container.notifier.override(providers.Object(notifier))
    container.ledger.override(providers.Object(ledger))
    container.limiter.override(providers.Object(limiter))
    container.plain_codes.override(providers.Object(plain_codes))
    dead_letters = RecordingDeadLetterSink()
    container.dead_letters.override(providers.Object(dead_letters))
    container.retry_policy.override(
        providers.Object(
            RetryPolicy(max_attempts=3, initial_wait_seconds=0.001, max_wait_seconds=0.002)
        )
    )
    yield Fakes(
        container, clock, store, sender, notifier, ledger, limiter, plain_codes, dead_letters
    )
    container.unwire()
