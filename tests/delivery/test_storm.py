"""Storm control against the real worker, database and Teams stand-in: a webhook with a
threshold gets its backlog of first attempts as summary cards; without one nothing changes."""

from __future__ import annotations

import asyncio
from datetime import datetime

import pytest
from sqlalchemy import update

from tests.support.factories import MadeWorkspace
from tests.support.teams import (
    ADMIN,
    deliveries,
    drain,
    event,
    make_subscription,
    make_webhook,
    store_and_route,
)
from ticketmate.delivery.worker import TeamsDeliveryWorker
from ticketmate.dev.teams_sink import TeamsSink
from ticketmate.ids import new_id
from ticketmate.models import IntegrationDelivery, JiraEventRecord
from ticketmate.routing.router import route_event
from ticketmate.state import Services
from ticketmate.teams import webhooks
from ticketmate.timeutil import utcnow

PATH = "/workflows/storm"


def storm_channel(
    svc: Services, workspace: MadeWorkspace, sink: TeamsSink, threshold: int | None
) -> str:
    hook = make_webhook(svc, workspace.id, "storm", sink.url(PATH))
    make_subscription(svc, workspace.id, hook, "issue_created")
    if threshold is not None:
        with svc.db.transaction() as session:
            webhooks.update_webhook(
                session,
                svc.keyring,
                workspace.id,
                hook,
                webhooks.WebhookUpdate(storm_threshold=threshold),
                allow_loopback=True,
                actor=ADMIN,
            )
    return hook


def burst(svc: Services, workspace_id: str, count: int, start: int = 1) -> list[str]:
    """`count` events routed in one transaction (as the intake's group commit does); their
    event ids in arrival order."""
    ids = []
    now = utcnow()
    with svc.db.transaction() as session:
        for n in range(start, start + count):
            envelope = event(["issue_created"], key=f"DEMO-{n}", summary=f"Storm {n}")
            record = JiraEventRecord(
                id=new_id(),
                workspace_id=workspace_id,
                received_at=now,
                jira_event=envelope.jira_event,
                status="routed",
                event_types=["issue_created"],
                issue_key=f"DEMO-{n}",
                summary=f"Storm {n}",
                raw_body="{}",
                headers={},
                envelope=envelope.as_json(),
            )
            session.add(record)
            session.flush()
            assert route_event(session, record, envelope, now) == 1
            ids.append(record.id)
    return ids


def carried_in_order(
    svc: Services, workspace: MadeWorkspace, sink: TeamsSink
) -> tuple[list[str], list[IntegrationDelivery]]:
    """The events in the order Teams received them: each request is matched to the delivery
    whose stored message it is, which carries its own event and those folded into it."""
    rows = deliveries(svc, workspace.id)
    by_message: dict[bytes, IntegrationDelivery] = {}
    for d in rows:
        if d.status == "delivered":
            assert d.message.encode() not in by_message  # every card is told apart
            by_message[d.message.encode()] = d
    folded: dict[str, list[IntegrationDelivery]] = {}
    for d in rows:
        if d.folded_into is not None:
            folded.setdefault(d.folded_into, []).append(d)
    events: list[str] = []
    for received in sink.received(PATH):
        d = by_message[received.body]
        events.append(d.event_id)
        events.extend(f.event_id for f in sorted(folded.get(d.id, []), key=lambda f: f.id))
    return events, rows


def assert_every_event_once(rows: list[IntegrationDelivery], arrived: list[str]) -> None:
    delivered = {d.id for d in rows if d.status == "delivered"}
    assert {d.status for d in rows} <= {"delivered", "folded"}
    for d in rows:
        if d.status == "folded":
            assert d.folded_into in delivered  # folded into exactly one delivered summary
            assert d.attempt_count == 0
        else:
            assert d.folded_into is None
    assert sorted(d.event_id for d in rows) == sorted(arrived)


def test_a_burst_of_500_arrives_as_summary_cards_in_order_within_the_limit(
    svc: Services, workspace: MadeWorkspace, sink: TeamsSink
) -> None:
    storm_channel(svc, workspace, sink, threshold=40)
    arrived = burst(svc, workspace.id, 500)
    drain(svc)
    received = sink.received(PATH)
    # 25 summaries of 20: a minute and more of single cards at 4/s goes out in seconds.
    assert len(received) <= 40, len(received)
    events, rows = carried_in_order(svc, workspace, sink)
    assert events == arrived  # every event exactly once, in the order it arrived
    assert_every_event_once(rows, arrived)
    for summary in (d for d in rows if d.status == "delivered"):
        assert 1 + sum(1 for d in rows if d.folded_into == summary.id) <= 20
    times = [r.at for r in received]
    spans = [later - earlier for earlier, later in zip(times, times[4:], strict=False)]
    assert min(spans) >= 1.0, spans  # never more than four in a rolling second


def test_off_by_default_every_event_is_its_own_card(
    svc: Services, workspace: MadeWorkspace, sink: TeamsSink
) -> None:
    storm_channel(svc, workspace, sink, threshold=None)
    svc.settings = svc.settings.model_copy(update={"channel_rate_per_second": 1000})
    arrived = burst(svc, workspace.id, 30)
    drain(svc)
    assert len(sink.received(PATH)) == 30
    events, rows = carried_in_order(svc, workspace, sink)
    assert events == arrived
    assert all(d.status == "delivered" and d.folded_into is None for d in rows)


def test_at_or_below_the_threshold_nothing_is_folded(
    svc: Services, workspace: MadeWorkspace, sink: TeamsSink
) -> None:
    storm_channel(svc, workspace, sink, threshold=40)
    svc.settings = svc.settings.model_copy(update={"channel_rate_per_second": 1000})
    arrived = burst(svc, workspace.id, 40)
    drain(svc)
    assert len(sink.received(PATH)) == 40
    events, rows = carried_in_order(svc, workspace, sink)
    assert events == arrived
    assert all(d.status == "delivered" and d.folded_into is None for d in rows)


def retried(svc: Services, event_ids: list[str], now: datetime) -> None:
    """Make these events' deliveries retries that are due: one attempt made already."""
    D = IntegrationDelivery
    with svc.db.transaction() as session:
        session.execute(
            update(D)
            .where(D.event_id.in_(event_ids))
            .values(attempt_count=1, next_attempt_at=now)
            .execution_options(synchronize_session=False)
        )


def test_retries_are_never_folded(svc: Services, workspace: MadeWorkspace, sink: TeamsSink) -> None:
    storm_channel(svc, workspace, sink, threshold=5)
    svc.settings = svc.settings.model_copy(update={"channel_rate_per_second": 1000})
    retries = burst(svc, workspace.id, 12)
    retried(svc, retries, utcnow())
    firsts = burst(svc, workspace.id, 45, start=100)
    drain(svc)
    rows = deliveries(svc, workspace.id)
    by_event = {d.event_id: d for d in rows}
    for event_id in retries:  # twelve retries, more than the threshold: each its own card
        d = by_event[event_id]
        assert (d.status, d.folded_into, d.attempt_count) == ("delivered", None, 2)
    assert len(sink.received(PATH)) == 12 + 3  # and 45 first attempts as 20 + 20 + 5
    assert sum(1 for e in firsts if by_event[e].status == "folded") == 45 - 3
    events, _ = carried_in_order(svc, workspace, sink)
    assert sorted(events) == sorted(retries + firsts)
    assert [e for e in events if e in set(firsts)] == firsts


def test_events_queued_after_a_fold_go_after_its_summaries(
    svc: Services, workspace: MadeWorkspace, sink: TeamsSink
) -> None:
    storm_channel(svc, workspace, sink, threshold=5)
    svc.settings = svc.settings.model_copy(update={"channel_rate_per_second": 1000})
    first = burst(svc, workspace.id, 30)
    drain(svc)
    later = [store_and_route(svc, workspace.id, event(["issue_created"], key="OPS-1"))[0]]
    drain(svc)
    events, rows = carried_in_order(svc, workspace, sink)
    assert events == first + later
    assert_every_event_once(rows, first + later)


def test_two_workers_and_a_burst_still_arriving_carry_every_event_once_in_order(
    svc: Services, workspace: MadeWorkspace, sink: TeamsSink
) -> None:
    """The fold happens at claims and top-ups while events keep coming, with two workers
    competing for the lane: nothing is folded twice, lost, or sent out of order."""
    storm_channel(svc, workspace, sink, threshold=10)
    arrived: list[str] = []

    async def feed() -> None:
        for n in range(10):
            arrived.extend(await asyncio.to_thread(burst, svc, workspace.id, 20, 1 + 20 * n))
            await asyncio.sleep(0.2)

    async def run() -> None:
        workers = [TeamsDeliveryWorker(svc, worker_id=f"w{n}") for n in range(2)]
        await asyncio.gather(feed(), *(w.run(once=True) for w in workers))

    asyncio.run(run())
    drain(svc)  # whatever arrived after both had found nothing more to do
    received = sink.received(PATH)
    assert len(received) < 60, len(received)  # 200 events, at 4/s: far fewer cards than events
    events, rows = carried_in_order(svc, workspace, sink)
    assert events == arrived
    assert_every_event_once(rows, arrived)
    times = [r.at for r in received]
    spans = [later - earlier for earlier, later in zip(times, times[4:], strict=False)]
    assert not spans or min(spans) >= 1.0, spans


def test_a_summary_that_cannot_be_drawn_leaves_the_cards_as_they_were(
    svc: Services, workspace: MadeWorkspace, sink: TeamsSink, monkeypatch: pytest.MonkeyPatch
) -> None:
    from ticketmate.teams import summary_cards

    def broken(*_args: object, **_kwargs: object) -> bytes:
        raise ValueError("cannot draw")

    monkeypatch.setattr(summary_cards, "render_storm", broken)
    storm_channel(svc, workspace, sink, threshold=5)
    svc.settings = svc.settings.model_copy(update={"channel_rate_per_second": 1000})
    arrived = burst(svc, workspace.id, 12)
    drain(svc)
    assert len(sink.received(PATH)) == 12  # the channel is not held up: one card each
    events, rows = carried_in_order(svc, workspace, sink)
    assert events == arrived
    assert all(d.status == "delivered" and d.folded_into is None for d in rows)
