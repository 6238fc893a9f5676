"""Storm control: a channel whose backlog passes its webhook's threshold gets summary cards.

A webhook may set `storm_threshold` (off when null). When a lane of such a webhook is claimed
or topped up (queue._take) and more than that many first-attempt deliveries wait for the
channel (status pending, no attempt made yet, due or not), they are folded, oldest first, into
summary deliveries of up to STORM_GROUP events each, in the same transaction as the claim:

- A summary reuses the row of the first delivery it combines: its message becomes the storm
  card of its events (teams/summary_cards.render_storm), so it keeps that delivery's place in
  the lane (lanes go ORDER BY id) and is sent before anything queued after the folded ones.
- The others become `folded` (a final status) with `folded_into` = the summary's id. Every
  event is thus carried exactly once: by its own delivery, or by the one it was folded into.
- Retries (attempt_count > 0) and deliveries in flight are never folded. A delivery none of
  whose subscriptions is enabled is left alone (the take skips it, as before). A delivery
  whose event has no stored envelope cannot be drawn in a summary: it stays a card of its own
  and ends the group before it, so the order still holds.

Locks: the caller holds the lane. On PostgreSQL claim_lanes holds the webhook row FOR UPDATE
and take_batch has just updated it, so no other holder can take or fold these rows meanwhile;
deleting or disabling the webhook waits for that row too. On SQLite the write transaction is
the lock.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from ticketmate.jira.events import JiraEvent
from ticketmate.metrics import DELIVERIES_FINISHED
from ticketmate.models import IntegrationDelivery, JiraEventRecord, TeamsSubscription

log = logging.getLogger(__name__)

D = IntegrationDelivery

STORM_GROUP = 20  # events per summary card
# A storm lane takes this many deliveries at a time (about a second's worth at Teams' 4/s), so
# that it tops up, and folds what piled up meanwhile, often.
STORM_TAKE = 4
# Deliveries folded per transaction at most; the rest are folded at the lane's next top-up.
FOLD_AT_MOST = 2000


def _waiting_first_attempts(webhook_id: str) -> Any:
    from ticketmate.delivery.queue import DUE_STATUSES, status_in

    return (
        D.webhook_id == webhook_id,
        status_in(DUE_STATUSES),  # repeated literally: the lane's partial index serves it
        D.status == "pending",
        D.attempt_count == 0,
        # A card waiting to combine updates to its issue already carries others; it is sent
        # on its own when its window closes (routing/combine.py).
        D.combine_until.is_(None),
    )


def fold_lane(
    session: Session, *, webhook_id: str, threshold: int, now: datetime
) -> list[tuple[str, list[str]]]:
    """Fold the channel's waiting first attempts if there are more than `threshold`.
    Returns (summary id, ids folded into it) per summary made."""
    connection = session.connection()
    conditions = _waiting_first_attempts(webhook_id)
    over = connection.execute(
        select(D.id).where(*conditions).order_by(D.id).limit(threshold + 1)
    ).all()
    if len(over) <= threshold:
        return []
    rows = connection.execute(
        select(
            D.id,
            D.event_id,
            D.channel_name,
            D.subscription_ids,
            D.next_attempt_at,
        )
        .where(*conditions)
        .order_by(D.id)
        .limit(FOLD_AT_MOST)
    ).all()
    wanted = {sid for r in rows for sid in (r.subscription_ids or [])}
    live = set(
        connection.execute(
            select(TeamsSubscription.id).where(
                TeamsSubscription.id.in_(wanted), TeamsSubscription.enabled.is_(True)
            )
        ).scalars()
    )
    rows = [r for r in rows if live & set(r.subscription_ids or [])]
    if len(rows) <= threshold:
        return []
    envelopes: dict[str, dict[str, Any] | None] = {}
    for event_id, envelope in connection.execute(
        select(JiraEventRecord.id, JiraEventRecord.envelope).where(
            JiraEventRecord.id.in_({r.event_id for r in rows})
        )
    ):
        envelopes[event_id] = envelope
    groups: list[list[Any]] = [[]]
    for r in rows:
        if envelopes.get(r.event_id):
            groups[-1].append(r)
            if len(groups[-1]) == STORM_GROUP:
                groups.append([])
        elif groups[-1]:
            groups.append([])  # it stays a card of its own, between the groups
    made: list[tuple[str, list[str]]] = []
    for group in groups:
        if len(group) < 2:
            continue
        try:
            events = [JiraEvent.model_validate(envelopes[r.event_id]) for r in group]
            message = _render(events, group[0].channel_name)
        except Exception:
            # A card that cannot be drawn must not hold the channel up: these go one by one.
            log.exception("storm summary for webhook %s could not be drawn", webhook_id)
            continue
        made.append(_fold(session, group, message, live, now))
    folded = sum(len(ids) for _, ids in made)
    if folded:
        DELIVERIES_FINISHED.labels("folded").inc(folded)
    return made


def _render(events: Sequence[JiraEvent], channel_name: str) -> bytes:
    # Imported when a storm is folded, not with the worker's hot path (queue.py).
    from ticketmate.teams.summary_cards import render_storm

    return render_storm(events, channel_name=channel_name)


def _fold(
    session: Session,
    group: Sequence[Any],
    message: bytes,
    live: set[str],
    now: datetime,
) -> tuple[str, list[str]]:
    first, rest = group[0], [r.id for r in group[1:]]
    subscription_ids: list[str] = []
    for r in group:
        for sid in r.subscription_ids or []:
            if sid in live and sid not in subscription_ids:
                subscription_ids.append(sid)
    connection = session.connection()
    connection.execute(
        update(D)
        .where(D.id == first.id)
        .values(
            message=message.decode(),
            card_kind="storm",
            subscription_ids=subscription_ids,
            next_attempt_at=min(r.next_attempt_at for r in group),
            updated_at=now,
        )
        .execution_options(synchronize_session=False)
    )
    connection.execute(
        update(D)
        .where(D.id.in_(rest))
        .values(
            status="folded",
            folded_into=first.id,
            locked_until=None,
            worker_id=None,
            last_error=None,
            updated_at=now,
        )
        .execution_options(synchronize_session=False)
    )
    return first.id, rest
