"""Operator token check of the dashboard and of the hub's subscription to every event."""

import hmac

from litestar.connection import ASGIConnection


def presented_operator_token(connection: ASGIConnection[object, object, object, object]) -> str:
    """Return the token from `Authorization: Bearer`, else the `token` query parameter, else "".

    Browsers cannot set headers on a WebSocket handshake, so the query parameter is
    accepted too.
    """
    scheme, _, credentials = connection.headers.get("Authorization", "").partition(" ")
    if scheme.lower() == "bearer" and credentials.strip():
        return credentials.strip()
    return connection.query_params.get("token", "") or ""


def operator_token_valid(
    connection: ASGIConnection[object, object, object, object], expected: bytes
) -> bool:
    """Return True when the connection presents `expected`, compared in constant time."""
    presented = presented_operator_token(connection).encode()
    # compare_digest takes time independent of where the values differ, so response
    # timing reveals nothing about the token.
    return hmac.compare_digest(presented, expected)
