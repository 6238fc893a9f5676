"""The reference: how routing chose and explained before explanations were computed on demand.

This is the EventRouter's choosing and explaining as it was when every event stored why each
subscription did not take it (candidates by event type on enabled subscriptions of enabled
webhooks, `mismatch` for the filters, then up to 100 others explained by type, subscription
or webhook state). Kept here unchanged, apart from returning the decision instead of writing
it on the event, so that the index and the on-demand explanations can be compared with it.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from ticketmate.jira.events import JiraEvent
from ticketmate.models import TeamsSubscription, TeamsWebhook
from ticketmate.routing.filters import mismatch

EXPLAINED_LIMIT = 100  # non-matching subscriptions explained per event


def old_routing(session: Session, workspace_id: str, event: JiraEvent) -> dict[str, Any]:
    """{"matched": [...], "not_matched": [...]} as the old router stored it."""
    matched: list[dict[str, Any]] = []
    not_matched: list[dict[str, Any]] = []
    types = [t.value for t in event.event_types]
    S, W = TeamsSubscription, TeamsWebhook
    candidates = session.execute(
        select(S.id, S.event_type, S.filters, S.webhook_id, W.channel_name)
        .join(W, W.id == S.webhook_id)
        .where(
            S.workspace_id == workspace_id,
            S.event_type.in_(types),
            S.enabled.is_(True),
            W.enabled.is_(True),
        )
        .order_by(S.id)
    ).all()
    for row in candidates:
        reason = mismatch(event, row.event_type, row.filters or {})
        entry = {
            "subscription_id": row.id,
            "webhook_id": row.webhook_id,
            "channel_name": row.channel_name,
            "event_type": row.event_type,
        }
        if reason is None:
            matched.append(entry)
        else:
            not_matched.append({**entry, "reason": reason})
    seen = {r.id for r in candidates}
    others = session.execute(
        select(S.id, S.event_type, S.enabled, S.webhook_id, W.channel_name, W.enabled)
        .join(W, W.id == S.webhook_id)
        .where(S.workspace_id == workspace_id)
        .order_by(S.id)
        .limit(EXPLAINED_LIMIT + len(seen))
    ).all()
    shown = ", ".join(t.value for t in event.event_types) or "none"
    for row in others:
        if row.id in seen or len(not_matched) >= EXPLAINED_LIMIT:
            continue
        if row.event_type not in {t.value for t in event.event_types}:
            reason = f"listens for {row.event_type}; this event is {shown}"
        elif not row[2]:
            reason = "the subscription is disabled"
        else:
            reason = f"the webhook {row.channel_name} is disabled"
        not_matched.append(
            {
                "subscription_id": row.id,
                "webhook_id": row.webhook_id,
                "channel_name": row.channel_name,
                "event_type": row.event_type,
                "reason": reason,
            }
        )
    return {"matched": matched, "not_matched": not_matched}
