"""GET /api/v1/workspaces/{slug}: the workspace, for its admins."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends
from pydantic import BaseModel

from ticketmate.errors import WORKSPACE_READ, error_responses
from ticketmate.security.auth import WorkspaceAdmin, load_workspace
from ticketmate.state import Services, services
from ticketmate.timeutil import rfc3339

router = APIRouter(prefix="/api/v1/workspaces", tags=["workspaces"])


class WorkspaceOut(BaseModel):
    slug: str
    name: str
    created_at: str


@router.get("/{slug}", responses=error_responses(*WORKSPACE_READ))
def get_workspace(ctx: WorkspaceAdmin, svc: Annotated[Services, Depends(services)]) -> WorkspaceOut:
    """The workspace's slug, name and creation time."""
    workspace = load_workspace(svc, ctx)
    return WorkspaceOut(
        slug=workspace.slug, name=workspace.name, created_at=rfc3339(workspace.created_at) or ""
    )
