"""The Delivery Log over HTTP: list, inspect, and retry deliveries to Teams."""

from __future__ import annotations

import json
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query, Request
from pydantic import BaseModel, ConfigDict, Field

from ticketmate.audit.http import actor_of, request_info
from ticketmate.delivery import service
from ticketmate.delivery.embedded import wake_worker
from ticketmate.errors import (
    BODY,
    LIST,
    WORKSPACE_CHANGE,
    WORKSPACE_READ,
    ApiError,
    error_responses,
)
from ticketmate.jira.events import EventType
from ticketmate.models import DeliveryAttempt, IntegrationDelivery
from ticketmate.pagination import PageParams
from ticketmate.security.auth import WorkspaceAdmin
from ticketmate.state import Services, services
from ticketmate.timeutil import Rfc3339Time, rfc3339, utcnow

router = APIRouter(prefix="/api/v1/workspaces/{slug}/teams/deliveries", tags=["delivery log"])

# `folded`: another delivery's card carried its event (a storm summary, a combined card or a
# digest: that delivery's `card_kind`), the delivery `folded_into`. `held`: waiting for its
# subscription's digest.
Status = Literal["pending", "in_flight", "delivered", "dead_letter", "skipped", "folded", "held"]


class DeliveryOut(BaseModel):
    id: str
    status: str
    event_type: str
    webhook_id: str | None
    channel_name: str
    event_id: str
    issue_key: str | None
    summary: str | None
    attempt_count: int
    last_status_code: int | None
    last_error: str | None
    created_at: str
    delivered_at: str | None
    next_attempt_at: str | None
    # Storm control: the summary delivery that carried this one's event (status `folded`),
    # and, on a summary, how many deliveries were folded into it besides its own event.
    folded_into: str | None = None
    folded_count: int = 0
    card_kind: str | None = Field(
        default=None,
        description=(
            "What the card stands for when it carries other deliveries: combined (updates to "
            "one issue), storm (a channel's backlog) or digest."
        ),
    )
    combine_until: str | None = Field(
        default=None, description="A combined card waits for more updates to its issue until then."
    )
    digest_of: str | None = Field(
        default=None, description="The digest subscription that holds or held this delivery."
    )


class AttemptOut(BaseModel):
    number: int
    started_at: str
    duration_ms: int
    status_code: int | None
    error_kind: str | None
    response_excerpt: str | None
    outcome: str
    message: str | None


class DeliveryDetailOut(DeliveryOut):
    attempts: list[AttemptOut]
    message: dict[str, Any]
    subscription_ids: list[str]
    folded: list[str] = Field(
        default_factory=list,
        description="On a card that carries others: the deliveries folded into it, oldest first.",
    )


class DeliveryListOut(BaseModel):
    items: list[DeliveryOut]
    next_cursor: str | None


class BulkRetryIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    status: Literal["dead_letter", "skipped"] = "dead_letter"
    webhook_id: str | None = None
    since: Rfc3339Time | None = None
    until: Rfc3339Time | None = None


class BulkRetryOut(BaseModel):
    requeued: int


def delivery_out(d: IntegrationDelivery, folded_count: int = 0) -> DeliveryOut:
    waiting = d.status in ("pending", "in_flight")
    return DeliveryOut(
        id=d.id,
        status=d.status,
        event_type=d.event_type,
        webhook_id=d.webhook_id,
        channel_name=d.channel_name,
        event_id=d.event_id,
        issue_key=d.issue_key,
        summary=d.summary,
        attempt_count=d.attempt_count,
        last_status_code=d.last_status_code,
        last_error=d.last_error,
        created_at=rfc3339(d.created_at) or "",
        delivered_at=rfc3339(d.delivered_at),
        next_attempt_at=rfc3339(d.next_attempt_at) if waiting else None,
        folded_into=d.folded_into,
        folded_count=folded_count,
        card_kind=d.card_kind,
        combine_until=rfc3339(d.combine_until) if d.combine_until and waiting else None,
        digest_of=d.digest_of,
    )


def attempt_out(a: DeliveryAttempt) -> AttemptOut:
    return AttemptOut(
        number=a.number,
        started_at=rfc3339(a.started_at) or "",
        duration_ms=a.duration_ms,
        status_code=a.status_code,
        error_kind=a.error_kind,
        response_excerpt=a.response_excerpt,
        outcome=a.outcome,
        message=a.message,
    )


def detail_out(
    d: IntegrationDelivery, attempts: list[DeliveryAttempt], folded: list[str] | None = None
) -> DeliveryDetailOut:
    folded = folded or []
    return DeliveryDetailOut(
        **delivery_out(d, len(folded)).model_dump(),
        attempts=[attempt_out(a) for a in attempts],
        message=json.loads(d.message),
        subscription_ids=list(d.subscription_ids or []),
        folded=folded,
    )


def _not_found() -> ApiError:
    return ApiError(404, "delivery_not_found", "There is no such delivery in this workspace.")


Svc = Annotated[Services, Depends(services)]


@router.get("", responses=error_responses(*WORKSPACE_READ, *LIST))
def list_deliveries(
    ctx: WorkspaceAdmin,
    svc: Svc,
    page: PageParams,
    status: Annotated[Status | None, Query()] = None,
    webhook_id: Annotated[str | None, Query(max_length=26)] = None,
    event_type: Annotated[EventType | None, Query()] = None,
    since: Annotated[Rfc3339Time | None, Query()] = None,
    until: Annotated[Rfc3339Time | None, Query()] = None,
) -> DeliveryListOut:
    """Deliveries to Teams, newest first."""
    f = service.DeliveryFilter(
        status, webhook_id, event_type.value if event_type else None, since, until
    )
    with svc.db.transaction() as session:
        items, next_cursor = service.list_deliveries(session, ctx.workspace_id, f, page)
        counts = service.folded_counts(session, [d.id for d in items])
        return DeliveryListOut(
            items=[delivery_out(d, counts.get(d.id, 0)) for d in items], next_cursor=next_cursor
        )


@router.get("/{delivery_id}", responses=error_responses(*WORKSPACE_READ, "delivery_not_found"))
def get_delivery(ctx: WorkspaceAdmin, svc: Svc, delivery_id: str) -> DeliveryDetailOut:
    """One delivery with every attempt and the exact message sent."""
    with svc.db.transaction() as session:
        try:
            delivery = service.get_delivery(session, ctx.workspace_id, delivery_id)
        except service.DeliveryNotFound:
            raise _not_found() from None
        return detail_out(
            delivery,
            service.attempts_of(session, delivery.id),
            service.folded_into_this(session, delivery.id),
        )


@router.post(
    "/retry",
    status_code=202,
    responses=error_responses(*WORKSPACE_CHANGE, *BODY, "not_retryable"),
)
def retry_bulk(ctx: WorkspaceAdmin, svc: Svc, body: BulkRetryIn, request: Request) -> BulkRetryOut:
    """Put every matching dead letter back in the queue (attempt history kept)."""
    try:
        with svc.db.transaction() as session:
            count = service.retry_bulk(
                session,
                workspace_id=ctx.workspace_id,
                f=service.DeliveryFilter(
                    body.status, body.webhook_id, None, body.since, body.until
                ),
                actor=actor_of(ctx.principal),
                request=request_info(request),
                now=utcnow(),
            )
    except service.DeliveryNotRetryable as exc:
        raise ApiError(409, "not_retryable", str(exc)) from None
    if count:
        wake_worker(svc)
    return BulkRetryOut(requeued=count)


@router.post(
    "/{delivery_id}/retry",
    status_code=202,
    responses=error_responses(*WORKSPACE_CHANGE, "delivery_not_found", "not_retryable"),
)
def retry_one(ctx: WorkspaceAdmin, svc: Svc, delivery_id: str, request: Request) -> DeliveryOut:
    """Put one dead letter back in the queue now (attempt history kept)."""
    try:
        with svc.db.transaction() as session:
            delivery = service.retry_one(
                session,
                workspace_id=ctx.workspace_id,
                delivery_id=delivery_id,
                actor=actor_of(ctx.principal),
                request=request_info(request),
                now=utcnow(),
            )
            body = delivery_out(delivery)
    except service.DeliveryNotFound:
        raise _not_found() from None
    except service.DeliveryNotRetryable as exc:
        raise ApiError(409, "not_retryable", str(exc)) from None
    wake_worker(svc)
    return body
