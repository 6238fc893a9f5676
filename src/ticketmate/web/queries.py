"""Read-only queries the admin pages need beyond what the services offer.

Everything here only reads, scoped to one workspace, and stays portable between SQLite and
PostgreSQL (no date functions in SQL: times are bucketed in Python).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from ticketmate.jira.service import list_events
from ticketmate.models import (
    AuditEntry,
    IntegrationDelivery,
    JiraEventRecord,
    TeamsSubscription,
    TeamsWebhook,
)
from ticketmate.pagination import Page
from ticketmate.routing.explanation import SubscriptionNow, subscriptions_now
from ticketmate.security.urls import URL_FAMILIES
from ticketmate.teams.webhooks import count_needing_new_url

D = IntegrationDelivery


@dataclass(frozen=True)
class WebhookChoice:
    id: str
    channel_name: str
    enabled: bool


def webhook_choices(session: Session, workspace_id: str) -> list[WebhookChoice]:
    """Every webhook of the workspace by channel name, for selects and filters."""
    rows = session.execute(
        select(TeamsWebhook.id, TeamsWebhook.channel_name, TeamsWebhook.enabled)
        .where(TeamsWebhook.workspace_id == workspace_id)
        .order_by(func.lower(TeamsWebhook.channel_name))
    ).all()
    return [WebhookChoice(r.id, r.channel_name, bool(r.enabled)) for r in rows]


@dataclass(frozen=True)
class TeamsStatus:
    webhooks: int
    webhooks_enabled: int
    subscriptions: int
    subscriptions_enabled: int
    last_delivery: IntegrationDelivery | None
    # Webhooks whose URL Microsoft has retired or is retiring: (the family's label, how many).
    needing_new_url: tuple[tuple[str, int], ...] = ()


def _count_by_enabled(session: Session, model: Any, workspace_id: str) -> tuple[int, int]:
    rows = session.execute(
        select(model.enabled, func.count())
        .where(model.workspace_id == workspace_id)
        .group_by(model.enabled)
    ).all()
    counts = {bool(enabled): int(n) for enabled, n in rows}
    return counts.get(True, 0) + counts.get(False, 0), counts.get(True, 0)


def teams_status(session: Session, workspace_id: str) -> TeamsStatus:
    """What the Microsoft Teams card shows: how much is configured, and the last outcome."""
    webhooks, webhooks_enabled = _count_by_enabled(session, TeamsWebhook, workspace_id)
    subscriptions, subscriptions_enabled = _count_by_enabled(
        session, TeamsSubscription, workspace_id
    )
    # The latest delivery that has an outcome; a queued one says nothing about health yet.
    last = session.scalar(
        select(D)
        .where(D.workspace_id == workspace_id, D.status.in_(("delivered", "dead_letter")))
        .order_by(D.updated_at.desc(), D.id.desc())
        .limit(1)
    )
    return TeamsStatus(
        webhooks,
        webhooks_enabled,
        subscriptions,
        subscriptions_enabled,
        last,
        tuple(
            (URL_FAMILIES[family].label, count)
            for family, count in sorted(count_needing_new_url(session, workspace_id).items())
        ),
    )


@dataclass(frozen=True)
class QueueDepth:
    pending: int
    in_flight: int

    @property
    def total(self) -> int:
        return self.pending + self.in_flight


def queue_depth(session: Session, workspace_id: str) -> QueueDepth:
    rows = session.execute(
        select(D.status, func.count())
        .where(D.workspace_id == workspace_id, D.status.in_(("pending", "in_flight")))
        .group_by(D.status)
    ).all()
    counts = {status: int(n) for status, n in rows}
    return QueueDepth(counts.get("pending", 0), counts.get("in_flight", 0))


def dead_letter_counts(session: Session, workspace_id: str) -> dict[str | None, int]:
    """Dead letters per webhook id (None: the webhook was deleted)."""
    rows = session.execute(
        select(D.webhook_id, func.count())
        .where(D.workspace_id == workspace_id, D.status == "dead_letter")
        .group_by(D.webhook_id)
    ).all()
    return {webhook_id: int(n) for webhook_id, n in rows}


@dataclass(frozen=True)
class ChartRow:
    status: str
    attempt_count: int
    delivered_at: datetime | None
    updated_at: datetime


def chart_rows(session: Session, workspace_id: str, since: datetime) -> list[ChartRow]:
    """Deliveries that reached an outcome (or failed an attempt) since `since`, for the chart.

    One query; the hour of each row is worked out in Python so that the SQL is the same on
    SQLite and PostgreSQL.
    """
    rows = session.execute(
        select(D.status, D.attempt_count, D.delivered_at, D.updated_at).where(
            D.workspace_id == workspace_id,
            D.updated_at >= since,
            D.status.in_(("delivered", "dead_letter", "pending")),
        )
    ).all()
    return [ChartRow(r.status, int(r.attempt_count), r.delivered_at, r.updated_at) for r in rows]


def recent_events(
    session: Session, workspace_id: str, page: Page
) -> tuple[list[JiraEventRecord], str | None]:
    """Received Jira events with their routing outcome, newest first (bodies left unread)."""
    events, next_cursor = list_events(session, workspace_id, None, page)
    return list(events), next_cursor


def matched_subscriptions(
    session: Session, workspace_id: str, events: Sequence[JiraEventRecord]
) -> dict[str, SubscriptionNow]:
    """The subscriptions that took the listed events, as they are now (one query for the
    page); a subscription deleted since is absent and shows as such."""
    ids = [i for e in events for i in (e.matched_subscription_ids or [])]
    return subscriptions_now(session, workspace_id, ids)


# Where each subscription filter's values are found in a stored envelope's issue.
_ISSUE_FIELDS = {
    "projects": "project_key",
    "issue_types": "issue_type",
    "statuses": "status",
    "priorities": "priority",
    "labels": "labels",
    "components": "components",
}
SUGGESTION_EVENTS = 200
SUGGESTIONS_PER_FILTER = 50


def filter_suggestions(session: Session, workspace_id: str) -> dict[str, list[str]]:
    """Values seen in the workspace's recent events, offered while typing filters."""
    envelopes: Sequence[Any] = session.scalars(
        select(JiraEventRecord.envelope)
        .where(JiraEventRecord.workspace_id == workspace_id, JiraEventRecord.status == "routed")
        .order_by(JiraEventRecord.id.desc())
        .limit(SUGGESTION_EVENTS)
    ).all()
    seen: dict[str, dict[str, str]] = {name: {} for name in _ISSUE_FIELDS}
    for envelope in envelopes:
        issue = envelope.get("issue") if isinstance(envelope, dict) else None
        if not isinstance(issue, dict):
            continue
        for name, key in _ISSUE_FIELDS.items():
            value = issue.get(key)
            values = value if isinstance(value, list) else [value]
            for item in values:
                if isinstance(item, str) and item.strip():
                    seen[name].setdefault(item.strip().casefold(), item.strip())
    return {
        name: sorted(values.values(), key=str.casefold)[:SUGGESTIONS_PER_FILTER]
        for name, values in seen.items()
    }


def audit_actors(session: Session, workspace_id: str, limit: int = 50) -> list[str]:
    """E-mails that appear as actors in the workspace's audit log, for the actor filter."""
    rows = session.scalars(
        select(AuditEntry.actor_email)
        .where(AuditEntry.workspace_id == workspace_id, AuditEntry.actor_email.is_not(None))
        .group_by(AuditEntry.actor_email)
        .order_by(AuditEntry.actor_email)
        .limit(limit)
    ).all()
    return [email for email in rows if email]
