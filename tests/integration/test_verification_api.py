"""The /verifications API over real HTTP: each status code, the body, and the bearer token."""

from collections.abc import AsyncIterator

import pytest

from application.request_verification import VerificationRequest
from domain.events import CheckApproved, CheckFailed
from tests.support.fake_app import FakeApp, fake_app

CODE = "907153"
TOKEN = "api-token-for-tests-0123456789"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


@pytest.fixture
async def app() -> AsyncIterator[FakeApp]:
    async with fake_app(code=CODE, API_TOKEN=TOKEN) as running:
        await running.container.request_verification().execute(
            VerificationRequest("user-1", "+593991234567"), "owner-1"
        )
        running.notifier.clear()
        yield running


async def _check(app: FakeApp, code: str, verification_id: str = "user-1") -> tuple[int, dict]:
    response = await app.client.post(
        f"/verifications/{verification_id}/check", json={"code": code}, headers=AUTH
    )
    return response.status_code, response.json()


async def test_right_code_answers_200_approved(app: FakeApp) -> None:
    status, body = await _check(app, CODE)

    assert status == 200
    assert body == {"status": "approved", "attempts_remaining": 4}
    assert isinstance(app.notifier.events[-1], CheckApproved)


async def test_second_approval_answers_410(app: FakeApp) -> None:
    await _check(app, CODE)

    status, body = await _check(app, CODE)

    assert status == 410
    assert body["status"] == "expired"


async def test_wrong_code_answers_422_with_remaining(app: FakeApp) -> None:
    status, body = await _check(app, "000000")

    assert status == 422
    assert body == {"status": "incorrect", "attempts_remaining": 4}
    assert isinstance(app.notifier.events[-1], CheckFailed)


async def test_sixth_check_answers_429(app: FakeApp) -> None:
    for _ in range(5):
        await _check(app, "000000")

    response = await app.client.post(
        "/verifications/user-1/check", json={"code": CODE}, headers=AUTH
    )

    assert response.status_code == 429
    assert response.json()["status"] == "too_many_attempts"
    assert response.json()["attempts_remaining"] == 0
    assert int(response.headers["Retry-After"]) == response.json()["retry_after_seconds"]


async def test_unknown_id_answers_404(app: FakeApp) -> None:
    status, body = await _check(app, CODE, "nobody")

    assert status == 404
    assert body == {"status": "not_found", "attempts_remaining": 0}


async def test_expired_code_answers_410(app: FakeApp) -> None:
    app.clock.advance(300)

    status, body = await _check(app, CODE)

    assert status == 410
    assert body["status"] == "expired"


@pytest.mark.parametrize(
    ("body", "error"),
    [
        ({}, "invalid request: code: Field required"),
        ({"code": ""}, "invalid request: code: String should have at least 1 character"),
        ({"code": "1" * 33}, "invalid request: code: String should have at most 32 characters"),
        ({"code": 123456}, "invalid request: code: Input should be a valid string"),
    ],
)
async def test_malformed_body_answers_400(app: FakeApp, body: dict, error: str) -> None:
    response = await app.client.post("/verifications/user-1/check", json=body, headers=AUTH)

    assert response.status_code == 400
    assert response.json() == {"error": error}


async def test_missing_body_answers_400(app: FakeApp) -> None:
    response = await app.client.post("/verifications/user-1/check", headers=AUTH)

    assert response.status_code == 400
    assert response.json() == {"error": "invalid request: the JSON body is missing"}


async def test_unsafe_id_answers_400(app: FakeApp) -> None:
    response = await app.client.get("/verifications/{bad}", headers=AUTH)

    assert response.status_code == 400
    assert "invalid verification id" in response.json()["error"]


@pytest.mark.parametrize(
    "headers",
    [{}, {"Authorization": "Bearer wrong"}, {"Authorization": TOKEN}, {"Authorization": "Basic x"}],
)
async def test_missing_or_wrong_token_answers_401(app: FakeApp, headers: dict) -> None:
    responses = [
        await app.client.post("/verifications/user-1/check", json={"code": CODE}, headers=headers),
        await app.client.get("/verifications/user-1", headers=headers),
        await app.client.delete("/verifications/user-1", headers=headers),
    ]

    assert [response.status_code for response in responses] == [401, 401, 401]
    assert all(response.headers["WWW-Authenticate"].startswith("Bearer") for response in responses)
    view = await app.container.manage_verification().describe("user-1")
    assert view is not None
    assert view.attempts_used == 0
    assert str(view.status) == "pending"


async def test_get_shows_status_without_code(app: FakeApp) -> None:
    await _check(app, "000000")

    response = await app.client.get("/verifications/user-1", headers=AUTH)

    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "pending"
    assert body["phone"] == "+593******567"
    assert body["attempts_used"] == 1
    assert body["attempts_remaining"] == 4
    assert body["delivery_status"] == "queued"
    assert [entry["status"] for entry in body["delivery_history"]] == ["queued"]
    assert CODE not in response.text
    assert "+593991234567" not in response.text


async def test_get_unknown_answers_404(app: FakeApp) -> None:
    response = await app.client.get("/verifications/nobody", headers=AUTH)

    assert response.status_code == 404


async def test_delete_cancels_then_check_answers_410(app: FakeApp) -> None:
    response = await app.client.delete("/verifications/user-1", headers=AUTH)
    again = await app.client.delete("/verifications/user-1", headers=AUTH)

    assert response.status_code == 200
    assert response.json() == {"status": "canceled"}
    assert again.status_code == 200
    status, _ = await _check(app, CODE)
    assert status == 410
    view = await app.client.get("/verifications/user-1", headers=AUTH)
    assert view.json()["status"] == "canceled"


async def test_delete_approved_answers_409(app: FakeApp) -> None:
    await _check(app, CODE)

    response = await app.client.delete("/verifications/user-1", headers=AUTH)

    assert response.status_code == 409
    assert response.json()["status"] == "approved"


async def test_delete_unknown_answers_404(app: FakeApp) -> None:
    response = await app.client.delete("/verifications/nobody", headers=AUTH)

    assert response.status_code == 404


async def test_without_api_token_requests_pass() -> None:
    async with fake_app(code=CODE) as running:
        await running.container.request_verification().execute(
            VerificationRequest("user-1", "+593991234567"), "owner-1"
        )

        response = await running.client.post("/verifications/user-1/check", json={"code": CODE})

    assert response.status_code == 200
