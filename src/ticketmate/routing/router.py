"""EventRouter: match a stored JiraEvent to subscriptions and queue one delivery per channel.

It runs inside the intake's transaction, so an event and its deliveries are stored together
or not at all. The card is rendered here, once per event type, and stored with the delivery:
the Delivery Log shows exactly what was sent, and a retry sends the same bytes.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import insert, select, text
from sqlalchemy.orm import Session

from ticketmate.ids import new_id
from ticketmate.jira.events import EventType, JiraEvent
from ticketmate.metrics import DELIVERIES_QUEUED
from ticketmate.models import IntegrationDelivery, JiraEventRecord, TeamsSubscription, TeamsWebhook
from ticketmate.routing.filters import mismatch
from ticketmate.teams.cards import most_specific, render_message

NOTIFY_CHANNEL = "ticketmate_deliveries"
EXPLAINED_LIMIT = 100  # non-matching subscriptions explained per event


@dataclass
class RoutingResult:
    deliveries: int = 0
    matched: list[dict[str, Any]] = field(default_factory=list)
    not_matched: list[dict[str, Any]] = field(default_factory=list)

    def as_json(self) -> dict[str, Any]:
        return {
            "deliveries": self.deliveries,
            "matched": self.matched,
            "not_matched": self.not_matched,
        }


class EventRouter:
    """Routes one event of one workspace; see the module docstring."""

    def __init__(self, session: Session, now: datetime) -> None:
        self.session = session
        self.now = now

    def route(self, record: JiraEventRecord, event: JiraEvent) -> RoutingResult:
        result = RoutingResult()
        self.session.flush()  # the deliveries refer to the event row
        types = [t.value for t in event.event_types]
        S, W = TeamsSubscription, TeamsWebhook
        # One indexed lookup: enabled subscriptions of this workspace for these event types,
        # on enabled webhooks.
        candidates = self.session.execute(
            select(S.id, S.event_type, S.filters, S.webhook_id, W.channel_name)
            .join(W, W.id == S.webhook_id)
            .where(
                S.workspace_id == record.workspace_id,
                S.event_type.in_(types),
                S.enabled.is_(True),
                W.enabled.is_(True),
            )
            .order_by(S.id)
        ).all()
        by_webhook: dict[str, list[Any]] = defaultdict(list)
        channels: dict[str, str] = {}
        for row in candidates:
            reason = mismatch(event, row.event_type, row.filters or {})
            entry = {
                "subscription_id": row.id,
                "webhook_id": row.webhook_id,
                "channel_name": row.channel_name,
                "event_type": row.event_type,
            }
            if reason is None:
                by_webhook[row.webhook_id].append(row)
                channels[row.webhook_id] = row.channel_name
                result.matched.append(entry)
            else:
                result.not_matched.append({**entry, "reason": reason})
        self._explain_others(record, event, {r.id for r in candidates}, result)
        self._enqueue(record, event, by_webhook, channels, result)
        record.routing = result.as_json()
        if result.deliveries and self.session.get_bind().dialect.name == "postgresql":
            # Delivered to listening workers when this transaction commits, not before.
            self.session.execute(text(f"NOTIFY {NOTIFY_CHANNEL}"))
        return result

    def _enqueue(
        self,
        record: JiraEventRecord,
        event: JiraEvent,
        by_webhook: dict[str, list[Any]],
        channels: dict[str, str],
        result: RoutingResult,
    ) -> None:
        rendered: dict[EventType, str] = {}
        rows = []
        issue = event.issue
        for webhook_id, subscriptions in by_webhook.items():
            card_type = most_specific([EventType(s.event_type) for s in subscriptions])
            if card_type not in rendered:
                rendered[card_type] = render_message(event, card_type).decode()
            rows.append(
                {
                    "id": new_id(),
                    "workspace_id": record.workspace_id,
                    "event_id": record.id,
                    "webhook_id": webhook_id,
                    "channel_name": channels[webhook_id],
                    "subscription_ids": [s.id for s in subscriptions],
                    "event_type": card_type.value,
                    "issue_key": issue.key if issue else None,
                    "summary": (issue.summary or "")[:500] if issue else None,
                    "message": rendered[card_type],
                    "status": "pending",
                    "attempt_count": 0,
                    "attempts_before_replay": 0,
                    "next_attempt_at": self.now,
                    "created_at": self.now,
                    "updated_at": self.now,
                }
            )
        if rows:
            self.session.execute(insert(IntegrationDelivery), rows)
            DELIVERIES_QUEUED.inc(len(rows))
        result.deliveries = len(rows)

    def _explain_others(
        self, record: JiraEventRecord, event: JiraEvent, seen: set[str], result: RoutingResult
    ) -> None:
        """Why each other subscription of the workspace did not take this event."""
        S, W = TeamsSubscription, TeamsWebhook
        others = self.session.execute(
            select(S.id, S.event_type, S.enabled, S.webhook_id, W.channel_name, W.enabled)
            .join(W, W.id == S.webhook_id)
            .where(S.workspace_id == record.workspace_id)
            .order_by(S.id)
            .limit(EXPLAINED_LIMIT + len(seen))
        ).all()
        types = ", ".join(t.value for t in event.event_types) or "none"
        for row in others:
            if row.id in seen or len(result.not_matched) >= EXPLAINED_LIMIT:
                continue
            if row.event_type not in {t.value for t in event.event_types}:
                reason = f"listens for {row.event_type}; this event is {types}"
            elif not row[2]:
                reason = "the subscription is disabled"
            else:
                reason = f"the webhook {row.channel_name} is disabled"
            result.not_matched.append(
                {
                    "subscription_id": row.id,
                    "webhook_id": row.webhook_id,
                    "channel_name": row.channel_name,
                    "event_type": row.event_type,
                    "reason": reason,
                }
            )


def route_event(session: Session, record: JiraEventRecord, event: JiraEvent, now: datetime) -> int:
    """Route one stored event; returns how many deliveries were queued."""
    return EventRouter(session, now).route(record, event).deliveries
