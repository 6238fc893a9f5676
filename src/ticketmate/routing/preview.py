"""Preview: what a subscription's settings would have sent, over the events stored lately.

Before an administrator saves a subscription (or a change to one), the preview replays the
workspace's recent routed events — the last PREVIEW_DAYS days, or the retention period if it
is shorter — through exactly the router's rules (routing/explanation.py `why_not`, which is
routing/filters.py's `mismatch` plus the security rule), with the webhook's state and the
workspace's setting for unknown security levels as they are now. So the preview and what the
router will do cannot disagree: both call the same pure functions on the same envelopes.

It answers:
    cards           how many cards these settings would have sent (one per matching event;
                    coalescing and digests are not part of the product yet)
    matching        up to MATCHING_SHOWN of the matching events, newest first, with the title
                    their card would carry
    reasons         for the events that did not match, the most common reasons with their
                    counts ("project OPS not in [DEMO]": 412), most common first
    considered      how many events were looked at, and since when; `capped` when more were
                    stored than a preview reads (the newest MAX_EVENTS are read)

Events that were not routed (ignored, rejected, second reports of a comment) are left out, as
the router never saw them.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from ticketmate.ids import id_floor
from ticketmate.jira.events import EventType, JiraEvent
from ticketmate.models import JiraEventRecord, Workspace
from ticketmate.routing.explanation import why_not
from ticketmate.teams.cards import headline

PREVIEW_DAYS = 7
MATCHING_SHOWN = 20
REASONS_SHOWN = 10
MAX_EVENTS = 5000  # a preview reads at most this many events (the newest)
READ_BATCH = 500
# Said with every preview: the card count is one card per matching event.
NOTE = (
    "One card per matching event: combining updates to the same issue and digests are not "
    "applied, as subscriptions have neither yet."
)
# Ids are made at the intake just after `received_at` is taken, so an id bound a minute below
# the window lets the (workspace_id, id) index do the narrowing; received_at decides.
_ID_SLACK = timedelta(minutes=1)


@dataclass(frozen=True)
class PreviewedEvent:
    event_id: str
    received_at: datetime
    issue_key: str | None
    title: str


@dataclass(frozen=True)
class PreviewReason:
    reason: str
    events: int


@dataclass
class Preview:
    since: datetime
    considered: int = 0
    cards: int = 0
    capped: bool = False
    matching: list[PreviewedEvent] = field(default_factory=list)
    reasons: list[PreviewReason] = field(default_factory=list)


def preview_days(retention_days: int) -> int:
    """How many days a preview looks back: PREVIEW_DAYS, or the retention period if shorter."""
    return min(PREVIEW_DAYS, max(retention_days, 1))


def preview_window(now: datetime, retention_days: int) -> datetime:
    return now - timedelta(days=preview_days(retention_days))


def preview(
    session: Session,
    workspace_id: str,
    *,
    event_type: str,
    filters: Mapping[str, Sequence[str]],
    enabled: bool,
    webhook_enabled: bool,
    channel_name: str,
    now: datetime,
    retention_days: int,
) -> Preview:
    """What a subscription with these settings would have sent; see the module docstring."""
    since = preview_window(now, retention_days)
    result = Preview(since=since)
    withhold_unknown = bool(
        session.scalar(
            select(Workspace.withhold_unknown_security).where(Workspace.id == workspace_id)
        )
    )
    reasons: Counter[str] = Counter()
    for record_id, received_at, envelope in _recent(session, workspace_id, since, result):
        event = JiraEvent.model_validate(envelope)
        result.considered += 1
        reason = why_not(
            event,
            event_type,
            enabled=enabled,
            webhook_enabled=webhook_enabled,
            channel_name=channel_name,
            filters=filters,
            withhold_unknown=withhold_unknown,
        )
        if reason is not None:
            reasons[reason] += 1
            continue
        result.cards += 1
        if len(result.matching) < MATCHING_SHOWN:
            issue = event.issue
            result.matching.append(
                PreviewedEvent(
                    record_id,
                    received_at,
                    issue.key if issue else None,
                    headline(event, EventType(event_type)),
                )
            )
    result.reasons = [
        PreviewReason(reason, count) for reason, count in _most_common(reasons, REASONS_SHOWN)
    ]
    return result


def _most_common(reasons: Counter[str], limit: int) -> list[tuple[str, int]]:
    # Ties in the order of the reason's text, so the same events always preview the same.
    return sorted(reasons.items(), key=lambda item: (-item[1], item[0]))[:limit]


def _recent(
    session: Session, workspace_id: str, since: datetime, result: Preview
) -> Iterator[tuple[str, datetime, dict[str, Any]]]:
    """(id, received_at, envelope) of the routed events since `since`, newest first, a batch
    at a time, at most MAX_EVENTS of them."""
    R = JiraEventRecord
    floor = id_floor(since - _ID_SLACK)
    before: str | None = None
    read = 0
    while read < MAX_EVENTS:
        limit = min(READ_BATCH, MAX_EVENTS - read)
        query = (
            select(R.id, R.received_at, R.envelope, R.matched_subscription_ids)
            .where(
                R.workspace_id == workspace_id,
                R.id >= floor,
                R.status == "routed",
                R.received_at >= since,
            )
            .order_by(R.id.desc())
            .limit(limit)
        )
        if before is not None:
            query = query.where(R.id < before)
        rows = session.execute(query).all()
        for row in rows:
            # No outcome kept: the router did not route it (a second report of a comment, a
            # routing failure). JSON null, so this is read here rather than asked in SQL.
            if row.envelope is not None and row.matched_subscription_ids is not None:
                yield row.id, row.received_at, row.envelope
        read += len(rows)
        if len(rows) < limit:
            return  # all of them read
        before = rows[-1].id
    more = session.scalar(
        select(R.id)
        .where(
            R.workspace_id == workspace_id,
            R.id >= floor,
            R.status == "routed",
            R.received_at >= since,
            R.id < before,
        )
        .limit(1)
    )
    result.capped = more is not None
