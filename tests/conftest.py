"""Fixtures that start real infrastructure on loopback: the Tansu broker and a Redis check."""

import uuid
from collections.abc import AsyncIterator, Iterator

import pytest
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from redis.asyncio import Redis

from devtools.tansu import TansuBroker
from tests.support.tracing import span_exporter

REDIS_URL = "redis://127.0.0.1:6379/0"


@pytest.fixture(scope="session")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TansuBroker]:
    """A Tansu broker for the whole session; tests use topic names of their own."""
    log_path = tmp_path_factory.mktemp("tansu") / "tansu.log"
    with TansuBroker(log_path=log_path) as running:
        yield running


@pytest.fixture
def unique() -> str:
    """A short random suffix for topic names, groups and key prefixes of one test."""
    return uuid.uuid4().hex[:12]


@pytest.fixture
def spans() -> Iterator[InMemorySpanExporter]:
    """The process's in-memory span exporter, emptied before and after the test."""
    exporter = span_exporter()
    exporter.clear()
    yield exporter
    exporter.clear()


@pytest.fixture
async def redis_client() -> AsyncIterator[Redis]:
    """A client of the machine's Redis at 127.0.0.1:6379; the test fails if it is down."""
    client = Redis.from_url(REDIS_URL)
    try:
        await client.ping()
    except OSError as error:
        pytest.fail(f"Redis at {REDIS_URL} is not answering ({error}): start it, see README")
    yield client
    await client.aclose()
