"""Retention: finished deliveries and their events go after the retention period."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import func, select

from tests.support.factories import MadeWorkspace
from tests.support.teams import (
    deliveries,
    drain,
    event,
    make_subscription,
    make_webhook,
    store_and_route,
)
from ticketmate.delivery.queue import purge_finished
from ticketmate.dev.teams_sink import Answer, TeamsSink
from ticketmate.models import DeliveryAttempt, JiraEventRecord
from ticketmate.state import Services
from ticketmate.timeutil import utcnow


def test_purge_keeps_dead_letters_and_recent_work(
    svc: Services, workspace: MadeWorkspace, sink: TeamsSink
) -> None:
    hook = make_webhook(svc, workspace.id, "eng", sink.url("/workflows/eng"))
    make_subscription(svc, workspace.id, hook, "issue_created")
    old = utcnow() - timedelta(days=40)
    sink.script("/workflows/eng", Answer(202, ""), Answer(400, "bad"))
    store_and_route(svc, workspace.id, event(["issue_created"], key="OLD-1"), now=old)
    store_and_route(svc, workspace.id, event(["issue_created"], key="OLD-2"), now=old)
    drain(svc, clock=lambda: old)  # delivered and dead-lettered 40 days ago
    store_and_route(svc, workspace.id, event(["issue_created"], key="NEW-1"))
    drain(svc)
    with svc.db.transaction() as session:
        purged = purge_finished(session, before=utcnow() - timedelta(days=30))
    assert purged == 2  # the old delivered delivery, and then its event
    left = {d.issue_key: d.status for d in deliveries(svc, workspace.id)}
    assert left == {"OLD-2": "dead_letter", "NEW-1": "delivered"}
    with svc.db.transaction() as session:
        keys = set(session.scalars(select(JiraEventRecord.issue_key)))
        attempts = session.scalar(select(func.count()).select_from(DeliveryAttempt))
        assert purge_finished(session, before=utcnow() - timedelta(days=30)) == 0
    assert keys == {"OLD-2", "NEW-1"}  # the dead letter keeps its event
    assert attempts == 2
