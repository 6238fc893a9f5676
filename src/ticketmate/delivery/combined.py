"""The worker's half of combining (routing/combine.py): draw a head's combined card when its
window has closed and it is taken, from its own event and every event folded into it.

Called by the take (delivery/queue.py) after the heads are marked in flight, in the same
transaction: from then on nothing joins them, and anything that joined before has committed
(see routing/combine.py), so the card drawn here carries every event folded into the head. The
card is stored on the head, so the Delivery Log shows what was sent and a retry sends it again.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.engine import Connection

from ticketmate.jira.events import EventType, JiraEvent
from ticketmate.models import IntegrationDelivery, JiraEventRecord

log = logging.getLogger(__name__)

D = IntegrationDelivery


def draw_combined(connection: Connection, heads: Sequence[Any]) -> dict[str, bytes]:
    """{head id: its combined card} for the heads that carry other events; a head alone keeps
    the card it was queued with. A card that cannot be drawn (an event without a stored
    envelope) is left as queued, with the events folded into it still linked to it."""
    members: dict[str, list[tuple[str, str]]] = {h.id: [(h.id, h.event_id)] for h in heads}
    for member_id, event_id, head in connection.execute(
        select(D.id, D.event_id, D.folded_into)
        .where(D.folded_into.in_(list(members)))
        .order_by(D.id)
    ):
        members[str(head)].append((member_id, event_id))
    combining = {h: m for h, m in members.items() if len(m) > 1}
    if not combining:
        return {}
    envelopes: dict[str, Any] = dict(
        connection.execute(
            select(JiraEventRecord.id, JiraEventRecord.envelope).where(
                JiraEventRecord.id.in_({e for m in combining.values() for _, e in m})
            )
        ).all()
    )
    types = {h.id: h.event_type for h in heads}
    drawn: dict[str, bytes] = {}
    for head, carried in combining.items():
        try:
            events = [JiraEvent.model_validate(envelopes[event_id]) for _, event_id in carried]
            drawn[head] = _render(events, EventType(types[head]))
        except Exception:
            log.exception("the combined card of delivery %s could not be drawn", head)
            continue
        connection.execute(
            update(D)
            .where(D.id == head)
            .values(message=drawn[head].decode())
            .execution_options(synchronize_session=False)
        )
    return drawn


def _render(events: Sequence[JiraEvent], event_type: EventType) -> bytes:
    # Imported when a combined card is drawn, not with the worker's hot path (queue.py).
    from ticketmate.teams.summary_cards import render_combined

    return render_combined(events, event_type)
