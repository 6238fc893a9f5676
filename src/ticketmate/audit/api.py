"""The audit log API: a workspace's entries, newest first, and a check of its hash chain."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel, Field
from sqlalchemy import Select, select
from sqlalchemy.orm import Session

from ticketmate.audit.service import verify_chain
from ticketmate.errors import LIST, WORKSPACE_READ, error_responses
from ticketmate.models import AuditEntry
from ticketmate.pagination import Page, PageParams, fetch_page
from ticketmate.security.auth import WorkspaceAdmin
from ticketmate.state import Services, services
from ticketmate.timeutil import Rfc3339Time, rfc3339

router = APIRouter(prefix="/api/v1/workspaces/{slug}/audit-log", tags=["audit"])
Svc = Annotated[Services, Depends(services)]


class AuditActor(BaseModel):
    type: str = Field(description="`user` or `system`.")
    id: str | None
    email: str | None


class AuditTarget(BaseModel):
    type: str | None
    id: str | None


class AuditEntryView(BaseModel):
    id: str
    at: str
    actor: AuditActor
    action: str
    target: AuditTarget = Field(description="What the action was about; nulls when nothing.")
    ip: str | None
    user_agent: str | None
    details: dict[str, Any] = Field(description="Never holds a secret.")
    hash: str = Field(description="SHA-256 over the entry and the previous entry's hash.")

    @classmethod
    def of(cls, entry: AuditEntry) -> AuditEntryView:
        return cls(
            id=entry.id,
            at=rfc3339(entry.at) or "",
            actor=AuditActor(type=entry.actor_type, id=entry.actor_id, email=entry.actor_email),
            action=entry.action,
            target=AuditTarget(type=entry.target_type, id=entry.target_id),
            ip=entry.ip,
            user_agent=entry.user_agent,
            details=entry.details or {},
            hash=entry.hash,
        )


class AuditList(BaseModel):
    items: list[AuditEntryView]
    next_cursor: str | None


class ChainVerdict(BaseModel):
    ok: bool
    checked: int = Field(description="Entries found intact before the first broken one.")
    broken_entry_id: str | None
    problem: str | None


def _utc(value: datetime | None) -> datetime | None:
    # RFC 3339 carries an offset; a time without one is read as UTC, the product's only zone.
    if value is None:
        return None
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def filtered(
    workspace_id: str,
    *,
    action: str | None = None,
    actor: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
) -> Select[Any]:
    """The workspace's entries narrowed by the list's query parameters."""
    query = select(AuditEntry).where(AuditEntry.workspace_id == workspace_id)
    if action:
        if action.endswith("*"):
            query = query.where(AuditEntry.action.startswith(action[:-1], autoescape=True))
        else:
            query = query.where(AuditEntry.action == action)
    if actor:
        if actor == "system":
            query = query.where(AuditEntry.actor_type == "system")
        elif "@" in actor:
            query = query.where(AuditEntry.actor_email == actor.strip().lower())
        else:
            query = query.where(AuditEntry.actor_id == actor)
    if (start := _utc(since)) is not None:
        query = query.where(AuditEntry.at >= start)
    if (end := _utc(until)) is not None:
        query = query.where(AuditEntry.at < end)
    return query


def list_entries(session: Session, query: Select[Any], page: Page) -> AuditList:
    rows, next_cursor = fetch_page(session, query, AuditEntry.id, page)
    return AuditList(items=[AuditEntryView.of(row[0]) for row in rows], next_cursor=next_cursor)


@router.get("", summary="List the audit log", responses=error_responses(*WORKSPACE_READ, *LIST))
def audit_log(
    ctx: WorkspaceAdmin,
    svc: Svc,
    page: PageParams,
    action: Annotated[
        str | None,
        Query(
            max_length=64,
            description="An action (`teams.webhook.created`), or a prefix ending in `*` "
            "(`teams.*`).",
        ),
    ] = None,
    actor: Annotated[
        str | None,
        Query(max_length=254, description="A user's e-mail or id, or `system`."),
    ] = None,
    since: Annotated[
        Rfc3339Time | None, Query(description="Entries at or after this time (RFC 3339).")
    ] = None,
    until: Annotated[
        Rfc3339Time | None, Query(description="Entries before this time (RFC 3339).")
    ] = None,
) -> AuditList:
    """Who did what and when in this workspace, newest first."""
    query = filtered(ctx.workspace_id, action=action, actor=actor, since=since, until=until)
    with svc.db.transaction() as session:
        return list_entries(session, query, page)


@router.get(
    "/verify",
    summary="Check the audit log's hash chain",
    responses=error_responses(*WORKSPACE_READ),
)
def verify(ctx: WorkspaceAdmin, svc: Svc) -> ChainVerdict:
    """`ok` when every entry matches its hash and links to the one before it; otherwise the
    first broken entry and what is wrong with it."""
    with svc.db.transaction() as session:
        report = verify_chain(session, ctx.workspace_id)
    return ChainVerdict(
        ok=report.ok,
        checked=report.checked,
        broken_entry_id=report.broken_entry_id,
        problem=report.problem,
    )
