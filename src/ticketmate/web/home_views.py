"""The landing page after sign-in."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request
from fastapi.responses import RedirectResponse
from starlette.responses import Response

from ticketmate.accounts.service import workspaces_of
from ticketmate.security.auth import resolve_principal
from ticketmate.state import Services, services
from ticketmate.web.templating import render

router = APIRouter(include_in_schema=False)


@router.get("/")
def home(request: Request, svc: Annotated[Services, Depends(services)]) -> Response:
    principal = resolve_principal(request, svc)
    if principal is None or principal.via != "session":
        return RedirectResponse("/login", status_code=303)
    with svc.db.transaction() as session:
        memberships = workspaces_of(session, principal.user_id)
        rows = [(w.slug, w.name, role) for w, role in memberships]
    return render(request, "home.html", principal=principal, memberships=rows)
