"""Reading the delivery log and putting dead letters back in the queue."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import delete, func, select, update
from sqlalchemy.orm import Session
from sqlalchemy.sql.elements import ColumnElement

from ticketmate.audit import service as audit
from ticketmate.models import DeliveryAttempt, IntegrationDelivery
from ticketmate.pagination import Page, fetch_page

D = IntegrationDelivery
RETRYABLE = ("dead_letter", "skipped")


class DeliveryNotFound(LookupError):
    pass


class DeliveryNotRetryable(ValueError):
    pass


@dataclass(frozen=True)
class DeliveryFilter:
    status: str | None = None
    webhook_id: str | None = None
    event_type: str | None = None
    since: datetime | None = None
    until: datetime | None = None


def _conditions(workspace_id: str, f: DeliveryFilter) -> list[ColumnElement[bool]]:
    conditions = [D.workspace_id == workspace_id]
    if f.status:
        conditions.append(D.status == f.status)
    if f.webhook_id:
        conditions.append(D.webhook_id == f.webhook_id)
    if f.event_type:
        conditions.append(D.event_type == f.event_type)
    if f.since:
        conditions.append(D.created_at >= f.since)
    if f.until:
        conditions.append(D.created_at < f.until)
    return conditions


def list_deliveries(
    session: Session, workspace_id: str, f: DeliveryFilter, page: Page
) -> tuple[list[IntegrationDelivery], str | None]:
    query = select(D).where(*_conditions(workspace_id, f))
    rows, next_cursor = fetch_page(session, query, D.id, page)
    return [row[0] for row in rows], next_cursor


def get_delivery(session: Session, workspace_id: str, delivery_id: str) -> IntegrationDelivery:
    delivery = session.get(D, delivery_id)
    if delivery is None or delivery.workspace_id != workspace_id:
        raise DeliveryNotFound(delivery_id)
    return delivery


def attempts_of(session: Session, delivery_id: str) -> list[DeliveryAttempt]:
    return list(
        session.scalars(
            select(DeliveryAttempt)
            .where(DeliveryAttempt.delivery_id == delivery_id)
            .order_by(DeliveryAttempt.number, DeliveryAttempt.started_at)
        )
    )


def folded_into_this(session: Session, delivery_id: str) -> list[str]:
    """The deliveries storm control folded into this summary, oldest first."""
    return list(session.scalars(select(D.id).where(D.folded_into == delivery_id).order_by(D.id)))


def folded_counts(session: Session, delivery_ids: list[str]) -> dict[str, int]:
    """How many deliveries were folded into each of these (only those with some)."""
    if not delivery_ids:
        return {}
    rows = session.execute(
        select(D.folded_into, func.count())
        .where(D.folded_into.in_(delivery_ids))
        .group_by(D.folded_into)
    ).all()
    return {str(summary): int(n) for summary, n in rows}


def _requeue_values(now: datetime) -> dict[str, Any]:
    return {
        "status": "pending",
        "next_attempt_at": now,
        "locked_until": None,
        "worker_id": None,
        "attempts_before_replay": D.attempt_count,
        "updated_at": now,
    }


def retry_one(
    session: Session,
    *,
    workspace_id: str,
    delivery_id: str,
    actor: audit.Actor,
    request: audit.RequestInfo | None,
    now: datetime,
) -> IntegrationDelivery:
    """Put one dead letter (or skipped delivery) back to pending; its attempts are kept."""
    delivery = get_delivery(session, workspace_id, delivery_id)
    if delivery.status not in RETRYABLE:
        raise DeliveryNotRetryable(
            "Only dead letters and skipped deliveries can be retried; "
            f"this one is {delivery.status}."
        )
    session.execute(
        update(D)
        .where(D.id == delivery.id)
        .values(**_requeue_values(now))
        .execution_options(synchronize_session=False)
    )
    audit.record(
        session,
        workspace_id=workspace_id,
        actor=actor,
        action="teams.delivery.retried",
        target_type="delivery",
        target_id=delivery.id,
        details={"previous_status": delivery.status, "channel_name": delivery.channel_name},
        request=request,
    )
    session.refresh(delivery)
    return delivery


def retry_bulk(
    session: Session,
    *,
    workspace_id: str,
    f: DeliveryFilter,
    actor: audit.Actor,
    request: audit.RequestInfo | None,
    now: datetime,
) -> int:
    """Put every matching dead letter back to pending; returns how many."""
    status = f.status or "dead_letter"
    if status not in RETRYABLE:
        raise DeliveryNotRetryable("Only dead letters and skipped deliveries can be retried.")
    scope = DeliveryFilter(status, f.webhook_id, None, f.since, f.until)
    result = session.execute(
        update(D)
        .where(*_conditions(workspace_id, scope))
        .values(**_requeue_values(now))
        .execution_options(synchronize_session=False)
    )
    count = int(result.rowcount or 0)  # type: ignore[attr-defined]
    audit.record(
        session,
        workspace_id=workspace_id,
        actor=actor,
        action="teams.deliveries.retried_bulk",
        target_type="workspace",
        target_id=workspace_id,
        details={
            "status": status,
            "webhook_id": f.webhook_id,
            "since": f.since.isoformat() if f.since else None,
            "until": f.until.isoformat() if f.until else None,
            "requeued": count,
        },
        request=request,
    )
    return count


def purge_dead_letters(
    session: Session, *, workspace_id: str | None, before: datetime | None
) -> int:
    """Delete dead letters (and their attempts), optionally of one workspace or older ones."""
    query = select(D.id).where(D.status == "dead_letter")
    if workspace_id:
        query = query.where(D.workspace_id == workspace_id)
    if before:
        query = query.where(D.updated_at < before)
    ids = list(session.scalars(query))
    if ids:
        session.execute(delete(DeliveryAttempt).where(DeliveryAttempt.delivery_id.in_(ids)))
        session.execute(delete(D).where(D.id.in_(ids)))
    return len(ids)
