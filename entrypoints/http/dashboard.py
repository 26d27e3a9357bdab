"""The operator dashboard at /dashboard: a server-rendered page that follows /ws?all=true."""

import functools
import html
import json
from importlib import resources

from litestar import MediaType, Request, Response, get
from litestar.status_codes import HTTP_401_UNAUTHORIZED, HTTP_403_FORBIDDEN

from adapters.twilio.errors import DELIVERY_ERROR_MEANINGS, PERMANENT_CODES, RETRIABLE_CODES
from entrypoints.http.operator_auth import operator_token_valid

# The page runs only its own script and style and talks only to its own origin. It is
# never framed, cached, or named in a Referer, because its URL may carry the token.
SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; "
        "img-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
    "X-Frame-Options": "DENY",
}

_PAGE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Verifications: live dashboard</title>
<link rel="stylesheet" href="/dashboard/dashboard.css">
<script id="error-meanings" type="application/json">{error_meanings}</script>
<script src="/dashboard/dashboard.js" defer></script>
</head>
<body>
<header>
  <h1>WhatsApp verifications</h1>
  <p id="connection" class="connection" data-state="connecting">connecting…</p>
</header>
<main>
  <section aria-labelledby="counters-title">
    <h2 id="counters-title">Verifications by status</h2>
    <ul id="status-counters" class="counters"></ul>
  </section>
  <section aria-labelledby="minutes-title">
    <h2 id="minutes-title">Events per minute</h2>
    <table id="minute-counters">
      <thead><tr><th>minute (UTC)</th><th>requested</th><th>sent</th><th>delivered</th>
      <th>read</th><th>failed</th><th>all events</th></tr></thead>
      <tbody></tbody>
    </table>
  </section>
  <section aria-labelledby="latest-title">
    <h2 id="latest-title">Latest verifications</h2>
    <table id="verifications">
      <thead><tr><th>verification</th><th>phone</th><th>status</th><th>timeline</th>
      <th>updated (UTC)</th></tr></thead>
      <tbody></tbody>
    </table>
    <p id="no-verifications" class="empty">No events yet. New events appear here as
    they happen.</p>
  </section>
  <section aria-labelledby="feed-title">
    <h2 id="feed-title">Live feed</h2>
    <ol id="feed" class="feed"></ol>
  </section>
</main>
</body>
</html>
"""

_MESSAGE_PAGE = """<!doctype html>
<html lang="en">
<head><meta charset="utf-8"><title>{title}</title></head>
<body><h1>{title}</h1><p>{text}</p></body>
</html>
"""


@get("/dashboard", media_type=MediaType.HTML, include_in_schema=False)
async def dashboard_page(request: Request[object, object, object]) -> Response[str]:
    """Serve the dashboard to a holder of the operator token."""
    expected: bytes | None = request.app.state.dashboard_token
    if expected is None:
        return _message(
            HTTP_403_FORBIDDEN,
            "The dashboard is off",
            "Set DASHBOARD_TOKEN on the webhook, restart it, and open "
            "/dashboard?token=<DASHBOARD_TOKEN>.",
        )
    if not operator_token_valid(request, expected):
        response = _message(
            HTTP_401_UNAUTHORIZED,
            "Operator token required",
            "Open /dashboard?token=<DASHBOARD_TOKEN>, or send "
            "Authorization: Bearer <DASHBOARD_TOKEN>.",
        )
        response.headers["WWW-Authenticate"] = 'Bearer realm="dashboard"'
        return response
    return Response(_page(), media_type=MediaType.HTML, headers=SECURITY_HEADERS)


@get("/dashboard/dashboard.js", media_type="text/javascript", include_in_schema=False)
async def dashboard_script() -> Response[str]:
    """Serve the dashboard's script, which contains no data and so needs no token."""
    return Response(_asset("dashboard.js"), media_type="text/javascript", headers=_ASSET_HEADERS)


@get("/dashboard/dashboard.css", media_type="text/css", include_in_schema=False)
async def dashboard_style() -> Response[str]:
    """Serve the dashboard's style sheet."""
    return Response(_asset("dashboard.css"), media_type="text/css", headers=_ASSET_HEADERS)


_ASSET_HEADERS = {"X-Content-Type-Options": "nosniff", "Cache-Control": "no-cache"}


@functools.cache
def _page() -> str:
    meanings = {
        str(code): text
        for code, text in {**DELIVERY_ERROR_MEANINGS, **RETRIABLE_CODES, **PERMANENT_CODES}.items()
    }
    return _PAGE.format(error_meanings=script_json(meanings))


@functools.cache
def _asset(name: str) -> str:
    return (resources.files("entrypoints.http") / "dashboard_assets" / name).read_text("utf-8")


def script_json(value: object) -> str:
    """Return `value` as JSON that is safe inside a <script> element.

    Escaping <, > and & keeps a value such as "</script>" from ending the element.
    """
    text = json.dumps(value, ensure_ascii=True, sort_keys=True)
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def _message(status_code: int, title: str, text: str) -> Response[str]:
    body = _MESSAGE_PAGE.format(title=html.escape(title), text=html.escape(text))
    return Response(
        body, status_code=status_code, media_type=MediaType.HTML, headers=dict(SECURITY_HEADERS)
    )
