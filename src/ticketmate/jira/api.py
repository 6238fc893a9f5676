"""Workspace admins' view of Jira intake: received events, and the connection credentials.

GET  /api/v1/workspaces/{slug}/jira/events              newest first, ?status=&limit=&cursor=
GET  /api/v1/workspaces/{slug}/jira/events/{id}         adds envelope, raw_body, routing and
                                                        the first page of explanations
GET  /api/v1/workspaces/{slug}/jira/events/{id}/explanations   ?limit=&cursor=: why each
                                                        subscription did (not) take it, now
GET  /api/v1/workspaces/{slug}/jira/connection          webhook_url, secret, ingest_token
POST /api/v1/workspaces/{slug}/jira/connection/regenerate   {"which": "secret"|"ingest_token"}
GET  /api/v1/workspaces/{slug}/jira/site                {"jira_base_url": "https://…" | null}
PUT  /api/v1/workspaces/{slug}/jira/site                the same: set, change or clear (null)
GET  /api/v1/workspaces/{slug}/jira/security            {"withhold_unknown_levels": false}
PUT  /api/v1/workspaces/{slug}/jira/security            the same: withhold comments whose
                                                        issue's security level is unknown
"""

from __future__ import annotations

import json
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Path, Query, Request
from pydantic import BaseModel, ConfigDict, Field, StrictBool, field_validator
from sqlalchemy.orm import Session

from ticketmate.audit.http import actor_of, request_info
from ticketmate.audit.service import record as audit
from ticketmate.errors import (
    BODY,
    LIST,
    WORKSPACE_CHANGE,
    WORKSPACE_READ,
    ApiError,
    error_responses,
)
from ticketmate.jira import service as events
from ticketmate.jira.events import JiraEvent
from ticketmate.jira.transform import SITE_EXAMPLE, NotASite, clean, read_site
from ticketmate.models import JiraEventRecord, Workspace
from ticketmate.pagination import Page, PageParams
from ticketmate.routing.explanation import FIRST_PAGE, ExplanationPage, explain
from ticketmate.security.auth import WorkspaceAdmin
from ticketmate.security.tokens import new_ingest_token, new_jira_secret
from ticketmate.state import Services, services
from ticketmate.timeutil import rfc3339
from ticketmate.workspaces.generation import bump_generation
from ticketmate.workspaces.service import (
    ingest_token_aad,
    jira_credentials,
    jira_webhook_url,
    secret_aad,
    set_jira_base_url,
    set_withhold_unknown_security,
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


class RoutingOut(BaseModel):
    matched_subscription_ids: list[str] = Field(
        description="The subscriptions that took the event, in id order (at most 100 kept)."
    )
    matched_count: int = Field(description="How many subscriptions took the event.")
    not_matched_count: int = Field(
        description="How many of the workspace's other subscriptions did not."
    )


class ExplanationOut(BaseModel):
    subscription_id: str
    webhook_id: str | None = Field(description="Null when the subscription was deleted.")
    channel_name: str | None = Field(description="The webhook's channel name, as it is now.")
    event_type: str | None
    matched_then: bool | None = Field(
        description="It took the event when it arrived; null when that is not known (more "
        "subscriptions matched than an event keeps ids of)."
    )
    matches_now: bool = Field(description="It would take the event now.")
    reason: str | None = Field(
        description="Why it would not take the event now, e.g. `project DEMO not in [OPS]`; "
        "null when it would."
    )
    changed_since: bool = Field(description="The subscription was edited after the event.")
    deleted: bool = Field(description="It took the event and has been deleted since.")


class ExplanationPageOut(BaseModel):
    items: list[ExplanationOut] = Field(
        description="The workspace's subscriptions as they are now, oldest first, checked "
        "against the event with the router's rules."
    )
    next_cursor: str | None
    note: str | None = Field(
        description="Set when the event was not routed (ignored, rejected, a second report of "
        "a comment, a routing failure), saying so."
    )


class JiraEventDetailOut(JiraEventOut):
    jira_event_id: str | None = Field(description="The X-Atlassian-Webhook-Identifier header.")
    headers: dict[str, str] = Field(description="The request headers that matter (no secrets).")
    envelope: JiraEvent | None = Field(description="The JiraEvent; null unless routed.")
    raw_body: str = Field(
        description="The body exactly as Jira sent it: its UTF-8 text, byte for byte."
    )
    raw_payload: Any = Field(
        description="raw_body parsed as JSON, for convenience. Not always the same as what was "
        "sent: a number beyond JSON's range (1e400) becomes null, and of repeated keys only the "
        "last is kept. Read raw_body for the exact body."
    )
    routing: RoutingOut | None = Field(
        description="What routing decided when the event arrived; null when it was not routed."
    )
    explanations: ExplanationPageOut = Field(
        description="The first page of explanations; read on with /explanations?cursor=."
    )


class ConnectionOut(BaseModel):
    webhook_url: str = Field(description="The URL to enter in Jira.")
    secret: str = Field(description="The secret that signs X-Hub-Signature (Cloud, Data Center).")
    ingest_token: str = Field(
        description="The bearer token for senders that cannot sign (Automation, old Server)."
    )


class JiraSiteOut(BaseModel):
    jira_base_url: str | None = Field(
        description="The Jira site that Open in Jira links may point to "
        "(scheme://host[:port][/context path]); learned from the first event signed with the "
        "secret that has an issue link, or set by an administrator. Null until then."
    )


class JiraSiteIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    jira_base_url: str | None = Field(
        max_length=2000,
        description=f"The Jira site's base URL, like {SITE_EXAMPLE}; null forgets it (the next "
        "signed event sets it again).",
    )

    @field_validator("jira_base_url")
    @classmethod
    def _a_site(cls, value: str | None) -> str | None:
        if value is None:
            return None
        try:
            return read_site(value)
        except NotASite as problem:
            raise ValueError(str(problem)) from None


class JiraSecurityOut(BaseModel):
    withhold_unknown_levels: bool = Field(
        description="Withhold comments on issues whose security level is unknown: Jira sends "
        "comments without the issue's level, which is then taken from earlier events of the "
        "issue; for an issue never seen, true posts such a comment only where a subscription "
        "allows any level, false posts it as unrestricted."
    )


class JiraSecurityIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    withhold_unknown_levels: StrictBool


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
    # parses (after the byte-order mark some senders put first, which the stored text keeps);
    # if a row was written some other way, the text itself is the honest answer.
    try:
        return _printable(json.loads(raw_body.removeprefix("\ufeff")))
    except (ValueError, RecursionError):
        return clean(raw_body)


@router.get("/events", responses=error_responses(*WORKSPACE_READ, *LIST))
def list_jira_events(
    ctx: WorkspaceAdmin,
    svc: ServicesDep,
    page: PageParams,
    status: Annotated[EventStatus | None, Query(description="Only events of this status.")] = None,
) -> JiraEventPage:
    """Received Jira events, newest first (duplicates of a delivery are not rows)."""
    with svc.db.transaction() as session:
        records, next_cursor = events.list_events(session, ctx.workspace_id, status, page)
        deliveries = events.delivery_ids(session, [r.id for r in records])
        items = [JiraEventOut(**_summary_fields(r, deliveries.get(r.id, []))) for r in records]
    return JiraEventPage(items=items, next_cursor=next_cursor)


@router.get("/events/{event_id}", responses=error_responses(*WORKSPACE_READ, "event_not_found"))
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
        deliveries = events.delivery_ids(session, [record.id]).get(record.id, [])
        return JiraEventDetailOut(
            **_summary_fields(record, deliveries),
            jira_event_id=record.jira_event_id,
            headers=dict(record.headers or {}),
            envelope=JiraEvent.model_validate(record.envelope) if record.envelope else None,
            # Intake stores the body's strict UTF-8 text, which clean() leaves as it is.
            raw_body=clean(record.raw_body),
            raw_payload=_raw_payload(record.raw_body),
            routing=_routing(record),
            explanations=_explanations(explain(session, record, Page(FIRST_PAGE, None))),
        )


def _routing(record: JiraEventRecord) -> RoutingOut | None:
    if record.matched_subscription_ids is None:
        return None
    return RoutingOut(
        matched_subscription_ids=list(record.matched_subscription_ids),
        matched_count=record.matched_count or len(record.matched_subscription_ids),
        not_matched_count=record.not_matched_count or 0,
    )


def _explanations(found: ExplanationPage) -> ExplanationPageOut:
    return ExplanationPageOut(
        items=[ExplanationOut(**item.as_json()) for item in found.items],
        next_cursor=found.next_cursor,
        note=found.note,
    )


@router.get(
    "/events/{event_id}/explanations",
    responses=error_responses(*WORKSPACE_READ, *LIST, "event_not_found"),
)
def list_jira_event_explanations(
    ctx: WorkspaceAdmin,
    svc: ServicesDep,
    event_id: Annotated[str, Path(max_length=64)],
    page: PageParams,
) -> ExplanationPageOut:
    """Why each subscription of the workspace did or did not take the event: worked out now,
    against the subscriptions as they are, next to whether each took it when it arrived."""
    with svc.db.transaction() as session:
        record = events.get_event(session, ctx.workspace_id, event_id)
        if record is None:
            raise ApiError(404, "event_not_found", "There is no such Jira event in this workspace.")
        return _explanations(explain(session, record, page))


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


@router.get("/connection", responses=error_responses(*WORKSPACE_READ))
def get_jira_connection(ctx: WorkspaceAdmin, svc: ServicesDep) -> ConnectionOut:
    """What to enter in Jira: the webhook URL, the secret and the ingest token."""
    with svc.db.transaction() as session:
        return _connection(svc, _workspace(session, ctx.workspace_id))


@router.post("/connection/regenerate", responses=error_responses(*WORKSPACE_CHANGE, *BODY))
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
        # Whatever holds the decrypted credentials in memory reads them again.
        bump_generation(session, workspace.id)
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


@router.get("/site", responses=error_responses(*WORKSPACE_READ))
def get_jira_site(ctx: WorkspaceAdmin, svc: ServicesDep) -> JiraSiteOut:
    """The Jira base URL that Open in Jira links are pinned to (null until known)."""
    with svc.db.transaction() as session:
        return JiraSiteOut(jira_base_url=_workspace(session, ctx.workspace_id).jira_base_url)


@router.put("/site", responses=error_responses(*WORKSPACE_CHANGE, *BODY))
def put_jira_site(
    ctx: WorkspaceAdmin, svc: ServicesDep, body: JiraSiteIn, request: Request
) -> JiraSiteOut:
    """Set, change or clear (null) the Jira base URL that Open in Jira links are pinned to.

    Events whose issue link is on another site get no link, and their notes say why. Cleared,
    it is learned again from the next event signed with the workspace's Jira secret.
    """
    with svc.db.transaction() as session:
        workspace = _workspace(session, ctx.workspace_id)
        set_jira_base_url(
            session,
            workspace,
            body.jira_base_url,
            actor=actor_of(ctx.principal),
            request=request_info(request),
        )
        return JiraSiteOut(jira_base_url=workspace.jira_base_url)


@router.get("/security", responses=error_responses(*WORKSPACE_READ))
def get_jira_security(ctx: WorkspaceAdmin, svc: ServicesDep) -> JiraSecurityOut:
    """How comments on issues whose security level is unknown are treated."""
    with svc.db.transaction() as session:
        workspace = _workspace(session, ctx.workspace_id)
        return JiraSecurityOut(withhold_unknown_levels=workspace.withhold_unknown_security)


@router.put("/security", responses=error_responses(*WORKSPACE_CHANGE, *BODY))
def put_jira_security(
    ctx: WorkspaceAdmin, svc: ServicesDep, body: JiraSecurityIn, request: Request
) -> JiraSecurityOut:
    """Withhold (true) or post (false) comments on issues whose security level is unknown.

    Issues with a known security level are posted only by subscriptions that allow the level,
    whatever this says. Audit-logged as `jira.security.updated`.
    """
    with svc.db.transaction() as session:
        workspace = _workspace(session, ctx.workspace_id)
        set_withhold_unknown_security(
            session,
            workspace,
            body.withhold_unknown_levels,
            actor=actor_of(ctx.principal),
            request=request_info(request),
        )
        return JiraSecurityOut(withhold_unknown_levels=workspace.withhold_unknown_security)
