"""Bearer-token guard for the endpoints other services call."""

import hmac

from litestar.connection import ASGIConnection
from litestar.exceptions import NotAuthorizedException
from litestar.handlers.base import BaseRouteHandler


def require_api_token(
    connection: ASGIConnection[object, object, object, object], _: BaseRouteHandler
) -> None:
    """Reject the request with 401 unless it carries `Authorization: Bearer <API_TOKEN>`.

    Without a configured token every request passes, which suits local runs only.
    """
    expected: bytes | None = connection.app.state.api_token
    if expected is None:
        return
    scheme, _, presented = connection.headers.get("Authorization", "").partition(" ")
    # Constant-time comparison, so response timing reveals nothing about the token.
    if scheme.lower() != "bearer" or not hmac.compare_digest(presented.strip().encode(), expected):
        raise NotAuthorizedException(
            "missing or invalid bearer token: send Authorization: Bearer <API_TOKEN>",
            headers={"WWW-Authenticate": 'Bearer realm="verifications"'},
        )
