"""Stored Jira events: the queries intake and the events API share, kept apart from HTTP."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from datetime import datetime, timedelta

from sqlalchemy import Select, func, select, text
from sqlalchemy.orm import Session, load_only

from ticketmate.ids import id_floor
from ticketmate.models import IntegrationDelivery, JiraEventRecord
from ticketmate.pagination import Page, fetch_page

# How far back a second report of the same comment is looked for. Jira sends both reports at
# once, but retries may deliver one of them up to ~30 minutes late.
DEDUPE_WINDOW = timedelta(hours=24)


def find_by_jira_event_id(
    session: Session, workspace_id: str, jira_event_id: str
) -> JiraEventRecord | None:
    return session.scalar(
        select(JiraEventRecord).where(
            JiraEventRecord.workspace_id == workspace_id,
            JiraEventRecord.jira_event_id == jira_event_id,
        )
    )


# Transaction-scoped: released by the commit (or rollback) of the transaction that stores.
DEDUPE_LOCK = text("SELECT pg_advisory_xact_lock(hashtext(:key))")


def dedupe_lock_key(workspace_id: str, dedupe_key: str) -> str:
    return f"jira-dedupe:{workspace_id}:{dedupe_key}"


def lock_dedupe_key(session: Session, workspace_id: str, dedupe_key: str) -> None:
    """Serialise the transactions that store reports sharing a dedupe key.

    Jira fires both reports of a comment at the same moment; without the lock both could see
    "no earlier report" and both be routed. On PostgreSQL a transaction-scoped advisory lock
    queues them; SQLite transactions here are BEGIN IMMEDIATE, one writer at a time already.
    The intake writer takes the same locks, in sorted order, for a whole batch.
    """
    if session.get_bind().dialect.name == "postgresql":
        session.execute(DEDUPE_LOCK, {"key": dedupe_lock_key(workspace_id, dedupe_key)})


def stored_dedupe_key(dedupe_key: str) -> str:
    """The key as the column keeps it: as is when short, else its SHA-256."""
    if len(dedupe_key) <= 100:
        return dedupe_key
    return "sha256:" + hashlib.sha256(dedupe_key.encode()).hexdigest()


def earlier_report(
    session: Session, workspace_id: str, dedupe_key: str, since: datetime
) -> str | None:
    """The id of the first routed event since `since` that carries the same dedupe key
    (an indexed lookup on (workspace_id, dedupe_key))."""
    row = session.execute(
        earlier_reports_query(workspace_id, [stored_dedupe_key(dedupe_key)], since)
    ).first()
    return None if row is None else str(row.id)


def earlier_reports_query(
    workspace_id: str, stored_keys: Sequence[str], since: datetime
) -> Select[str | None, str]:
    """For each of `stored_keys` (as stored_dedupe_key gives them) that a routed event since
    `since` carries: the key and the id of the first such event."""
    return (
        select(JiraEventRecord.dedupe_key, func.min(JiraEventRecord.id).label("id"))
        .where(
            JiraEventRecord.workspace_id == workspace_id,
            JiraEventRecord.dedupe_key.in_(list(stored_keys)),
            JiraEventRecord.id >= id_floor(since),
            JiraEventRecord.status == "routed",
        )
        .group_by(JiraEventRecord.dedupe_key)
    )


def delivery_ids(session: Session, event_ids: Sequence[str]) -> dict[str, list[str]]:
    """The ids of the deliveries enqueued for each event, for the events list."""
    found: dict[str, list[str]] = {event_id: [] for event_id in event_ids}
    if not event_ids:
        return found
    rows = session.execute(
        select(IntegrationDelivery.event_id, IntegrationDelivery.id)
        .where(IntegrationDelivery.event_id.in_(list(event_ids)))
        .order_by(IntegrationDelivery.id)
    )
    for event_id, delivery_id in rows:
        found[event_id].append(delivery_id)
    return found


def list_events(
    session: Session, workspace_id: str, status: str | None, page: Page
) -> tuple[Sequence[JiraEventRecord], str | None]:
    # Lists never show bodies, headers or envelopes: leave them (up to 1 MiB each) unread.
    # The routing outcome (matched ids and counts) is small and is what the lists show.
    query = (
        select(JiraEventRecord)
        .options(
            load_only(
                JiraEventRecord.id,
                JiraEventRecord.received_at,
                JiraEventRecord.jira_event,
                JiraEventRecord.event_types,
                JiraEventRecord.issue_key,
                JiraEventRecord.summary,
                JiraEventRecord.status,
                JiraEventRecord.reason,
                JiraEventRecord.matched_subscription_ids,
                JiraEventRecord.matched_count,
                JiraEventRecord.not_matched_count,
            )
        )
        .where(JiraEventRecord.workspace_id == workspace_id)
    )
    if status is not None:
        query = query.where(JiraEventRecord.status == status)
    rows, next_cursor = fetch_page(session, query, JiraEventRecord.id, page)
    return [row[0] for row in rows], next_cursor


def get_event(session: Session, workspace_id: str, event_id: str) -> JiraEventRecord | None:
    return session.scalar(
        select(JiraEventRecord).where(
            JiraEventRecord.workspace_id == workspace_id, JiraEventRecord.id == event_id
        )
    )
