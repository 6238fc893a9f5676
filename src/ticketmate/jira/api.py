"""Workspace admins' view of Jira intake: received events, and the connection credentials.

GET  /api/v1/workspaces/{slug}/jira/events              newest first, ?status=&limit=&cursor=
GET  /api/v1/workspaces/{slug}/jira/events/{id}         adds envelope, raw_payload, routing
GET  /api/v1/workspaces/{slug}/jira/connection          webhook_url, secret, ingest_token
POST /api/v1/workspaces/{slug}/jira/connection/regenerate   {"which": "secret"|"ingest_token"}
"""

from __future__ import annotations

import json
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Path, Query, Request
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy.orm import Session

from ticketmate.audit.http import actor_of, request_info
from ticketmate.audit.service import record as audit
from ticketmate.errors import ApiError
from ticketmate.jira import hooks
from ticketmate.jira import service as events
from ticketmate.jira.events import JiraEvent
from ticketmate.jira.transform import clean
from ticketmate.models import JiraEventRecord, Workspace
from ticketmate.pagination import PageParams
from ticketmate.security.auth import WorkspaceAdmin
from ticketmate.security.tokens import new_ingest_token, new_jira_secret
from ticketmate.state import Services, services
from ticketmate.timeutil import rfc3339
from ticketmate.workspaces.service import (
    ingest_token_aad,
    jira_credentials,
    jira_webhook_url,
    secret_aad,
)

router = APIRouter(prefix="/api/v1/workspaces/{slug}/jira", tags=["jira"])

ServicesDep = Annotated[Services, Depends(services)]
EventStatus = Literal["routed", "ignored", "rejected"]


class JiraEventOut(BaseModel):
    id: str
    received_at: str
    jira_event: str | None = Field(description="Jira's webhookEvent; null for Automation bodies.")
    event_types: list[str]
    issue_key: str | None
    summary: str | None
    status: EventStatus = Field(
        description="routed (also when no subscription matched), ignored or rejected."
    )
    reason: str | None
    delivery_ids: list[str]


class JiraEventPage(BaseModel):
    items: list[JiraEventOut]
    next_cursor: str | None


class JiraEventDetailOut(JiraEventOut):
    jira_event_id: str | None = Field(description="The X-Atlassian-Webhook-Identifier header.")
    headers: dict[str, str] = Field(description="The request headers that matter (no secrets).")
    envelope: JiraEvent | None = Field(description="The JiraEvent; null unless routed.")
    raw_payload: Any = Field(description="The body as Jira sent it, parsed as JSON.")
    routing: dict[str, Any] | None = Field(
        description="Which subscriptions matched, and why the others did not."
    )


class ConnectionOut(BaseModel):
    webhook_url: str = Field(description="The URL to enter in Jira.")
    secret: str = Field(description="The secret that signs X-Hub-Signature (Cloud, Data Center).")
    ingest_token: str = Field(
        description="The bearer token for senders that cannot sign (Automation, old Server)."
    )


class RegenerateIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    which: Literal["secret", "ingest_token"]


def _summary_fields(record: JiraEventRecord, delivery_ids: list[str]) -> dict[str, Any]:
    return {
        "id": record.id,
        "received_at": rfc3339(record.received_at) or "",
        "jira_event": record.jira_event,
        "event_types": list(record.event_types or []),
        "issue_key": record.issue_key,
        "summary": record.summary,
        "status": record.status,
        "reason": record.reason,
        "delivery_ids": delivery_ids,
    }


def _printable(value: Any) -> Any:
    """JSON that can be sent as UTF-8: a body may escape lone surrogates ("\\ud800")."""
    if isinstance(value, str):
        return clean(value)
    if isinstance(value, list):
        return [_printable(item) for item in value]
    if isinstance(value, dict):
        return {clean(key): _printable(item) for key, item in value.items()}
    return value


def _raw_payload(raw_body: str) -> Any:
    # Intake stores only bodies that parsed as JSON objects (nested at most 64 deep), so this
    # parses; if a row was written some other way, the text itself is the honest answer.
    try:
        return _printable(json.loads(raw_body))
    except (ValueError, RecursionError):
        return clean(raw_body)


@router.get("/events")
def list_jira_events(
    ctx: WorkspaceAdmin,
    svc: ServicesDep,
    page: PageParams,
    status: Annotated[EventStatus | None, Query(description="Only events of this status.")] = None,
) -> JiraEventPage:
    """Received Jira events, newest first (duplicates of a delivery are not rows)."""
    with svc.db.transaction() as session:
        records, next_cursor = events.list_events(session, ctx.workspace_id, status, page)
        deliveries = hooks.delivery_ids(session, [r.id for r in records])
        items = [JiraEventOut(**_summary_fields(r, deliveries.get(r.id, []))) for r in records]
    return JiraEventPage(items=items, next_cursor=next_cursor)


@router.get("/events/{event_id}")
def get_jira_event(
    ctx: WorkspaceAdmin,
    svc: ServicesDep,
    event_id: Annotated[str, Path(max_length=64)],
) -> JiraEventDetailOut:
    """One received event with its envelope, the raw payload and the routing decision."""
    with svc.db.transaction() as session:
        record = events.get_event(session, ctx.workspace_id, event_id)
        if record is None:
            raise ApiError(404, "event_not_found", "There is no such Jira event in this workspace.")
        deliveries = hooks.delivery_ids(session, [record.id]).get(record.id, [])
        return JiraEventDetailOut(
            **_summary_fields(record, deliveries),
            jira_event_id=record.jira_event_id,
            headers=dict(record.headers or {}),
            envelope=JiraEvent.model_validate(record.envelope) if record.envelope else None,
            raw_payload=_raw_payload(record.raw_body),
            routing=record.routing,
        )


def _connection(svc: Services, workspace: Workspace) -> ConnectionOut:
    credentials = jira_credentials(svc.keyring, workspace)
    return ConnectionOut(
        webhook_url=jira_webhook_url(svc.settings.base_url, workspace),
        secret=credentials.secret,
        ingest_token=credentials.ingest_token,
    )


def _workspace(session: Session, workspace_id: str) -> Workspace:
    workspace = session.get(Workspace, workspace_id)
    if workspace is None:
        raise ApiError(404, "workspace_not_found", "The workspace no longer exists.")
    return workspace


@router.get("/connection")
def get_jira_connection(ctx: WorkspaceAdmin, svc: ServicesDep) -> ConnectionOut:
    """What to enter in Jira: the webhook URL, the secret and the ingest token."""
    with svc.db.transaction() as session:
        return _connection(svc, _workspace(session, ctx.workspace_id))


@router.post("/connection/regenerate")
def regenerate_jira_credential(
    ctx: WorkspaceAdmin, svc: ServicesDep, body: RegenerateIn, request: Request
) -> ConnectionOut:
    """Replace the secret or the ingest token; the old value stops working at once."""
    with svc.db.transaction() as session:
        workspace = _workspace(session, ctx.workspace_id)
        if body.which == "secret":
            workspace.jira_secret_ciphertext = svc.keyring.encrypt(
                new_jira_secret(), secret_aad(workspace.id)
            )
        else:
            workspace.jira_ingest_token_ciphertext = svc.keyring.encrypt(
                new_ingest_token(), ingest_token_aad(workspace.id)
            )
        # The details name what changed, never the value.
        audit(
            session,
            workspace_id=workspace.id,
            actor=actor_of(ctx.principal),
            action=f"jira.{body.which}.regenerated",
            target_type="workspace",
            target_id=workspace.id,
            details={"which": body.which},
            request=request_info(request),
        )
        return _connection(svc, workspace)
