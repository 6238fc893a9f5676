"""Rendering admin pages: the layout's context, flash messages, redirects and error pages."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, unquote, urlencode

from fastapi import Request
from fastapi.responses import RedirectResponse
from starlette.responses import Response

from ticketmate.security.auth import AdminContext, Principal
from ticketmate.web.templating import render

FLASH_COOKIE = "tm_flash"
FLASH_KINDS = ("ok", "error", "info")
# Admin pages carry CSRF tokens, masked URLs and (after Reveal) Jira secrets: never cached.
NO_STORE = "no-store"


@dataclass(frozen=True)
class WorkspaceLink:
    slug: str
    name: str
    role: str


@dataclass(frozen=True)
class AdminPage:
    """A signed-in administrator on one workspace's admin pages.

    `ctx` is the API's own AdminContext, so the views can call the API's handlers (Test
    Connection, Jira connection, retries) exactly as the API does.
    """

    ctx: AdminContext
    workspaces: tuple[WorkspaceLink, ...]

    @property
    def principal(self) -> Principal:
        return self.ctx.principal

    @property
    def slug(self) -> str:
        return self.ctx.workspace_slug

    @property
    def name(self) -> str:
        return self.ctx.workspace_name

    @property
    def workspace_id(self) -> str:
        return self.ctx.workspace_id

    @property
    def csrf_token(self) -> str:
        return self.ctx.principal.csrf_token or ""

    # Slugs are [a-z0-9-], so they need no quoting in paths.
    @property
    def integrations_url(self) -> str:
        return f"/w/{self.slug}/admin/integrations"

    @property
    def teams_url(self) -> str:
        return f"{self.integrations_url}/teams"

    @property
    def audit_url(self) -> str:
        return f"/w/{self.slug}/security/audit-log"


def is_htmx(request: Request) -> bool:
    return request.headers.get("hx-request") == "true"


def with_query(path: str, **params: str | None) -> str:
    kept = {k: v for k, v in params.items() if v}
    return f"{path}?{urlencode(kept)}" if kept else path


def _take_flash(request: Request) -> dict[str, str] | None:
    raw = request.cookies.get(FLASH_COOKIE)
    if not raw:
        return None
    try:
        value = json.loads(unquote(raw))
    except ValueError:
        return None
    if not isinstance(value, dict) or value.get("kind") not in FLASH_KINDS:
        return None
    return {"kind": str(value["kind"]), "text": str(value.get("text", ""))[:500]}


def page(
    request: Request,
    name: str,
    p: AdminPage,
    *,
    section: str = "integrations",
    status_code: int = 200,
    **context: Any,
) -> Response:
    """A full admin page: the layout (workspace, switcher, navigation, user) and any flash
    message left by the redirect that led here."""
    # A page fetched by HTMX (the Delivery Log's refresh) leaves the message to a real visit.
    flash = None if is_htmx(request) else _take_flash(request)
    response = render(
        request,
        name,
        status_code=status_code,
        principal=p.principal,
        admin=p,
        section=section,
        flash=flash,
        **context,
    )
    response.headers["Cache-Control"] = NO_STORE
    if flash is not None:
        response.delete_cookie(FLASH_COOKIE, path="/")
    return response


def fragment(request: Request, name: str, p: AdminPage, **context: Any) -> Response:
    """A piece of a page for HTMX to swap in; it leaves flash messages for the next page."""
    response = render(request, name, principal=p.principal, admin=p, **context)
    response.headers["Cache-Control"] = NO_STORE
    return response


def redirect(url: str, flash: str | None = None, kind: str = "ok") -> Response:
    """303 See Other after a form post (the no-JavaScript flow), with an optional message
    shown once on the next page."""
    response = RedirectResponse(url, status_code=303)
    if flash:
        value = quote(json.dumps({"kind": kind, "text": flash[:500]}))
        response.set_cookie(
            FLASH_COOKIE, value, max_age=60, path="/", httponly=True, samesite="lax"
        )
    return response


def error_page(
    request: Request,
    status_code: int,
    title: str,
    message: str,
    principal: Principal | None = None,
) -> Response:
    if is_htmx(request):
        # Swapped into the part of the page that asked (htmx is configured to swap errors).
        response = render(
            request, "_error_fragment.html", status_code=status_code, title=title, message=message
        )
    else:
        response = render(
            request,
            "error.html",
            status_code=status_code,
            title=title,
            message=message,
            principal=principal,
        )
    response.headers["Cache-Control"] = NO_STORE
    return response
