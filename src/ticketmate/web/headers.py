"""Browser and cache headers on every answer: what a page may load, who may frame it.

A pure ASGI middleware (it only adds headers to the response start), so it costs next to
nothing per request and never buffers a body.
"""

from __future__ import annotations

from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

# Only our own files: the pages load the vendored scripts and stylesheets from /static, and
# nothing from other sites (the service runs without internet access). No inline script or
# style is allowed, nor eval. Images may also be data: URIs: the vendored stylesheets (Pico,
# Swagger UI) draw their icons that way, and an image cannot run script.
CONTENT_SECURITY_POLICY = "; ".join(
    (
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self' data:",
        "font-src 'self'",
        "connect-src 'self'",
        "object-src 'none'",
        "base-uri 'none'",
        "form-action 'self'",
        "frame-ancestors 'none'",
    )
)

BROWSER_HEADERS = (
    ("content-security-policy", CONTENT_SECURITY_POLICY),
    # For browsers that predate frame-ancestors.
    ("x-frame-options", "DENY"),
    ("x-content-type-options", "nosniff"),
    ("referrer-policy", "same-origin"),
)

# API answers are one user's view of a workspace, and some carry secrets (the Jira secret and
# ingest token): no browser, proxy or cache may keep them. Admin pages say so themselves.
API_PREFIX = "/api/"
NO_STORE = "no-store"


def error_headers(path: str) -> dict[str, str]:
    """The headers SecurityHeaders would add, for answers made outside it (an unhandled
    error's 500)."""
    headers = dict(BROWSER_HEADERS)
    if path.startswith(API_PREFIX):
        headers["cache-control"] = NO_STORE
    return headers


class SecurityHeaders:
    """Adds the browser headers to every HTTP answer, and `Cache-Control: no-store` to every
    API answer that does not set its own Cache-Control."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        is_api = str(scope.get("path", "")).startswith(API_PREFIX)

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                for name, value in BROWSER_HEADERS:
                    headers.setdefault(name, value)
                if is_api:
                    headers.setdefault("cache-control", NO_STORE)
            await send(message)

        await self.app(scope, receive, send_with_headers)
