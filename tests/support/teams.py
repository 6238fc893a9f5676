"""Teams webhooks, subscriptions and events for delivery tests, made through the services."""

from __future__ import annotations

import asyncio
from datetime import datetime
from typing import Any

from ticketmate.audit.service import Actor
from ticketmate.delivery.worker import TeamsDeliveryWorker, WorkerStats
from ticketmate.ids import new_id
from ticketmate.jira.events import JiraEvent
from ticketmate.models import IntegrationDelivery, JiraEventRecord
from ticketmate.routing.router import route_event
from ticketmate.state import Services
from ticketmate.teams import subscriptions, webhooks
from ticketmate.timeutil import utcnow

ADMIN = Actor("user", None, "admin@example.com")


def make_webhook(svc: Services, workspace_id: str, channel_name: str, url: str) -> str:
    with svc.db.transaction() as session:
        webhook = webhooks.create_webhook(
            session,
            svc.keyring,
            workspace_id,
            webhooks.WebhookCreate(channel_name=channel_name, url=url),
            allow_loopback=True,
            actor=ADMIN,
        )
        return webhook.id


def make_subscription(
    svc: Services,
    workspace_id: str,
    webhook_id: str,
    event_type: str,
    enabled: bool = True,
    *,
    combine: str = "off",
    digest: str = "off",
    **filters: list[str],
) -> str:
    with svc.db.transaction() as session:
        subscription, _ = subscriptions.create_subscription(
            session,
            workspace_id,
            subscriptions.SubscriptionCreate(
                event_type=event_type,
                webhook_id=webhook_id,
                enabled=enabled,
                filters=subscriptions.SubscriptionFilters(**filters),
                combine=combine,  # type: ignore[arg-type]  # validated by the model
                digest=digest,
            ),
            actor=ADMIN,
        )
        return subscription.id


def event(
    types: list[str],
    key: str = "DEMO-1",
    project: str = "DEMO",
    summary: str = "Something broke",
    **issue: Any,
) -> JiraEvent:
    fields: dict[str, Any] = {
        "key": key,
        "summary": summary,
        "project_key": project,
        "project_name": project.title(),
        "issue_type": "Bug",
        "status": "To Do",
        "priority": "High",
        "browse_url": f"https://example.atlassian.net/browse/{key}",
    }
    fields.update(issue)
    changes = []
    if "status_changed" in types:
        changes.append({"field": "status", "from": "To Do", "to": fields["status"]})
    return JiraEvent.model_validate(
        {
            "event_types": types,
            "jira_event": "jira:issue_updated",
            "actor": {"display_name": "Alice"},
            "issue": fields,
            "changes": changes,
        }
    )


def store_and_route(
    svc: Services, workspace_id: str, envelope: JiraEvent, now: datetime | None = None
) -> tuple[str, int]:
    """What the intake does after authentication: store the event and route it, together."""
    now = now or utcnow()
    with svc.db.transaction() as session:
        record = JiraEventRecord(
            id=new_id(),
            workspace_id=workspace_id,
            received_at=now,
            jira_event=envelope.jira_event,
            status="routed",
            event_types=[t.value for t in envelope.event_types],
            issue_key=envelope.issue.key if envelope.issue else None,
            summary=envelope.issue.summary if envelope.issue else None,
            raw_body="{}",
            headers={},
            envelope=envelope.as_json(),
        )
        session.add(record)
        count = route_event(session, record, envelope, now)
        return record.id, count


def deliveries(svc: Services, workspace_id: str) -> list[IntegrationDelivery]:
    from sqlalchemy import select

    with svc.db.transaction() as session:
        return list(
            session.scalars(
                select(IntegrationDelivery)
                .where(IntegrationDelivery.workspace_id == workspace_id)
                .order_by(IntegrationDelivery.id)
            )
        )


def drain(svc: Services, **kwargs: Any) -> WorkerStats:
    """Run a worker until nothing is due (`ticketmate worker --once`)."""
    return asyncio.run(TeamsDeliveryWorker(svc, **kwargs).run(once=True))
