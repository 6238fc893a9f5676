"""Who is calling, and the one authorization rule: workspace admin required.

Rules, the same on every endpoint: no credentials → 401; a user who is not a member of the
workspace → 404 (no hint that it exists); a member who is not an admin → 403.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Path, Request

from ticketmate.accounts import service as accounts
from ticketmate.errors import ApiError
from ticketmate.models import User, Workspace
from ticketmate.security.tokens import same
from ticketmate.state import Services, services
from ticketmate.workspaces.service import get_by_slug

SESSION_COOKIE = "tm_session"
CSRF_HEADER = "X-CSRF-Token"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


@dataclass(frozen=True)
class Principal:
    user_id: str
    email: str
    via: str  # "token" or "session"
    csrf_token: str | None = None


@dataclass(frozen=True)
class AdminContext:
    principal: Principal
    workspace_id: str
    workspace_slug: str
    workspace_name: str


def _unauthorized() -> ApiError:
    return ApiError(
        401,
        "unauthorized",
        "Sign in, or send an API token as 'Authorization: Bearer <token>'.",
        headers={"WWW-Authenticate": "Bearer"},
    )


def bearer_token(request: Request) -> str | None:
    header = request.headers.get("authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() == "bearer" and value.strip():
        return value.strip()
    return None


def resolve_principal(request: Request, svc: Services) -> Principal | None:
    token = bearer_token(request)
    with svc.db.transaction() as session:
        if token is not None:
            user = accounts.user_for_api_token(session, token)
            return Principal(user.id, user.email, "token") if user else None
        cookie = request.cookies.get(SESSION_COOKIE)
        if not cookie:
            return None
        web_session = accounts.find_session(session, cookie)
        if web_session is None:
            return None
        found = session.get(User, web_session.user_id)
        if found is None:
            return None
        return Principal(found.id, found.email, "session", web_session.csrf_token)


def current_principal(request: Request, svc: Annotated[Services, Depends(services)]) -> Principal:
    principal = resolve_principal(request, svc)
    if principal is None:
        raise _unauthorized()
    # A browser session sends its cookie on any request, so changes through it must prove
    # they come from our own pages: the session's CSRF token in a header.
    if principal.via == "session" and request.method not in SAFE_METHODS:
        sent = request.headers.get(CSRF_HEADER, "")
        if not principal.csrf_token or not same(sent, principal.csrf_token):
            raise ApiError(
                403, "csrf_failed", "The CSRF token is missing or wrong; reload the page."
            )
    return principal


CurrentPrincipal = Annotated[Principal, Depends(current_principal)]


def workspace_admin(
    principal: CurrentPrincipal,
    svc: Annotated[Services, Depends(services)],
    slug: Annotated[str, Path(max_length=64)],
) -> AdminContext:
    with svc.db.transaction() as session:
        workspace = get_by_slug(session, slug)
        role = accounts.role_in(session, principal.user_id, workspace.id) if workspace else None
        if workspace is None or role is None:
            raise ApiError(404, "workspace_not_found", f"There is no workspace {slug!r} for you.")
        if role != "admin":
            raise ApiError(
                403, "admin_required", "You need to be a workspace administrator to do this."
            )
        return AdminContext(principal, workspace.id, workspace.slug, workspace.name)


WorkspaceAdmin = Annotated[AdminContext, Depends(workspace_admin)]


def load_workspace(svc: Services, ctx: AdminContext) -> Workspace:
    with svc.db.transaction() as session:
        workspace = session.get(Workspace, ctx.workspace_id)
        if workspace is None:
            raise ApiError(404, "workspace_not_found", "The workspace no longer exists.")
        return workspace
