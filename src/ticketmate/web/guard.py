"""Who may open an admin page, and how a page says no.

The rules are the API's (security/auth.py), answered as pages: not signed in → the sign-in
page, coming back here afterwards; not a member of the workspace → 404 (no hint that it
exists); a member who is not an administrator → 403 "You need to be a workspace
administrator", on every admin URL. Every state-changing request must carry the session's
CSRF token, as the form field `csrf_token` or (HTMX) the header `X-CSRF-Token`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Coroutine
from typing import Annotated, Any
from urllib.parse import quote, urlsplit

from fastapi import Depends, Path, Request
from fastapi.exceptions import RequestValidationError
from fastapi.routing import APIRoute
from starlette.responses import Response

from ticketmate.accounts import service as accounts
from ticketmate.errors import ApiError
from ticketmate.security.auth import CSRF_HEADER, AdminContext, Principal, resolve_principal
from ticketmate.security.tokens import same
from ticketmate.state import Services, services
from ticketmate.web.pages import AdminPage, WorkspaceLink, error_page, is_htmx
from ticketmate.workspaces.service import get_by_slug

log = logging.getLogger(__name__)

ADMIN_REQUIRED_TITLE = "You need to be a workspace administrator"


class PageRefusal(Exception):
    """Raised anywhere below a page route (dependencies included) to answer with `response`."""

    def __init__(self, response: Response) -> None:
        super().__init__(response.status_code)
        self.response = response


_TITLES = {
    400: "The request is not valid",
    403: "Request refused",
    404: "Page not found",
    409: "That cannot be done now",
    422: "The request is not valid",
}


class PageRoute(APIRoute):
    """Routes whose failures are pages, not the API's JSON error shape.

    The app's exception handlers answer JSON for the API; a page must answer HTML, so a page
    route turns refusals, service errors (ApiError) and invalid parameters into error pages
    before they reach those handlers.
    """

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def page_handler(request: Request) -> Response:
            try:
                return await handler(request)
            except PageRefusal as refusal:
                return refusal.response
            except ApiError as exc:
                title = _TITLES.get(exc.status_code, "Something went wrong")
                return error_page(request, exc.status_code, title, exc.message)
            except RequestValidationError:
                return error_page(
                    request,
                    400,
                    _TITLES[400],
                    "A value in the address or the form is not one this page accepts.",
                )

        return page_handler


def _sign_in_redirect(request: Request) -> Response:
    if is_htmx(request):
        # A swapped-in login page would be useless: tell HTMX to load the sign-in page.
        current = urlsplit(request.headers.get("hx-current-url", ""))
        back = current.path + (f"?{current.query}" if current.query else "")
        return Response(status_code=204, headers={"HX-Redirect": _login_url(back or "/")})
    back = request.url.path
    if request.url.query:
        back += f"?{request.url.query}"
    # Coming back to a form's POST address would be a GET it does not answer; go home instead.
    target = _login_url(back if request.method == "GET" else "/")
    return Response(status_code=303, headers={"Location": target})


def _login_url(back: str) -> str:
    return f"/login?next={quote(back, safe='/')}"


def not_found(request: Request, principal: Principal | None, slug: str) -> PageRefusal:
    return PageRefusal(
        error_page(
            request,
            404,
            _TITLES[404],
            f"There is no workspace “{slug}” for you, or nothing at this address.",
            principal,
        )
    )


def admin_page(
    request: Request,
    svc: Annotated[Services, Depends(services)],
    slug: Annotated[str, Path(max_length=64)],
) -> AdminPage:
    """The dependency of every admin page: a signed-in administrator of workspace `slug`."""
    principal = resolve_principal(request, svc)
    # Pages are for browsers: an API token (no cookie, no CSRF token) does not open them.
    if principal is None or principal.via != "session":
        raise PageRefusal(_sign_in_redirect(request))
    with svc.db.transaction() as session:
        workspace = get_by_slug(session, slug)
        role = accounts.role_in(session, principal.user_id, workspace.id) if workspace else None
        if workspace is None or role is None:
            raise not_found(request, principal, slug)
        if role != "admin":
            raise PageRefusal(
                error_page(
                    request,
                    403,
                    ADMIN_REQUIRED_TITLE,
                    f"Only administrators of the workspace “{workspace.name}” can manage its "
                    "integrations and read its audit log. Ask one of them to make you an "
                    "administrator.",
                    principal,
                )
            )
        memberships = accounts.workspaces_of(session, principal.user_id)
        links = tuple(WorkspaceLink(w.slug, w.name, r) for w, r in memberships)
        ctx = AdminContext(principal, workspace.id, workspace.slug, workspace.name)
    return AdminPage(ctx, links)


async def admin_form(request: Request, p: Annotated[AdminPage, Depends(admin_page)]) -> AdminPage:
    """`admin_page` for requests that change something: the session's CSRF token must come
    with them (a session cookie alone is sent by the browser on any site's behalf)."""
    sent = request.headers.get(CSRF_HEADER, "")
    if not sent:
        form = await request.form()
        field = form.get("csrf_token")
        sent = field if isinstance(field, str) else ""
    if not p.csrf_token or not sent or not same(sent, p.csrf_token):
        log.warning("web form refused: missing or wrong CSRF token on %s", request.url.path)
        raise PageRefusal(
            error_page(
                request,
                403,
                _TITLES[403],
                "The form's CSRF token is missing or wrong; reload the page and try again.",
                p.principal,
            )
        )
    return p


AdminView = Annotated[AdminPage, Depends(admin_page)]
AdminAction = Annotated[AdminPage, Depends(admin_form)]
Svc = Annotated[Services, Depends(services)]
