"""GET /api/v1/me: the caller and their workspaces."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends
from pydantic import BaseModel

from ticketmate.accounts.service import workspaces_of
from ticketmate.errors import error_responses
from ticketmate.security.auth import CurrentPrincipal
from ticketmate.state import Services, services

router = APIRouter(prefix="/api/v1", tags=["account"])


class MembershipOut(BaseModel):
    slug: str
    name: str
    role: str


class MeOut(BaseModel):
    id: str
    email: str
    workspaces: list[MembershipOut]


@router.get("/me", responses=error_responses("unauthorized"))
def me(principal: CurrentPrincipal, svc: Annotated[Services, Depends(services)]) -> MeOut:
    """The signed-in user and the role they have in each of their workspaces."""
    with svc.db.transaction() as session:
        rows = workspaces_of(session, principal.user_id)
        return MeOut(
            id=principal.user_id,
            email=principal.email,
            workspaces=[MembershipOut(slug=w.slug, name=w.name, role=r) for w, r in rows],
        )
