"""End to end: the live dashboard in headless Chromium follows verifications as they move.

Real parts: the Tansu broker, the machine's Redis and its pub/sub channel, the worker
and the webhook as child processes with NOTIFIER=redis, the Twilio emulator, and
Debian's Chromium driven by Playwright. The page is checked through its DOM text,
never after a fixed sleep, and a screenshot is saved under test-artifacts/.
"""

import asyncio
import json
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from aiokafka import AIOKafkaProducer
from playwright.async_api import Browser, Page, async_playwright, expect

from devtools.ports import free_port, wait_for_port_async
from devtools.tansu import TansuBroker
from tests.settings import TEST_ACCOUNT_SID, TEST_AUTH_TOKEN, TEST_CODE_SECRET, TEST_SENDER
from tests.support.processes import REPOSITORY, ServiceProcess
from twilio_emulator.callbacks import SIGNATURE_HEADER, build_callback_params, sign_callback
from twilio_emulator.config import EmulatorConfig
from twilio_emulator.server import RunningEmulator, running_emulator
from twilio_emulator.state import MessageRecord, RecipientScript, ScriptedCallback

PHONE = "+593991234567"
FAILING_PHONE = "+593991234568"
TOKEN = "dashboard-token-0123456789abcdef"
CODE_MESSAGE = re.compile(r"Your verification code is: (\d{6})")
WAIT_SECONDS = 30
PAGE_TIMEOUT_MS = 30_000
CHROMIUM = Path("/usr/bin/chromium")
# Flags that keep Chromium headless and off the network apart from the pages it opens.
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
ARTIFACTS = REPOSITORY / "test-artifacts"


@dataclass
class Stack:
    broker: TansuBroker
    emulator: RunningEmulator
    topic: str
    webhook_url: str


@pytest.fixture
async def stack(broker: TansuBroker, unique: str, tmp_path: Path) -> AsyncIterator[Stack]:
    webhook_port = free_port()
    webhook_url = f"http://127.0.0.1:{webhook_port}"
    config = EmulatorConfig(
        account_sid=TEST_ACCOUNT_SID, auth_token=TEST_AUTH_TOKEN, whatsapp_sender=TEST_SENDER
    )
    async with running_emulator(config) as emulator:
        topic = f"Verification-{unique}"
        environment = {
            "KAFKA_SERVER": broker.bootstrap_servers,
            "KAFKA_TOPIC": topic,
            "KAFKA_GROUP_ID": f"verification-group-{unique}",
            "KAFKA_SESSION_TIMEOUT_MS": "6000",
            "KAFKA_PRODUCER_IDEMPOTENCE": "false",
            "REDIS_CONNECTION": "127.0.0.1:6379",
            "REDIS_KEY_PREFIX": f"dashboard-{unique}",
            "TWILIO_ACCOUNT_SID": TEST_ACCOUNT_SID,
            "TWILIO_AUTH_TOKEN": TEST_AUTH_TOKEN,
            "TWILIO_PHONE_NUMBER": f"whatsapp:{TEST_SENDER}",
            "TWILIO_API_BASE_URL": emulator.base_url,
            "WEBHOOK_PUBLIC_URL": webhook_url,
            "WEBHOOK_PORT": str(webhook_port),
            "NOTIFIER": "redis",
            "NOTIFICATION_CHANNEL": f"dashboard-events-{unique}",
            "DASHBOARD_TOKEN": TOKEN,
            "CODE_SECRET": TEST_CODE_SECRET,
            "DEFAULT_REGION": "EC",
            "METRICS_PORT": "0",
        }
        webhook = ServiceProcess("entrypoints.webhook", environment, tmp_path / "webhook.log")
        worker = ServiceProcess("entrypoints.worker", environment, tmp_path / "worker.log")
        webhook.start()
        worker.start()
        try:
            await wait_for_port_async(webhook_port, WAIT_SECONDS)
            yield Stack(broker, emulator, topic, webhook_url)
        finally:
            worker.kill()
            webhook.kill()


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    if not await asyncio.to_thread(CHROMIUM.exists):
        pytest.fail(f"{CHROMIUM} is missing: run scripts/ensure-chromium as root")
    async with async_playwright() as playwright:
        launched = await playwright.chromium.launch(
            executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, timeout=PAGE_TIMEOUT_MS
        )
        try:
            yield launched
        finally:
            await launched.close()


async def publish(stack: Stack, payload: dict[str, str]) -> None:
    producer = AIOKafkaProducer(
        bootstrap_servers=stack.broker.bootstrap_servers, enable_idempotence=False
    )
    await producer.start()
    try:
        await producer.send_and_wait(stack.topic, json.dumps(payload).encode(), partition=0)
    finally:
        await producer.stop()


async def send_emulator_callback(
    emulator: RunningEmulator, record: MessageRecord, status: str
) -> None:
    """Send the next status callback of `record` the way the emulator signs and posts it.

    The test sends delivered and read itself, after the page has shown sent, so that
    each step can be checked in the page without depending on callback timing.
    """
    assert record.status_callback is not None
    callback = ScriptedCallback(status=status)
    emulator.state.apply_status(record, callback)
    params = build_callback_params(record, callback, emulator.state.channel_install_sid)
    signature = sign_callback(emulator.config.auth_token, record.status_callback, params)
    async with httpx.AsyncClient(timeout=5, trust_env=False) as client:
        response = await client.post(
            record.status_callback, data=params, headers={SIGNATURE_HEADER: signature}
        )
    assert response.status_code == 204, response.text


async def open_dashboard(browser: Browser, stack: Stack) -> Page:
    page = await browser.new_page(viewport={"width": 1280, "height": 900})
    page.set_default_timeout(PAGE_TIMEOUT_MS)
    response = await page.goto(f"{stack.webhook_url}/dashboard?token={TOKEN}")
    assert response is not None and response.status == 200
    await expect(page.locator("#connection")).to_have_text("live", timeout=PAGE_TIMEOUT_MS)
    return page


async def test_dashboard_follows_verification_from_sent_to_read(
    stack: Stack, browser: Browser, unique: str
) -> None:
    verification_id = f"dash-{unique}"
    failing_id = f"dash-fail-{unique}"
    stack.emulator.state.set_script(
        PHONE, RecipientScript(callbacks=(ScriptedCallback(status="sent"),))
    )
    stack.emulator.state.set_script(
        FAILING_PHONE,
        RecipientScript(callbacks=(ScriptedCallback(status="failed", error_code=63016),)),
    )
    page = await open_dashboard(browser, stack)
    row = page.locator(f'#verifications tr[data-verification-id="{verification_id}"]')
    failing_row = page.locator(f'#verifications tr[data-verification-id="{failing_id}"]')

    await publish(stack, {"Id": verification_id, "Phone": PHONE})
    await expect(row).to_have_attribute("data-status", "sent", timeout=PAGE_TIMEOUT_MS)
    await expect(row.locator(".phone")).to_have_text("+593******567")
    await expect(row.locator('li[data-stage="read"]')).to_have_attribute("data-reached", "false")
    await asyncio.to_thread(ARTIFACTS.mkdir, exist_ok=True)
    await page.screenshot(path=str(ARTIFACTS / "dashboard-sent.png"), full_page=True)

    [record] = stack.emulator.state.messages.values()
    await send_emulator_callback(stack.emulator, record, "delivered")
    await expect(row).to_have_attribute("data-status", "delivered", timeout=PAGE_TIMEOUT_MS)
    await send_emulator_callback(stack.emulator, record, "read")
    await expect(row).to_have_attribute("data-status", "read", timeout=PAGE_TIMEOUT_MS)

    await publish(stack, {"Id": failing_id, "Phone": FAILING_PHONE})
    await expect(failing_row).to_have_attribute("data-status", "failed", timeout=PAGE_TIMEOUT_MS)
    await page.screenshot(path=str(ARTIFACTS / "dashboard.png"), full_page=True)

    stages = row.locator(".timeline li")
    await expect(stages).to_have_text(["requested", "sent", "delivered", "read"])
    for stage in ("requested", "sent", "delivered", "read"):
        await expect(row.locator(f'li[data-stage="{stage}"]')).to_have_attribute(
            "data-reached", "true"
        )
    await expect(failing_row.locator(".outcome")).to_contain_text("failed 63016")
    await expect(failing_row.locator(".outcome")).to_contain_text(
        "outside the WhatsApp 24-hour window"
    )
    await expect(page.locator('#status-counters li[data-status="read"] .count')).to_have_text("1")
    await expect(page.locator('#status-counters li[data-status="failed"] .count')).to_have_text("1")
    await expect(page.locator("#minute-counters tbody tr").first).to_be_visible()
    feed_events = page.locator(f'#feed li:has(.id:text-is("{verification_id}")) .event')
    await expect(feed_events).to_have_text(
        [
            "delivery_status read",
            "delivery_status delivered",
            "delivery_status sent",
            "code_sent",
        ]
    )

    html = await page.content()
    code_match = CODE_MESSAGE.fullmatch(record.body)
    assert code_match is not None, record.body
    assert code_match.group(1) not in html
    for number in (PHONE, FAILING_PHONE, PHONE[1:], "0991234567"):
        assert number not in html
    assert TOKEN not in html
    await page.close()


async def test_dashboard_page_refuses_wrong_token(stack: Stack, browser: Browser) -> None:
    page = await browser.new_page()
    page.set_default_timeout(PAGE_TIMEOUT_MS)

    response = await page.goto(f"{stack.webhook_url}/dashboard?token=wrong-token-0123456789")

    assert response is not None and response.status == 401
    await expect(page.locator("h1")).to_have_text("Operator token required")
    await page.close()
