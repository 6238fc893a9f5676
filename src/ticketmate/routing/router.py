"""EventRouter: match a stored JiraEvent to subscriptions and queue one delivery per channel.

It runs inside the intake's transaction, so an event and its deliveries are stored together
or not at all. The card is rendered here, once per card type, and stored with the delivery:
the Delivery Log shows exactly what was sent, and a retry sends the same bytes.

Matching goes through the workspace's SubscriptionIndex (routing/index.py), so an event costs
what can match it. The event keeps only the outcome — the ids of the subscriptions that took
it and how many did not; why each of the others did not is worked out when someone looks
(routing/explanation.py).

Interfaces (kept stable for batching several events into one transaction):

    plan_deliveries(workspace_id, event_id, event, matches, now) -> list[dict]
        pure: the integration_delivery_log rows for one event, one per channel, ready for a
        multi-row INSERT; each card is rendered once per card type.
    EventRouter(session, now, index=None).route(record, event) -> RoutingResult
    route_event(session, record, event, now, index=None) -> int
        session-bound: match, insert the rows, write the outcome on the record and, on
        PostgreSQL, NOTIFY the workers (delivered when the transaction commits). Without an
        index one is loaded in the session.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import insert, text
from sqlalchemy.orm import Session

from ticketmate.ids import new_id
from ticketmate.jira.events import EventType, JiraEvent
from ticketmate.metrics import DELIVERIES_FINISHED, DELIVERIES_QUEUED
from ticketmate.models import IntegrationDelivery, JiraEventRecord
from ticketmate.routing.combine import grouping, join_open_cards_sync
from ticketmate.routing.index import Match, SubscriptionIndex, load_index
from ticketmate.teams.cards import most_specific, render_message

NOTIFY_CHANNEL = "ticketmate_deliveries"
# Matched subscription ids kept on an event (26 characters each): beyond this the event keeps
# only the count. A delivery also lists the subscriptions it serves.
MATCHED_IDS_LIMIT = 100


@dataclass
class RoutingResult:
    deliveries: int = 0
    matched: list[Match] = field(default_factory=list)
    not_matched_count: int = 0


def plan_deliveries(
    workspace_id: str, event_id: str, event: JiraEvent, matches: list[Match], now: datetime
) -> list[dict[str, Any]]:
    """One delivery per channel for the matched subscriptions, in the order their channels
    first match; the card is the most specific event type among a channel's subscriptions,
    rendered once per card type.

    Grouping (routing/combine.py): a channel that only digest subscriptions take gets a `held`
    delivery for the first of them; one whose every other subscription combines updates gets
    a delivery that waits for more updates to its issue (the shortest window of them). A
    subscription of either kind that shares a channel with one sending each event at once
    adds nothing: the channel gets the event now, once."""
    by_webhook: dict[str, list[Match]] = {}
    for match in matches:
        by_webhook.setdefault(match.webhook_id, []).append(match)
    rendered: dict[EventType, str] = {}
    rows = []
    issue = event.issue
    for webhook_id, taking in by_webhook.items():
        now_or_combined = [s for s in taking if not s.digest]
        subscriptions = now_or_combined or taking
        card_type = most_specific([EventType(s.event_type) for s in subscriptions])
        if card_type not in rendered:
            rendered[card_type] = render_message(event, card_type).decode()
        rows.append(
            {
                "id": new_id(),
                "workspace_id": workspace_id,
                "event_id": event_id,
                "webhook_id": webhook_id,
                "channel_name": subscriptions[0].channel_name,
                "subscription_ids": [s.subscription_id for s in subscriptions],
                "event_type": card_type.value,
                "issue_key": issue.key if issue else None,
                "summary": (issue.summary or "")[:500] if issue else None,
                "message": rendered[card_type],
                "status": "pending",
                "attempt_count": 0,
                "attempts_before_replay": 0,
                "next_attempt_at": now,
                "created_at": now,
                "updated_at": now,
                **grouping(subscriptions, issue.key if issue else None, now),
            }
        )
    return rows


def record_outcome(record: JiraEventRecord, matches: list[Match], index: SubscriptionIndex) -> None:
    """Write what routing decided on the event row: a few hundred bytes, whatever the size of
    the workspace."""
    record.matched_subscription_ids = [m.subscription_id for m in matches[:MATCHED_IDS_LIMIT]]
    record.matched_count = len(matches)
    record.not_matched_count = max(index.total - len(matches), 0)


class EventRouter:
    """Routes one event of one workspace; see the module docstring."""

    def __init__(
        self, session: Session, now: datetime, index: SubscriptionIndex | None = None
    ) -> None:
        self.session = session
        self.now = now
        self.index = index

    def route(self, record: JiraEventRecord, event: JiraEvent) -> RoutingResult:
        self.session.flush()  # the deliveries refer to the event row
        index = self.index or load_index(self.session, record.workspace_id)
        if index.workspace_id != record.workspace_id:
            raise ValueError("the subscription index is of another workspace")
        matches = index.match(event)
        rows = plan_deliveries(record.workspace_id, record.id, event, matches, self.now)
        if rows:
            joined = join_open_cards_sync(self.session.connection(), rows, self.now)
            self.session.execute(insert(IntegrationDelivery), rows)
            DELIVERIES_QUEUED.inc(len(rows))
            if joined:  # folded into a card that waits for more updates: final from the start
                DELIVERIES_FINISHED.labels("folded").inc(joined)
        record_outcome(record, matches, index)
        if rows and self.session.get_bind().dialect.name == "postgresql":
            # Delivered to listening workers when this transaction commits, not before.
            self.session.execute(text(f"NOTIFY {NOTIFY_CHANNEL}"))
        return RoutingResult(len(rows), matches, record.not_matched_count or 0)


def route_event(
    session: Session,
    record: JiraEventRecord,
    event: JiraEvent,
    now: datetime,
    index: SubscriptionIndex | None = None,
) -> int:
    """Route one stored event; returns how many deliveries were queued."""
    return EventRouter(session, now, index).route(record, event).deliveries
