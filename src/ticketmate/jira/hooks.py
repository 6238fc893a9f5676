"""Where intake hands over to routing and delivery (built in the routing issue).

Intake calls these through the module (`hooks.route_event(...)`), so the routing work can
fill in the bodies without touching intake, and tests can replace them.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from sqlalchemy import select
from sqlalchemy.orm import Session

from ticketmate.delivery.embedded import wake_worker
from ticketmate.jira.events import JiraEvent
from ticketmate.models import IntegrationDelivery as D
from ticketmate.models import JiraEventRecord
from ticketmate.routing import router as routing
from ticketmate.state import Services
from ticketmate.timeutil import utcnow


class RouteEvent(Protocol):
    """Routes one stored, understood event; answers how many deliveries it enqueued."""

    def __call__(
        self, session: Session, svc: Services, record: JiraEventRecord, envelope: JiraEvent
    ) -> int: ...


def route_event(
    session: Session, svc: Services, record: JiraEventRecord, envelope: JiraEvent
) -> int:
    """Called inside the transaction that stored `record` (already flushed), only for
    events with status "routed" that are not a second report of the same comment.

    Enqueue the deliveries in `session` and return their number. An exception is logged and
    rolled back to a savepoint; the event itself stays stored.
    """
    return routing.route_event(session, record, envelope, utcnow())


def after_commit(svc: Services) -> None:
    """Called on the event loop thread after an event was committed with deliveries > 0.

    Must not block: it is meant to wake the delivery worker.
    """
    wake_worker(svc)


def delivery_ids(session: Session, event_ids: Sequence[str]) -> dict[str, list[str]]:
    """The ids of the deliveries enqueued for each event, for the events list."""
    found: dict[str, list[str]] = {event_id: [] for event_id in event_ids}
    if not event_ids:
        return found
    rows = session.execute(
        select(D.event_id, D.id).where(D.event_id.in_(list(event_ids))).order_by(D.id)
    )
    for event_id, delivery_id in rows:
        found[event_id].append(delivery_id)
    return found


# Checked by mypy: the default implementation fits the protocol the routing work must keep.
_route_event_fits: RouteEvent = route_event
