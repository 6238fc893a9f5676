"""Claiming in bulk: many lanes and their first deliveries in one transaction; top-ups that
keep a lane's leases; concurrent claims on PostgreSQL that skip each other's lanes."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta

import pytest
from sqlalchemy import event as sa_event
from sqlalchemy import text

from tests.support.factories import MadeWorkspace
from tests.support.teams import deliveries, event, make_subscription, make_webhook, store_and_route
from ticketmate.delivery import queue
from ticketmate.dev.teams_sink import TeamsSink
from ticketmate.state import Services
from ticketmate.timeutil import utcnow

LEASE = timedelta(seconds=60)


def channels(svc: Services, workspace: MadeWorkspace, sink: TeamsSink, count: int) -> list[str]:
    hooks = []
    for n in range(count):
        hook = make_webhook(svc, workspace.id, f"ch{n}", sink.url(f"/workflows/ch{n}"))
        make_subscription(svc, workspace.id, hook, "issue_created")
        hooks.append(hook)
    return hooks


@contextmanager
def statements(svc: Services) -> Iterator[list[str]]:
    seen: list[str] = []

    def capture(_conn: object, _cursor: object, statement: str, *_: object) -> None:
        seen.append(statement)

    sa_event.listen(svc.db.engine, "before_cursor_execute", capture)
    try:
        yield seen
    finally:
        sa_event.remove(svc.db.engine, "before_cursor_execute", capture)


def test_several_lanes_and_their_deliveries_come_in_one_transaction_of_few_statements(
    svc: Services, workspace: MadeWorkspace, sink: TeamsSink
) -> None:
    hooks = channels(svc, workspace, sink, 6)
    for n in range(4):
        store_and_route(svc, workspace.id, event(["issue_created"], key=f"DEMO-{n}"))
    queued = {d.id: d for d in deliveries(svc, workspace.id)}
    with statements(svc) as seen, svc.db.transaction() as session:
        claimed = queue.claim_lanes_with_work(
            session, worker_id="w", now=utcnow(), lease=LEASE, limit=10, take=3
        )
    assert sorted(lane.webhook_id for lane, _ in claimed) == sorted(hooks)
    for lane, works in claimed:
        assert len(works) == 3  # up to `take` each, oldest first
        assert [w.delivery_id for w in works] == sorted(w.delivery_id for w in works)
        assert {queued[w.delivery_id].webhook_id for w in works} == {lane.webhook_id}
    # However many lanes: claim, lease, the due rows, their subscriptions, mark in flight.
    writes = [s for s in seen if not s.lstrip().upper().startswith(("BEGIN", "COMMIT"))]
    assert len(writes) <= 5, writes
    taken = {w.delivery_id for _, works in claimed for w in works}
    for d in deliveries(svc, workspace.id):
        assert d.status == ("in_flight" if d.id in taken else "pending")


def test_a_top_up_renews_the_lane_and_what_it_holds_in_flight(
    svc: Services, workspace: MadeWorkspace, sink: TeamsSink
) -> None:
    channels(svc, workspace, sink, 1)
    for n in range(5):
        store_and_route(svc, workspace.id, event(["issue_created"], key=f"DEMO-{n}"))
    start = utcnow()
    with svc.db.transaction() as session:
        [(lane, first)] = queue.claim_lanes_with_work(
            session, worker_id="a", now=start, lease=LEASE, limit=10, take=2
        )
    halfway = start + LEASE / 2
    with svc.db.transaction() as session:
        more = queue.take_batch(
            session, lane=lane, worker_id="a", now=halfway, lease=LEASE, limit=50
        )
    assert len(first) == 2
    assert len(more) == 3
    assert {w.delivery_id for w in first}.isdisjoint(w.delivery_id for w in more)
    # When the first lease would have run out, nothing a holds is free for anyone else.
    after_first_lease = start + LEASE + timedelta(seconds=1)
    with svc.db.transaction() as session:
        assert (
            queue.claim_lanes_with_work(
                session, worker_id="b", now=after_first_lease, lease=LEASE, limit=10, take=50
            )
            == []
        )
    for d in deliveries(svc, workspace.id):
        assert d.status == "in_flight"
        assert d.locked_until is not None
        assert d.locked_until >= halfway + LEASE - timedelta(seconds=1)


def test_concurrent_claims_skip_the_lanes_another_claim_holds_locked(
    svc: Services, workspace: MadeWorkspace, sink: TeamsSink
) -> None:
    if svc.db.dialect != "postgresql":
        pytest.skip("on SQLite the write transaction serialises claims; SKIP LOCKED is PG's")
    hooks = channels(svc, workspace, sink, 4)
    store_and_route(svc, workspace.id, event(["issue_created"]))
    now = utcnow()
    held = threading.Event()
    finish = threading.Event()
    first: list[str] = []

    def hold_a_claim_open() -> None:
        with svc.db.transaction() as session:
            claimed = queue.claim_lanes_with_work(
                session, worker_id="a", now=now, lease=LEASE, limit=2, take=10
            )
            first.extend(lane.webhook_id for lane, _ in claimed)
            held.set()
            finish.wait(timeout=30)  # the transaction stays open, its row locks held

    holder = threading.Thread(target=hold_a_claim_open)
    holder.start()
    try:
        assert held.wait(timeout=30)
        with svc.db.transaction() as session:
            # Without SKIP LOCKED this would wait for the other transaction: fail instead.
            session.execute(text("SET LOCAL lock_timeout = '3s'"))
            second = queue.claim_lanes_with_work(
                session, worker_id="b", now=now, lease=LEASE, limit=10, take=10
            )
    finally:
        finish.set()
        holder.join(timeout=30)
    assert len(first) == 2
    assert sorted(first + [lane.webhook_id for lane, _ in second]) == sorted(hooks)
    assert all(len(works) == 1 for _, works in second)
