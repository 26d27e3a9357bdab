"""Unit-test wiring: the real container with every I/O adapter overridden by a fake."""

from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from dependency_injector import providers

from adapters.kafka.request_handler import RetryPolicy
from adapters.memory.clock import FakeClock, FixedCodeGenerator
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


@pytest.fixture
def fakes() -> Iterator[Fakes]:
    clock = FakeClock()
    store = InMemoryVerificationStore(clock)
    sender = RecordingMessageSender()
    notifier = RecordingNotifier()
    container = Container(settings=providers.Object(make_settings()))
    container.clock.override(providers.Object(clock))
    container.codes.override(providers.Object(FixedCodeGenerator(CODE, "480267")))
    container.store.override(providers.Object(store))
    container.sender.override(providers.Object(sender))
    container.notifier.override(providers.Object(notifier))
    container.retry_policy.override(
        providers.Object(
            RetryPolicy(max_attempts=3, initial_wait_seconds=0.001, max_wait_seconds=0.002)
        )
    )
    yield Fakes(container, clock, store, sender, notifier)
    container.unwire()
