"""Why a subscription did not take an event, worked out when someone asks.

An event keeps only which subscriptions took it (their ids) and how many did not
(models/jira_event.py). When a person opens the event — the Recent Jira events page, or
`GET /api/v1/workspaces/{slug}/jira/events/{id}` and its `/explanations` — each subscription
of the workspace is explained against the event with the router's own rules (`why_not`, which
uses routing/filters.py), as the subscriptions are now, next to whether it matched then:

    subscription_id, webhook_id, channel_name, event_type   as the subscription is now
    matched_then   it took the event when it arrived (null: not known, more matched than an
                   event keeps ids of)
    matches_now    it would take the event now
    reason         why it would not now ("project DEMO not in [OPS]", "listens for X; this
                   event is Y", "the subscription is disabled", "the webhook #x is disabled",
                   "issue NOVA-12 has the security level 'Staff only'; …"); null when it
                   matches
    changed_since  the subscription was edited after the event arrived (its updated_at); a
                   change of its webhook does not count here, the reason shows that
    deleted        it matched then and has been deleted since (no other fields then)

Pages go by subscription id, oldest first (the order the router considers them), with the
project's cursors: `explain(session, record, Page)` reads one page, so a workspace with
10,000 subscriptions can still ask. Events that were not routed (ignored, rejected, a second
report of a comment, a routing failure) say so in `note`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from ticketmate.jira.events import JiraEvent
from ticketmate.models import JiraEventRecord, TeamsSubscription, TeamsWebhook, Workspace
from ticketmate.pagination import Page, encode_cursor
from ticketmate.routing.filters import mismatch

FIRST_PAGE = 50  # explanations shown with an event
DELETED_REASON = "the subscription was deleted"


@dataclass(frozen=True)
class Explanation:
    subscription_id: str
    webhook_id: str | None
    channel_name: str | None
    event_type: str | None
    matched_then: bool | None
    matches_now: bool
    reason: str | None
    changed_since: bool
    deleted: bool = False

    def as_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class ExplanationPage:
    items: list[Explanation]
    next_cursor: str | None
    note: str | None


@dataclass(frozen=True)
class SubscriptionNow:
    """A subscription as it is now, for lists that name what matched."""

    id: str
    event_type: str
    webhook_id: str
    channel_name: str


def why_not(
    event: JiraEvent,
    event_type: str,
    *,
    enabled: bool,
    webhook_enabled: bool,
    channel_name: str,
    filters: Mapping[str, Sequence[str]] | None,
    withhold_unknown: bool = False,
) -> str | None:
    """None when the subscription takes the event; else why not, in the router's words.

    The order is the router's: a subscription of another event type is not a candidate at all,
    then a disabled subscription, then a disabled webhook, then the first filter that fails,
    then the issue's security level (with the workspace's rule for unknown levels).
    """
    types = [t.value for t in event.event_types]
    if event_type not in types:
        return f"listens for {event_type}; this event is {', '.join(types) or 'none'}"
    if not enabled:
        return "the subscription is disabled"
    if not webhook_enabled:
        return f"the webhook {channel_name} is disabled"
    return mismatch(event, event_type, filters or {}, withhold_unknown=withhold_unknown)


def _note(record: JiraEventRecord) -> str | None:
    reason = f" {record.reason}" if record.reason else ""
    if record.status != "routed":
        return (
            f"This event was {record.status} when it arrived: it was not routed, "
            f"so no subscription was consulted.{reason}"
        )
    if record.matched_subscription_ids is None:
        return f"This event was not routed, so no subscription took it.{reason}"
    if (record.matched_count or 0) > len(record.matched_subscription_ids):
        return (
            f"{record.matched_count} subscriptions took this event; the ids of the first "
            f"{len(record.matched_subscription_ids)} were kept, so whether the others took it "
            "is not known."
        )
    return None


def _matched_then(record: JiraEventRecord, matched: set[str], subscription_id: str) -> bool | None:
    if subscription_id in matched:
        return True
    if record.matched_subscription_ids is None:
        return False
    if (record.matched_count or 0) > len(record.matched_subscription_ids):
        return None  # beyond the ids an event keeps
    return False


def explain(session: Session, record: JiraEventRecord, page: Page) -> ExplanationPage:
    """One page of explanations of `record` (subscription ids after `page.after_id`)."""
    note = _note(record)
    if record.status != "routed" or record.envelope is None:
        return ExplanationPage([], None, note)
    event = JiraEvent.model_validate(record.envelope)
    matched = set(record.matched_subscription_ids or [])
    withhold_unknown = bool(
        session.scalar(
            select(Workspace.withhold_unknown_security).where(Workspace.id == record.workspace_id)
        )
    )
    S, W = TeamsSubscription, TeamsWebhook
    query = (
        select(
            S.id,
            S.event_type,
            S.enabled,
            S.filters,
            S.webhook_id,
            S.updated_at,
            W.channel_name,
            W.enabled,
        )
        .join(W, W.id == S.webhook_id)
        .where(S.workspace_id == record.workspace_id)
        .order_by(S.id)
        .limit(page.limit + 1)
    )
    if page.after_id is not None:
        query = query.where(S.id > page.after_id)
    items = []
    for row in session.execute(query).all():
        reason = why_not(
            event,
            row[1],
            enabled=bool(row[2]),
            webhook_enabled=bool(row[7]),
            channel_name=row[6],
            filters=row[3],
            withhold_unknown=withhold_unknown,
        )
        items.append(
            Explanation(
                subscription_id=row[0],
                webhook_id=row[4],
                channel_name=row[6],
                event_type=row[1],
                matched_then=_matched_then(record, matched, row[0]),
                matches_now=reason is None,
                reason=reason,
                changed_since=row[5] > record.received_at,
            )
        )
    items.extend(_deleted_since(session, record, matched, page.after_id))
    items.sort(key=lambda item: item.subscription_id)
    more = len(items) > page.limit
    items = items[: page.limit]
    next_cursor = encode_cursor(items[-1].subscription_id) if more and items else None
    return ExplanationPage(items, next_cursor, note)


def _deleted_since(
    session: Session, record: JiraEventRecord, matched: set[str], after_id: str | None
) -> list[Explanation]:
    """The subscriptions that took the event and exist no more (after the cursor)."""
    wanted = sorted(i for i in matched if after_id is None or i > after_id)
    if not wanted:
        return []
    existing = set(
        session.scalars(
            select(TeamsSubscription.id).where(
                TeamsSubscription.workspace_id == record.workspace_id,
                TeamsSubscription.id.in_(wanted),
            )
        )
    )
    return [
        Explanation(
            subscription_id=subscription_id,
            webhook_id=None,
            channel_name=None,
            event_type=None,
            matched_then=True,
            matches_now=False,
            reason=DELETED_REASON,
            changed_since=True,
            deleted=True,
        )
        for subscription_id in wanted
        if subscription_id not in existing
    ]


def subscriptions_now(
    session: Session, workspace_id: str, ids: Sequence[str]
) -> dict[str, SubscriptionNow]:
    """The workspace's subscriptions among `ids`, with their channels; deleted ones are absent."""
    if not ids:
        return {}
    S, W = TeamsSubscription, TeamsWebhook
    rows = session.execute(
        select(S.id, S.event_type, S.webhook_id, W.channel_name)
        .join(W, W.id == S.webhook_id)
        .where(S.workspace_id == workspace_id, S.id.in_(sorted(set(ids))))
    ).all()
    return {row[0]: SubscriptionNow(row[0], row[1], row[2], row[3]) for row in rows}
