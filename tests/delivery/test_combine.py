"""Combining updates to the same issue: a subscription with a window gets one card per issue
and window, drawn when the window closes, against the real worker, database and Teams
stand-in; every event stays linked to the card that carried it."""

from __future__ import annotations

import json
import threading
from datetime import timedelta

from tests.support.factories import MadeWorkspace
from tests.support.teams import (
    deliveries,
    drain,
    event,
    make_subscription,
    make_webhook,
    store_and_route,
)
from ticketmate.delivery import queue
from ticketmate.dev.teams_sink import Answer, TeamsSink
from ticketmate.jira.events import EventType, JiraEvent
from ticketmate.metrics import REGISTRY
from ticketmate.models import IntegrationDelivery
from ticketmate.state import Services
from ticketmate.teams.cards import render_message
from ticketmate.timeutil import utcnow

PATH = "/workflows/combined"
D = IntegrationDelivery


def channel(
    svc: Services, workspace: MadeWorkspace, sink: TeamsSink, combine: str = "30s"
) -> tuple[str, str]:
    hook = make_webhook(svc, workspace.id, "combined", sink.url(PATH))
    subscription = make_subscription(svc, workspace.id, hook, "issue_updated", combine=combine)
    return hook, subscription


def update_of(key: str, n: int) -> JiraEvent:
    """An issue_updated event of `key` whose change n says what it was."""
    envelope = event(["issue_updated"], key=key, summary=f"{key} summary").as_json()
    envelope["changes"] = [{"field": "assignee", "from": f"Person {n}", "to": f"Person {n + 1}"}]
    return JiraEvent.model_validate(envelope)


def card_text(body: bytes) -> str:
    return json.dumps(json.loads(body))


def folded_so_far() -> float:
    found = REGISTRY.get_sample_value("ticketmate_deliveries_finished_total", {"outcome": "folded"})
    return found or 0.0


def test_updates_within_the_window_become_one_card_listing_each_change(
    svc: Services, workspace: MadeWorkspace, sink: TeamsSink
) -> None:
    channel(svc, workspace, sink, "30s")
    t0 = utcnow()
    before = folded_so_far()
    ids = [
        store_and_route(
            svc, workspace.id, update_of("DEMO-1", n), now=t0 + timedelta(seconds=5 * n)
        )[0]
        for n in range(3)
    ]
    assert folded_so_far() == before + 2  # final once folded, and counted as such
    drain(svc, clock=lambda: t0 + timedelta(seconds=20))
    assert sink.received(PATH) == []  # the window is still open: nothing goes yet
    drain(svc, clock=lambda: t0 + timedelta(seconds=31))
    [card] = sink.received(PATH)
    text = card_text(card.body)
    assert "DEMO-1" in text
    assert "3 updates" in text
    for n in range(3):
        assert f"Person {n + 1}" in text, n  # each change is on the card
    rows = {d.event_id: d for d in deliveries(svc, workspace.id)}
    head = rows[ids[0]]
    assert (head.status, head.card_kind) == ("delivered", "combined")
    assert head.message.encode() == card.body  # the Delivery Log keeps what was sent
    for event_id in ids[1:]:
        assert (rows[event_id].status, rows[event_id].folded_into) == ("folded", head.id)


def test_the_window_is_measured_from_its_first_update(
    svc: Services, workspace: MadeWorkspace, sink: TeamsSink
) -> None:
    channel(svc, workspace, sink, "10s")
    t0 = utcnow()
    first = store_and_route(svc, workspace.id, update_of("DEMO-1", 0), now=t0)[0]
    second = store_and_route(
        svc, workspace.id, update_of("DEMO-1", 1), now=t0 + timedelta(seconds=8)
    )[0]
    # 12 s after the first: the first window closed at 10 s, this one starts a new card.
    third = store_and_route(
        svc, workspace.id, update_of("DEMO-1", 2), now=t0 + timedelta(seconds=12)
    )[0]
    rows = {d.event_id: d for d in deliveries(svc, workspace.id)}
    assert rows[second].folded_into == rows[first].id
    assert rows[third].status == "pending"
    assert rows[third].folded_into is None
    assert rows[third].combine_until == t0 + timedelta(seconds=22)
    drain(svc, clock=lambda: t0 + timedelta(seconds=23))
    bodies = [card_text(r.body) for r in sink.received(PATH)]
    assert len(bodies) == 2
    assert "2 updates" in bodies[0]
    assert "Person 2" in bodies[0]
    assert "Person 3" in bodies[1]  # the lone update of the second window: its own card


def test_other_issues_and_other_channels_are_not_combined(
    svc: Services, workspace: MadeWorkspace, sink: TeamsSink
) -> None:
    hook, _ = channel(svc, workspace, sink, "30s")
    other = make_webhook(svc, workspace.id, "other", sink.url("/workflows/other"))
    make_subscription(svc, workspace.id, other, "issue_updated", combine="30s")
    t0 = utcnow()
    for n, key in enumerate(["DEMO-1", "DEMO-2", "DEMO-1", "DEMO-2"]):
        store_and_route(svc, workspace.id, update_of(key, n), now=t0 + timedelta(seconds=n))
    rows = deliveries(svc, workspace.id)
    heads = [d for d in rows if d.folded_into is None]
    # Per channel and issue: two issues on two channels make four cards.
    assert sorted((d.webhook_id == hook, d.issue_key) for d in heads) == [
        (False, "DEMO-1"),
        (False, "DEMO-2"),
        (True, "DEMO-1"),
        (True, "DEMO-2"),
    ]
    for d in rows:
        if d.folded_into is not None:
            head = next(h for h in heads if h.id == d.folded_into)
            assert (head.webhook_id, head.issue_key) == (d.webhook_id, d.issue_key)
    drain(svc, clock=lambda: t0 + timedelta(seconds=40))
    assert len(sink.received(PATH)) == 2
    assert len(sink.received("/workflows/other")) == 2


def test_a_channel_that_also_takes_each_event_at_once_gets_it_at_once(
    svc: Services, workspace: MadeWorkspace, sink: TeamsSink
) -> None:
    hook, _ = channel(svc, workspace, sink, "5m")
    make_subscription(svc, workspace.id, hook, "issue_updated")  # no window
    t0 = utcnow()
    store_and_route(svc, workspace.id, update_of("DEMO-1", 0), now=t0)
    store_and_route(svc, workspace.id, update_of("DEMO-1", 1), now=t0)
    drain(svc, clock=lambda: t0)
    assert len(sink.received(PATH)) == 2
    assert all(d.combine_until is None for d in deliveries(svc, workspace.id))


def test_a_lone_update_goes_as_its_ordinary_card(
    svc: Services, workspace: MadeWorkspace, sink: TeamsSink
) -> None:
    channel(svc, workspace, sink, "10s")
    t0 = utcnow()
    envelope = update_of("DEMO-7", 0)
    store_and_route(svc, workspace.id, envelope, now=t0)
    drain(svc, clock=lambda: t0 + timedelta(seconds=11))
    [card] = sink.received(PATH)
    assert card.body == render_message(envelope, EventType.ISSUE_UPDATED)


def test_an_update_after_the_card_was_taken_starts_a_new_one(
    svc: Services, workspace: MadeWorkspace, sink: TeamsSink
) -> None:
    """A head the worker has marked in flight takes no more updates, even inside its window
    (a clock a little behind the worker's): the update becomes a card of its own."""
    _hook, _ = channel(svc, workspace, sink, "30s")
    t0 = utcnow()
    first = store_and_route(svc, workspace.id, update_of("DEMO-1", 0), now=t0)[0]
    with svc.db.transaction() as session:
        [(_lane, works)] = queue.claim_lanes_with_work(
            session,
            worker_id="w",
            now=t0 + timedelta(seconds=31),
            lease=timedelta(seconds=60),
            limit=1,
            take=4,
        )
    assert [w.delivery_id for w in works] == [d.id for d in deliveries(svc, workspace.id)]
    late = store_and_route(
        svc, workspace.id, update_of("DEMO-1", 1), now=t0 + timedelta(seconds=20)
    )[0]
    rows = {d.event_id: d for d in deliveries(svc, workspace.id)}
    assert rows[first].status == "in_flight"
    assert rows[late].folded_into is None
    assert rows[late].combine_until is not None


def test_an_update_joining_while_the_worker_takes_the_card_is_on_it(
    svc: Services, workspace: MadeWorkspace, sink: TeamsSink
) -> None:
    """The intake joins a head inside its transaction while the worker takes the head: the
    worker waits for that transaction, so the card it draws carries the update — none is
    folded into a card already drawn."""
    channel(svc, workspace, sink, "30s")
    t0 = utcnow()
    store_and_route(svc, workspace.id, update_of("DEMO-1", 0), now=t0)
    from ticketmate.ids import new_id
    from ticketmate.models import JiraEventRecord
    from ticketmate.routing.router import route_event

    late = update_of("DEMO-1", 1)
    taken: list[bytes] = []
    # The worker holds the lane already (a lane topping itself up): a claim would pass over
    # a lane whose deliveries another transaction is writing.
    with svc.db.transaction() as session:
        [lane] = queue.claim_lanes(
            session,
            worker_id="w",
            now=t0 + timedelta(seconds=31),
            lease=timedelta(seconds=60),
            limit=1,
        )
    with svc.db.transaction() as session:
        record = JiraEventRecord(
            id=new_id(),
            workspace_id=workspace.id,
            received_at=t0,
            jira_event=late.jira_event,
            status="routed",
            event_types=["issue_updated"],
            issue_key="DEMO-1",
            summary="DEMO-1 summary",
            raw_body="{}",
            headers={},
            envelope=late.as_json(),
        )
        session.add(record)
        assert route_event(session, record, late, t0 + timedelta(seconds=20)) == 1

        def take() -> None:
            with svc.db.transaction() as other:
                taken.extend(
                    w.message
                    for w in queue.take_batch(
                        other,
                        lane=lane,
                        worker_id="w",
                        now=t0 + timedelta(seconds=31),
                        lease=timedelta(seconds=60),
                        limit=4,
                    )
                )

        worker = threading.Thread(target=take)
        worker.start()
        worker.join(timeout=1.0)
        assert worker.is_alive(), "the take did not wait for the joining transaction"
    worker.join(timeout=30)
    [card] = taken
    assert "2 updates" in card_text(card)
    assert "Person 2" in card_text(card)


def test_a_combined_card_is_retried_as_drawn(
    svc: Services, workspace: MadeWorkspace, sink: TeamsSink
) -> None:
    channel(svc, workspace, sink, "10s")
    sink.script(PATH, Answer(500, "busy"))
    t0 = utcnow()
    for n in range(2):
        store_and_route(svc, workspace.id, update_of("DEMO-1", n), now=t0 + timedelta(seconds=n))
    drain(svc, clock=lambda: t0 + timedelta(seconds=11))
    # Another update inside the first window's span, after the first try: it is not added.
    store_and_route(svc, workspace.id, update_of("DEMO-1", 9), now=t0 + timedelta(seconds=12))
    drain(svc, clock=lambda: t0 + timedelta(minutes=5))
    first, second, *rest = sink.received(PATH)
    assert first.answered == 500
    assert second.body == first.body
    assert "2 updates" in card_text(first.body)
    assert "Person 10" not in card_text(first.body)
    assert [r for r in rest if "Person 10" in card_text(r.body)]  # its own card, later
