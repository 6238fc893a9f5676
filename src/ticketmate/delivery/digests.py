"""Digests: the worker turns what a digest subscription held back into one card per period.

The router stores a delivery of a channel that only digest subscriptions take as `held`, with
`digest_of` = the subscription (routing/combine.py). Each subscription keeps its schedule and
`next_digest_at` in the database, so a digest survives restarts: the worker looks every poll
interval for subscriptions whose time has come (queue_due_digests) and, in one transaction
per look:

- folds each such subscription's held deliveries, per channel, into a digest card: the oldest
  becomes the digest (`pending`, `card_kind` digest, due now) and keeps its place in its lane;
  the others become `folded` into it, so each event stays linked to the card that carried it;
  the card is then sent, retried and dead-lettered like any other;
- moves `next_digest_at` on to the schedule's next time. A period with nothing held sends
  nothing; a digest the worker was down for goes out once when it comes back, not once per
  missed period.

Deliveries held for a subscription that no longer sends digests (turned off, or deleted) go
out as one digest at the next look; if the subscription is gone or disabled, the take skips
it as it skips any delivery nobody wants any more.

Several workers: on PostgreSQL the due subscriptions and the held rows are locked `FOR UPDATE
SKIP LOCKED`, and the schedule moves on in the same transaction, so each digest is made by one
worker, once. On SQLite the write transaction is the lock.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import literal_column, select, update
from sqlalchemy.orm import Session

from ticketmate.jira.events import EVENT_TYPE_LABELS, EventType, JiraEvent
from ticketmate.metrics import DELIVERIES_FINISHED
from ticketmate.models import IntegrationDelivery, JiraEventRecord, TeamsSubscription, Workspace
from ticketmate.teams.digest_schedule import DigestSchedule, ScheduleError, parse_schedule

log = logging.getLogger(__name__)

D = IntegrationDelivery
S = TeamsSubscription

# Subscriptions looked at per transaction; more wait for the next look, a moment later.
SUBSCRIPTIONS_AT_MOST = 50
# Held deliveries folded into one digest at most; a subscription with more keeps its time
# until the rest are folded too (the card lists 20 and links the rest: see summary_cards).
HELD_AT_MOST = 2000


@dataclass(frozen=True)
class Made:
    """One digest queued: its delivery and how many held deliveries it carries."""

    subscription_id: str
    delivery_id: str
    events: int


def _held() -> Any:
    # Repeated literally: the partial index ix_delivery_held_for_digest serves it.
    return D.status == literal_column("'held'")


def queue_due_digests(session: Session, *, now: datetime) -> list[Made]:
    """Make the digests whose time has come (see the module's docstring)."""
    connection = session.connection()
    postgres = connection.dialect.name == "postgresql"
    due_query = (
        select(S.id, S.workspace_id, S.event_type, S.digest)
        .where(S.digest.is_not(None), S.next_digest_at <= now)
        .order_by(S.next_digest_at)
        .limit(SUBSCRIPTIONS_AT_MOST)
    )
    if postgres:
        due_query = due_query.with_for_update(skip_locked=True, of=S)
    due = connection.execute(due_query).all()
    made: list[Made] = []
    for subscription in due:
        try:
            schedule = parse_schedule(subscription.digest)
        except ScheduleError:
            log.error("subscription %s has an unreadable digest schedule", subscription.id)
            continue
        title = f"Jira digest · {_label(subscription.event_type)}"
        made_now, complete = _fold_held(
            session, subscription.id, subscription.workspace_id, title, schedule, now
        )
        made.extend(made_now)
        if complete:
            connection.execute(
                update(S)
                .where(S.id == subscription.id)
                .values(next_digest_at=schedule.next_after(now))
                .execution_options(synchronize_session=False)
            )
    made.extend(_orphans(session, now))
    folded = sum(m.events - 1 for m in made)
    if folded:
        DELIVERIES_FINISHED.labels("folded").inc(folded)
    return made


def _orphans(session: Session, now: datetime) -> list[Made]:
    """Held deliveries whose subscription sends no digests any more: one digest each, now."""
    connection = session.connection()
    digesting = select(S.id).where(S.digest.is_not(None))
    orphaned = connection.execute(
        select(D.digest_of, D.workspace_id, D.event_type)
        .where(_held(), D.digest_of.not_in(digesting))
        .distinct()
        .limit(SUBSCRIPTIONS_AT_MOST)
    ).all()
    made: list[Made] = []
    for subscription_id, workspace_id, event_type in orphaned:
        if subscription_id is None:
            continue
        title = f"Jira digest · {_label(event_type)}"
        made_now, _ = _fold_held(session, subscription_id, workspace_id, title, None, now)
        made.extend(made_now)
    return made


def _fold_held(
    session: Session,
    subscription_id: str,
    workspace_id: str,
    title: str,
    schedule: DigestSchedule | None,
    now: datetime,
) -> tuple[list[Made], bool]:
    """Fold the subscription's held deliveries, per channel, into digests. Returns what was
    made and whether nothing is left held."""
    connection = session.connection()
    query = (
        select(D.id, D.event_id, D.webhook_id, D.created_at)
        .where(D.digest_of == subscription_id, _held())
        .order_by(D.id)
        .limit(HELD_AT_MOST + 1)
    )
    if connection.dialect.name == "postgresql":
        query = query.with_for_update(skip_locked=True, of=D)
    rows = connection.execute(query).all()
    complete = len(rows) <= HELD_AT_MOST
    rows = rows[:HELD_AT_MOST]
    if not rows:
        return [], True
    site = connection.execute(
        select(Workspace.jira_base_url).where(Workspace.id == workspace_id)
    ).scalar()
    envelopes: dict[str, Any] = dict(
        connection.execute(
            select(JiraEventRecord.id, JiraEventRecord.envelope).where(
                JiraEventRecord.id.in_({r.event_id for r in rows})
            )
        ).all()
    )
    by_channel: dict[str | None, list[Any]] = {}
    for row in rows:
        by_channel.setdefault(row.webhook_id, []).append(row)
    made = []
    for group in by_channel.values():
        events = [
            JiraEvent.model_validate(envelopes[r.event_id])
            for r in group
            if envelopes.get(r.event_id)
        ]
        since = group[0].created_at
        label = (
            schedule.period_label(since)
            if schedule is not None
            else f"Since {since:%Y-%m-%d %H:%M} UTC"
        )
        message = _render(events, title, label, site) if events else None
        made.append(_fold(session, subscription_id, group, message, now))
    return made, complete


def _fold(
    session: Session,
    subscription_id: str,
    group: Sequence[Any],
    message: bytes | None,
    now: datetime,
) -> Made:
    first, rest = group[0], [r.id for r in group[1:]]
    connection = session.connection()
    values: dict[str, Any] = {
        "status": "pending",
        "card_kind": "digest",
        "next_attempt_at": now,
        "updated_at": now,
    }
    if message is not None:
        values["message"] = message.decode()
    connection.execute(
        update(D)
        .where(D.id == first.id)
        .values(**values)
        .execution_options(synchronize_session=False)
    )
    if rest:
        connection.execute(
            update(D)
            .where(D.id.in_(rest))
            .values(status="folded", folded_into=first.id, updated_at=now)
            .execution_options(synchronize_session=False)
        )
    return Made(subscription_id, first.id, len(group))


def _label(event_type: str) -> str:
    try:
        return EVENT_TYPE_LABELS[EventType(event_type)]
    except (ValueError, KeyError):
        return event_type


def _render(events: Sequence[JiraEvent], title: str, period: str, site: str | None) -> bytes:
    # Imported when a digest is made, not with the worker's hot path.
    from ticketmate.teams.summary_cards import render_digest

    return render_digest(events, title=title, period_label=period, jira_site=site)
