"""Preview: what a subscription's settings would have sent, over the events stored lately.

Before an administrator saves a subscription (or a change to one), the preview replays the
workspace's recent routed events — the last PREVIEW_DAYS days, or the retention period if it
is shorter — through exactly the router's rules (routing/explanation.py `why_not`, which is
routing/filters.py's `mismatch` plus the security rule), with the webhook's state and the
workspace's setting for unknown security levels as they are now. So the preview and what the
router will do cannot disagree: both call the same pure functions on the same envelopes.

It answers:
    cards           how many cards these settings would have sent, after combining or a
                    digest (see "Grouping" below); one per matching event with neither
    events_matched  how many events matched
    grouping        the grouping in words ("combining updates within 30 s", "as a daily
                    digest at 09:00 (Europe/Berlin)"), None with neither; `note` says how
                    the cards were counted
    matching        up to MATCHING_SHOWN of the matching events, newest first, with the title
                    their card would carry
    reasons         for the events that did not match, the most common reasons with their
                    counts ("project OPS not in [DEMO]": 412), most common first
    considered      how many events were looked at, and since when; `capped` when more were
                    stored than a preview reads (the newest MAX_EVENTS are read)

Grouping replays the matching events in received order, as routing/combine.py and
delivery/digests.py would have sent them to this one channel:
    combining       per issue, a window opens at its first event and takes the events that
                    arrive before it closes (at most COMBINE_AT_MOST a card); a later event
                    opens the next window. One card per window; an event without an issue
                    key is one card, as it is never combined.
    digest          one card per digest period (ending at DigestSchedule.next_after) with at
                    least one matching event; the period still open, holding the newest
                    events, counts too. Empty periods send nothing.

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
from ticketmate.routing.combine import COMBINE_AT_MOST
from ticketmate.routing.explanation import why_not
from ticketmate.teams.cards import headline
from ticketmate.teams.digest_schedule import DigestSchedule, parse_schedule

PREVIEW_DAYS = 7
MATCHING_SHOWN = 20
REASONS_SHOWN = 10
MAX_EVENTS = 5000  # a preview reads at most this many events (the newest)
READ_BATCH = 500
# Said with every preview, how its cards were counted: with neither combining nor a digest,
NOTE = (
    "One card per matching event: combining updates to the same issue and digests are not "
    "applied, as these settings choose neither."
)
# combining (the window in words),
COMBINE_NOTE = (
    "Updates to the same issue within {window} of the first are counted as one card (at most "
    f"{COMBINE_AT_MOST} events a card); events without an issue are one card each."
)
# or a digest.
DIGEST_NOTE = (
    "One card per digest period with a matching event, the period still open included; a "
    "period without one sends nothing."
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
    cards: int = 0  # after combining or a digest
    capped: bool = False
    matching: list[PreviewedEvent] = field(default_factory=list)
    reasons: list[PreviewReason] = field(default_factory=list)
    events_matched: int = 0
    grouping: str | None = None  # None: one card per matching event
    note: str = NOTE


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
    combine_seconds: int | None = None,
    digest_schedule: str | None = None,
) -> Preview:
    """What a subscription with these settings would have sent; see the module docstring.
    `combine_seconds` and `digest_schedule` as the subscription stores them (None: off)."""
    since = preview_window(now, retention_days)
    result = Preview(since=since)
    schedule = parse_schedule(digest_schedule) if digest_schedule else None
    # (received_at, record id, issue key) of every matching event, newest first.
    matched: list[tuple[datetime, str, str | None]] = []
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
        issue = event.issue
        matched.append((received_at, record_id, issue.key if issue else None))
        if len(result.matching) < MATCHING_SHOWN:
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
    result.events_matched = len(matched)
    in_order = sorted(matched)  # as they were received
    if schedule is not None:
        result.cards = digest_cards([at for at, _, _ in in_order], schedule)
        result.grouping, result.note = digest_words(schedule), DIGEST_NOTE
    elif combine_seconds:
        window = timedelta(seconds=combine_seconds)
        result.cards = combined_cards([(at, key) for at, _, key in in_order], window)
        words = window_words(combine_seconds)
        result.grouping = f"combining updates within {words}"
        result.note = COMBINE_NOTE.format(window=words)
    else:
        result.cards = len(matched)
    return result


def combined_cards(events: Sequence[tuple[datetime, str | None]], window: timedelta) -> int:
    """Cards for (received_at, issue key) events, oldest first, combined as routing/combine.py
    does: per issue, a window from its first event takes those received before it closes, up
    to COMBINE_AT_MOST; the next opens a new one. Without an issue key, one card each."""
    cards = 0
    open_windows: dict[str, tuple[datetime, int]] = {}  # issue key → (closes at, events)
    for received_at, issue_key in events:
        if issue_key is not None:
            found = open_windows.get(issue_key)
            if found is not None and received_at < found[0] and found[1] < COMBINE_AT_MOST:
                open_windows[issue_key] = (found[0], found[1] + 1)
                continue
            open_windows[issue_key] = (received_at + window, 1)
        cards += 1
    return cards


def digest_cards(received: Sequence[datetime], schedule: DigestSchedule) -> int:
    """Digest periods (each ends at the schedule's next time after its events) holding at
    least one of these times, oldest first."""
    cards = 0
    ends: datetime | None = None
    for received_at in received:
        if ends is None or received_at >= ends:
            ends = schedule.next_after(received_at)
            cards += 1
    return cards


def window_words(seconds: int) -> str:
    """A combining window in words: "30 s", "1 min"."""
    if seconds % 60 == 0:
        return f"{seconds // 60} min"
    return f"{seconds} s"


def digest_words(schedule: DigestSchedule) -> str:
    if schedule.hourly or schedule.at is None:
        return "as an hourly digest, on the hour (UTC)"
    return f"as a daily digest at {schedule.at:%H:%M} ({schedule.zone})"


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
