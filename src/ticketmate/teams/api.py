"""The Teams API: webhooks (Teams channels), Test Connection and subscriptions.

Every endpoint is for workspace administrators (401 / 403 / 404 as everywhere). Webhook URLs
are write-only: answers show `url_masked` and `url_kind`, never the URL.

`POST …/subscriptions/preview` takes the body of `POST …/subscriptions` and answers what those
settings would have sent over the stored events of the last 7 days (routing/preview.py),
saving nothing.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query, Request, Response
from pydantic import BaseModel, ConfigDict, Field
from starlette.concurrency import run_in_threadpool

from ticketmate.audit.http import actor_of, request_info
from ticketmate.errors import (
    BODY,
    LIST,
    WORKSPACE_CHANGE,
    WORKSPACE_READ,
    error_responses,
)
from ticketmate.models import TeamsWebhook
from ticketmate.pagination import PageParams
from ticketmate.routing.preview import MAX_EVENTS, Preview
from ticketmate.security.auth import AdminContext, WorkspaceAdmin
from ticketmate.security.crypto import DecryptionError
from ticketmate.security.masking import mask_url
from ticketmate.state import Services, services
from ticketmate.teams import service
from ticketmate.teams.client import new_http_session
from ticketmate.teams.subscriptions import (
    SubscriptionCreate,
    SubscriptionUpdate,
    SubscriptionView,
    preview_subscription,
)
from ticketmate.teams.test_connection import ConnectionTestResult, record_test, send_test_message
from ticketmate.teams.webhooks import (
    TeamsError,
    UrlReplacement,
    WebhookCreate,
    WebhookUpdate,
    WebhookUrlText,
    WebhookView,
    url_replacement,
)
from ticketmate.timeutil import rfc3339, utcnow

log = logging.getLogger(__name__)


# What saving a webhook can answer beyond the workspace's own errors.
WEBHOOK_SAVE = (
    *WORKSPACE_CHANGE,
    *BODY,
    "invalid_webhook_url",
    "channel_name_taken",
    "duplicate_webhook_url",
    "conflict",
)


class UrlTestFailed(TeamsError):
    """A replacement URL that Teams did not accept the sample card at: not saved. Carries the
    test's result (scrubbed, as every test result is) for the edit form to show."""

    def __init__(self, result: ConnectionTestResult) -> None:
        message = (
            "The URL was not replaced: Teams did not accept the sample card at the new URL. "
            f"{result.message} Check the URL and try again, or save it untested "
            '("save_untested": true).'
        )
        super().__init__(
            422,
            "webhook_test_failed",
            message,
            [
                {
                    "field": "url",
                    "message": result.message,
                    "status_code": result.status_code,
                    "error_kind": result.error_kind,
                }
            ],
        )
        self.result = result


router = APIRouter(prefix="/api/v1/workspaces/{slug}/teams", tags=["teams"])
Svc = Annotated[Services, Depends(services)]
WebhookIdPath = Annotated[str, Path(max_length=64, description="The webhook's id.")]
SubscriptionIdPath = Annotated[str, Path(max_length=64, description="The subscription's id.")]


class WebhookList(BaseModel):
    items: list[WebhookView]
    next_cursor: str | None


class SubscriptionList(BaseModel):
    items: list[SubscriptionView]
    next_cursor: str | None


class PreviewedEventOut(BaseModel):
    event_id: str = Field(description="The stored event (`GET …/jira/events/{id}`).")
    received_at: str
    issue_key: str | None
    title: str = Field(description="The title its card would carry.")


class PreviewReasonOut(BaseModel):
    reason: str = Field(
        description="Why these settings would not take an event, as the router says it."
    )
    events: int = Field(description="How many of the events considered it explains.")


class SubscriptionPreviewOut(BaseModel):
    cards: int = Field(
        description=(
            "How many cards these settings would have sent, after combining or a digest; "
            "without either, one per matching event."
        )
    )
    considered: int = Field(description="How many stored events were looked at.")
    since: str = Field(description="The start of the window: 7 days ago, or the retention period.")
    capped: bool = Field(
        description=(
            f"More events were stored in the window than a preview reads ({MAX_EVENTS:,}); "
            "the newest were read."
        )
    )
    matching: list[PreviewedEventOut] = Field(
        description="Up to 20 of the matching events, newest first."
    )
    reasons: list[PreviewReasonOut] = Field(
        description="For the events that did not match, the most common reasons, most common first."
    )
    note: str = Field(description="How the cards were counted.")
    # Answered only when the settings combine or digest (the route leaves out what is unset),
    # so a preview without either answers as before.
    events_matched: int | None = Field(
        default=None,
        description=(
            "How many events matched, gathered into `cards`. Only when the settings combine "
            "updates or send a digest; otherwise `cards` is that number."
        ),
    )
    grouping: str | None = Field(
        default=None,
        description=(
            'How the matching events were gathered into cards, in words ("combining updates '
            'within 30 s", "as a daily digest at 09:00 (Europe/Berlin)"). Only with either.'
        ),
    )

    @classmethod
    def of(cls, result: Preview) -> SubscriptionPreviewOut:
        grouped = (
            {"events_matched": result.events_matched, "grouping": result.grouping}
            if result.grouping is not None
            else {}
        )
        return cls(
            cards=result.cards,
            considered=result.considered,
            since=rfc3339(result.since) or "",
            capped=result.capped,
            matching=[
                PreviewedEventOut(
                    event_id=e.event_id,
                    received_at=rfc3339(e.received_at) or "",
                    issue_key=e.issue_key,
                    title=e.title,
                )
                for e in result.matching
            ],
            reasons=[PreviewReasonOut(reason=r.reason, events=r.events) for r in result.reasons],
            note=result.note,
            **grouped,
        )


class WebhookTestIn(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    url: WebhookUrlText


class ConnectionTestOut(BaseModel):
    ok: bool = Field(description="Teams accepted the sample card.")
    status_code: int | None = Field(description="Teams' HTTP status; null when no answer came.")
    latency_ms: int
    message: str = Field(description="What the answer means, and what to do next.")


# -- webhooks ----------------------------------------------------------------------------------


@router.get(
    "/webhooks",
    summary="List the workspace's webhooks",
    responses=error_responses(*WORKSPACE_READ, *LIST),
)
def list_webhooks(
    ctx: WorkspaceAdmin,
    svc: Svc,
    page: PageParams,
    enabled: Annotated[bool | None, Query(description="Only enabled or disabled ones.")] = None,
) -> WebhookList:
    """The workspace's Teams webhooks, newest first; URLs appear only masked."""
    with svc.db.transaction() as session:
        webhooks, next_cursor = service.list_webhooks(
            session, ctx.workspace_id, page, enabled=enabled
        )
        return WebhookList(items=[WebhookView.of(w) for w in webhooks], next_cursor=next_cursor)


@router.post(
    "/webhooks",
    status_code=201,
    summary="Add a webhook",
    responses=error_responses(*WEBHOOK_SAVE),
)
def create_webhook(
    body: WebhookCreate, ctx: WorkspaceAdmin, svc: Svc, request: Request
) -> WebhookView:
    """Validate, encrypt and save a Teams webhook URL. The URL is never shown again."""
    with svc.db.transaction() as session:
        webhook = service.create_webhook(
            session,
            svc.keyring,
            ctx.workspace_id,
            body,
            allow_loopback=svc.settings.allow_loopback_webhooks,
            actor=actor_of(ctx.principal),
            request=request_info(request),
        )
        return WebhookView.of(webhook)


@router.post(
    "/webhooks/test",
    summary="Test a webhook URL before saving it",
    responses=error_responses(*WORKSPACE_CHANGE, *BODY, "invalid_webhook_url"),
)
async def run_url_test(
    body: WebhookTestIn, ctx: WorkspaceAdmin, svc: Svc, request: Request
) -> ConnectionTestOut:
    """Send the sample card to a URL that is not saved yet; the answer says what Teams said."""
    checked = service.check_webhook_url(
        body.url, allow_loopback=svc.settings.allow_loopback_webhooks
    )
    result = await _send(svc, checked.url, ctx.workspace_name, None)
    await run_in_threadpool(
        _record,
        svc,
        ctx,
        request,
        result,
        _Tested(None, checked.kind, mask_url(checked.url), None),
    )
    return answer_of(result)


@router.get(
    "/webhooks/{webhook_id}",
    summary="Get a webhook",
    responses=error_responses(*WORKSPACE_READ, "webhook_not_found"),
)
def get_webhook(webhook_id: WebhookIdPath, ctx: WorkspaceAdmin, svc: Svc) -> WebhookView:
    """One webhook, with its health."""
    with svc.db.transaction() as session:
        return WebhookView.of(service.get_webhook(session, ctx.workspace_id, webhook_id))


@router.patch(
    "/webhooks/{webhook_id}",
    summary="Change a webhook",
    responses=error_responses(*WEBHOOK_SAVE, "webhook_not_found", "webhook_test_failed"),
)
async def update_webhook(
    webhook_id: WebhookIdPath,
    body: WebhookUpdate,
    ctx: WorkspaceAdmin,
    svc: Svc,
    request: Request,
) -> WebhookView:
    """Change the fields given. A new `url` is validated again and is write-only too.

    A new `url` is first tested with the sample card, as Test Connection does, and saved only
    when Teams accepts it; otherwise the answer is 422 `webhook_test_failed` with Teams'
    answer (scrubbed) and the saved URL stays. `"save_untested": true` saves it without the
    test. Either way the audit log records `url_changed` and `url_tested`, never the URL."""
    view, _tested = await change_webhook(svc, ctx, request, webhook_id, body)
    return view


async def change_webhook(
    svc: Services, ctx: AdminContext, request: Request, webhook_id: str, body: WebhookUpdate
) -> tuple[WebhookView, bool | None]:
    """PATCH's work, for the edit form too: (the webhook as saved, whether a new URL was
    tested first — None when the URL did not change). Raises UrlTestFailed, saving nothing,
    when Teams does not accept the sample card at a new URL."""
    tested: bool | None = None
    replacement = None
    if body.url is not None:
        replacement = await run_in_threadpool(_replacement, svc, ctx, webhook_id, body)
    if replacement is not None and body.save_untested:
        tested = False
    elif replacement is not None:
        checked = replacement.checked
        result = await _send(svc, checked.url, ctx.workspace_name, replacement.channel_name)
        await run_in_threadpool(
            _record,
            svc,
            ctx,
            request,
            result,
            _Tested(None, checked.kind, mask_url(checked.url), None),
        )
        if not result.ok:
            raise UrlTestFailed(result)
        tested = True
    view = await run_in_threadpool(_save_update, svc, ctx, request, webhook_id, body, tested)
    return view, tested


def _replacement(
    svc: Services, ctx: AdminContext, webhook_id: str, body: WebhookUpdate
) -> UrlReplacement | None:
    with svc.db.transaction() as session:
        return url_replacement(
            session,
            svc.keyring,
            ctx.workspace_id,
            webhook_id,
            body,
            allow_loopback=svc.settings.allow_loopback_webhooks,
        )


def _save_update(
    svc: Services,
    ctx: AdminContext,
    request: Request,
    webhook_id: str,
    body: WebhookUpdate,
    tested: bool | None,
) -> WebhookView:
    with svc.db.transaction() as session:
        webhook = service.update_webhook(
            session,
            svc.keyring,
            ctx.workspace_id,
            webhook_id,
            body,
            allow_loopback=svc.settings.allow_loopback_webhooks,
            actor=actor_of(ctx.principal),
            request=request_info(request),
            url_tested=tested,
        )
        return WebhookView.of(webhook)


@router.delete(
    "/webhooks/{webhook_id}",
    status_code=204,
    summary="Delete a webhook",
    responses=error_responses(*WORKSPACE_CHANGE, "webhook_not_found", "webhook_in_use"),
)
def delete_webhook(
    webhook_id: WebhookIdPath,
    ctx: WorkspaceAdmin,
    svc: Svc,
    request: Request,
    cascade: Annotated[
        bool, Query(description="Also delete the subscriptions that use this webhook.")
    ] = False,
) -> Response:
    """Refused with 409 (listing them) while subscriptions use the webhook, unless cascade."""
    with svc.db.transaction() as session:
        service.delete_webhook(
            session,
            ctx.workspace_id,
            webhook_id,
            cascade=cascade,
            actor=actor_of(ctx.principal),
            request=request_info(request),
        )
    return Response(status_code=204)


@router.post(
    "/webhooks/{webhook_id}/test",
    summary="Test a saved webhook",
    responses=error_responses(*WORKSPACE_CHANGE, "webhook_not_found", "webhook_url_unreadable"),
)
async def run_webhook_test(
    webhook_id: WebhookIdPath, ctx: WorkspaceAdmin, svc: Svc, request: Request
) -> ConnectionTestOut:
    """Send the sample card to a saved webhook; its health fields record the outcome."""
    tested, url = await run_in_threadpool(_load_for_test, svc, ctx, webhook_id)
    result = await _send(svc, url, ctx.workspace_name, tested.channel_name, tested.url_family)
    await run_in_threadpool(_record, svc, ctx, request, result, tested)
    return answer_of(result)


# -- Test Connection helpers -------------------------------------------------------------------


@dataclass(frozen=True)
class _Tested:
    webhook_id: str | None
    url_kind: str
    url_masked: str
    channel_name: str | None
    url_family: str | None = None  # a saved webhook's


async def _send(
    svc: Services,
    url: str,
    workspace_name: str,
    channel_name: str | None,
    url_family: str | None = None,
) -> ConnectionTestResult:
    # A session per test: tests are rare, and the worker's pooled session is not ours to share.
    async with new_http_session() as http:
        return await send_test_message(
            http,
            url,
            workspace_name=workspace_name,
            timeout_seconds=svc.settings.delivery_timeout_seconds,
            channel_name=channel_name,
            url_family=url_family,
        )


def _load_for_test(svc: Services, ctx: AdminContext, webhook_id: str) -> tuple[_Tested, str]:
    with svc.db.transaction() as session:
        webhook = service.get_webhook(session, ctx.workspace_id, webhook_id)
        try:
            url = service.decrypt_webhook_url(svc.keyring, webhook)
        except DecryptionError as exc:
            log.error("teams webhook %s: the saved URL cannot be decrypted: %s", webhook.id, exc)
            # 409, not 500: the webhook's stored state is what stands in the way, and an
            # administrator can clear it (fix the keys, or save the URL again).
            raise TeamsError(
                409,
                "webhook_url_unreadable",
                "The saved URL of this webhook cannot be decrypted: the encryption key is wrong "
                "or the stored data was altered. Check TICKETMATE_ENCRYPTION_KEYS, or save the "
                "webhook's URL again.",
            ) from None
        tested = _Tested(
            webhook.id,
            webhook.url_kind,
            webhook.url_masked,
            webhook.channel_name,
            webhook.url_family,
        )
        return tested, url


def _record(
    svc: Services,
    ctx: AdminContext,
    request: Request,
    result: ConnectionTestResult,
    tested: _Tested,
) -> None:
    with svc.db.transaction() as session:
        # The webhook may have been deleted while Teams was answering; the test is logged anyway.
        webhook = session.get(TeamsWebhook, tested.webhook_id) if tested.webhook_id else None
        if webhook is not None and webhook.workspace_id != ctx.workspace_id:
            webhook = None
        record_test(
            session,
            workspace_id=ctx.workspace_id,
            result=result,
            url_kind=tested.url_kind,
            url_masked=tested.url_masked,
            webhook=webhook,
            actor=actor_of(ctx.principal),
            request=request_info(request),
        )


def answer_of(result: ConnectionTestResult) -> ConnectionTestOut:
    return ConnectionTestOut(
        ok=result.ok,
        status_code=result.status_code,
        latency_ms=result.latency_ms,
        message=result.message,
    )


# -- subscriptions -----------------------------------------------------------------------------


@router.get(
    "/subscriptions",
    summary="List the workspace's subscriptions",
    responses=error_responses(*WORKSPACE_READ, *LIST),
)
def list_subscriptions(
    ctx: WorkspaceAdmin,
    svc: Svc,
    page: PageParams,
    webhook_id: Annotated[
        str | None, Query(max_length=64, description="Only this webhook's subscriptions.")
    ] = None,
    event_type: Annotated[
        str | None, Query(max_length=32, description="Only subscriptions to this event type.")
    ] = None,
) -> SubscriptionList:
    """Which events go to which channel, newest first."""
    with svc.db.transaction() as session:
        rows, next_cursor = service.list_subscriptions(
            session, ctx.workspace_id, page, webhook_id=webhook_id, event_type=event_type
        )
        return SubscriptionList(
            items=[SubscriptionView.of(s, channel) for s, channel in rows],
            next_cursor=next_cursor,
        )


@router.post(
    "/subscriptions",
    status_code=201,
    summary="Add a subscription",
    responses=error_responses(*WORKSPACE_CHANGE, *BODY),
)
def create_subscription(
    body: SubscriptionCreate, ctx: WorkspaceAdmin, svc: Svc, request: Request
) -> SubscriptionView:
    """Send one event type to one webhook of this workspace, narrowed by filters."""
    with svc.db.transaction() as session:
        subscription, channel_name = service.create_subscription(
            session,
            ctx.workspace_id,
            body,
            actor=actor_of(ctx.principal),
            request=request_info(request),
        )
        return SubscriptionView.of(subscription, channel_name)


@router.post(
    "/subscriptions/preview",
    summary="Preview a subscription before saving it",
    responses=error_responses(*WORKSPACE_CHANGE, *BODY),
    # `events_matched` and `grouping` only when the settings combine or digest.
    response_model_exclude_unset=True,
)
def run_subscription_preview(
    body: SubscriptionCreate, ctx: WorkspaceAdmin, svc: Svc
) -> SubscriptionPreviewOut:
    """What a subscription with this body (as for `POST …/subscriptions`) would have sent over
    the stored events of the last 7 days, or of the retention period if it is shorter: the
    number of cards (after combining or a digest, with `events_matched` and `grouping` then),
    up to 20 of the matching events with their card titles, and the most common reasons the
    others would not match. It uses the router's own rules. Nothing is saved and nothing is
    audited."""
    with svc.db.transaction() as session:
        result = preview_subscription(
            session,
            ctx.workspace_id,
            body,
            now=utcnow(),
            retention_days=svc.settings.retention_days,
        )
        return SubscriptionPreviewOut.of(result)


@router.get(
    "/subscriptions/{subscription_id}",
    summary="Get a subscription",
    responses=error_responses(*WORKSPACE_READ, "subscription_not_found"),
)
def get_subscription(
    subscription_id: SubscriptionIdPath, ctx: WorkspaceAdmin, svc: Svc
) -> SubscriptionView:
    with svc.db.transaction() as session:
        subscription = service.get_subscription(session, ctx.workspace_id, subscription_id)
        return SubscriptionView.of(subscription, service.channel_name_of(session, subscription))


@router.patch(
    "/subscriptions/{subscription_id}",
    summary="Change a subscription",
    responses=error_responses(*WORKSPACE_CHANGE, *BODY, "subscription_not_found"),
)
def update_subscription(
    subscription_id: SubscriptionIdPath,
    body: SubscriptionUpdate,
    ctx: WorkspaceAdmin,
    svc: Svc,
    request: Request,
) -> SubscriptionView:
    """Change the fields given; `filters`, when given, replaces all filters."""
    with svc.db.transaction() as session:
        subscription, channel_name = service.update_subscription(
            session,
            ctx.workspace_id,
            subscription_id,
            body,
            actor=actor_of(ctx.principal),
            request=request_info(request),
        )
        return SubscriptionView.of(subscription, channel_name)


@router.delete(
    "/subscriptions/{subscription_id}",
    status_code=204,
    summary="Delete a subscription",
    responses=error_responses(*WORKSPACE_CHANGE, "subscription_not_found"),
)
def delete_subscription(
    subscription_id: SubscriptionIdPath, ctx: WorkspaceAdmin, svc: Svc, request: Request
) -> Response:
    with svc.db.transaction() as session:
        service.delete_subscription(
            session,
            ctx.workspace_id,
            subscription_id,
            actor=actor_of(ctx.principal),
            request=request_info(request),
        )
    return Response(status_code=204)
