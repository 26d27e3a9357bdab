"""The verification API for other services: check a code, read a verification, cancel it."""

from datetime import datetime

from litestar import Controller, Request, Response, delete, get, post
from litestar.datastructures import State
from litestar.params import FromPath, JSONBody
from litestar.status_codes import (
    HTTP_200_OK,
    HTTP_400_BAD_REQUEST,
    HTTP_404_NOT_FOUND,
    HTTP_409_CONFLICT,
    HTTP_410_GONE,
    HTTP_422_UNPROCESSABLE_ENTITY,
    HTTP_429_TOO_MANY_REQUESTS,
)
from pydantic import BaseModel, Field

from application.check_verification import CheckOutcome, CheckResult, CheckVerification
from application.manage_verification import CancelOutcome, ManageVerification, VerificationView
from domain.errors import InvalidVerificationId
from domain.verification import VerificationStatus, check_verification_id
from entrypoints.http.auth import require_api_token
from entrypoints.http.errors import error_response

# The one place where check results become HTTP status codes.
CHECK_STATUS_CODES = {
    CheckResult.APPROVED: HTTP_200_OK,
    CheckResult.INCORRECT: HTTP_422_UNPROCESSABLE_ENTITY,
    CheckResult.EXPIRED: HTTP_410_GONE,
    CheckResult.NOT_FOUND: HTTP_404_NOT_FOUND,
    CheckResult.TOO_MANY_ATTEMPTS: HTTP_429_TOO_MANY_REQUESTS,
}


class CheckBody(BaseModel):
    """The code the person typed. Spaces and dashes inside it are ignored."""

    code: str = Field(min_length=1, max_length=32)


def _check_response(outcome: CheckOutcome) -> Response[dict[str, object]]:
    body: dict[str, object] = {
        "status": str(outcome.result),
        "attempts_remaining": outcome.attempts_remaining,
    }
    headers = {}
    if outcome.retry_after_seconds:
        body["retry_after_seconds"] = outcome.retry_after_seconds
        headers["Retry-After"] = str(outcome.retry_after_seconds)
    return Response(body, status_code=CHECK_STATUS_CODES[outcome.result], headers=headers)


def _time(moment: datetime | None) -> str | None:
    return moment.isoformat().replace("+00:00", "Z") if moment else None


def _view_body(view: VerificationView) -> dict[str, object]:
    return {
        "verification_id": view.verification_id,
        "status": str(view.status),
        "phone": view.masked_phone,
        "created_at": _time(view.created_at),
        "expires_at": _time(view.expires_at),
        "approved_at": _time(view.approved_at),
        "canceled_at": _time(view.canceled_at),
        "delivery_status": str(view.delivery_status) if view.delivery_status else None,
        "delivery_history": [
            {
                "status": str(change.status),
                "recorded_at": _time(change.recorded_at),
                "error_code": change.error_code,
            }
            for change in view.delivery_history
        ],
        "error_code": view.error_code,
        "attempts_used": view.attempts_used,
        "attempts_remaining": view.attempts_remaining,
    }


def _invalid_id(verification_id: str) -> Response[dict[str, str]] | None:
    try:
        check_verification_id(verification_id)
    except InvalidVerificationId as error:
        return error_response(HTTP_400_BAD_REQUEST, str(error))
    return None


class VerificationController(Controller):
    """`/verifications/{id}`: for other services, behind the API token when one is set."""

    path = "/verifications"
    guards = [require_api_token]  # noqa: RUF012 (Litestar reads this class attribute)

    @post("/{verification_id:str}/check", status_code=HTTP_200_OK)
    async def check(
        self,
        request: Request[object, object, State],
        verification_id: FromPath[str],
        data: JSONBody[CheckBody],
    ) -> Response[dict[str, object]] | Response[dict[str, str]]:
        """Check a code: 200 approved, 422 incorrect, 404, 410 or 429 otherwise."""
        invalid = _invalid_id(verification_id)
        if invalid is not None:
            return invalid
        use_case: CheckVerification = request.app.state.check_verification
        return _check_response(await use_case.execute(verification_id, data.code))

    @get("/{verification_id:str}")
    async def describe(
        self, request: Request[object, object, State], verification_id: FromPath[str]
    ) -> Response[dict[str, object]] | Response[dict[str, str]]:
        """Return status, delivery history and attempts; never the code or full phone."""
        invalid = _invalid_id(verification_id)
        if invalid is not None:
            return invalid
        manage: ManageVerification = request.app.state.manage_verification
        view = await manage.describe(verification_id)
        if view is None:
            return Response({"status": "not_found"}, status_code=HTTP_404_NOT_FOUND)
        return Response(_view_body(view), status_code=HTTP_200_OK)

    @delete("/{verification_id:str}", status_code=HTTP_200_OK)
    async def cancel(
        self, request: Request[object, object, State], verification_id: FromPath[str]
    ) -> Response[dict[str, object]] | Response[dict[str, str]]:
        """Cancel an open verification; canceling twice is not an error."""
        invalid = _invalid_id(verification_id)
        if invalid is not None:
            return invalid
        manage: ManageVerification = request.app.state.manage_verification
        outcome = await manage.cancel(verification_id)
        if outcome is CancelOutcome.CANCELED:
            return Response({"status": "canceled"}, status_code=HTTP_200_OK)
        view = await manage.describe(verification_id)
        if outcome is CancelOutcome.NOT_FOUND or view is None:
            return Response({"status": "not_found"}, status_code=HTTP_404_NOT_FOUND)
        if view.status is VerificationStatus.CANCELED:
            return Response({"status": "canceled"}, status_code=HTTP_200_OK)
        return Response(
            {
                "status": str(view.status),
                "error": f"a verification that is {view.status} cannot be canceled",
            },
            status_code=HTTP_409_CONFLICT,
        )
