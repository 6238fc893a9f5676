"""The completion writer: outcomes written in batches, and what happens when a batch fails."""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from datetime import timedelta

import pytest
from sqlalchemy import func, select, update

from tests.delivery.refusal import refuse_delivered
from tests.support.factories import MadeWorkspace
from tests.support.teams import (
    deliveries,
    drain,
    event,
    make_subscription,
    make_webhook,
    store_and_route,
)
from ticketmate.db import AsyncDatabase
from ticketmate.delivery import queue
from ticketmate.delivery.completions import CompletionWriter
from ticketmate.delivery.retry import RetryPolicy
from ticketmate.delivery.worker import TeamsDeliveryWorker
from ticketmate.dev.teams_sink import Answer, TeamsSink
from ticketmate.models import DeliveryAttempt, IntegrationDelivery, TeamsWebhook
from ticketmate.state import Services
from ticketmate.teams.client import classify
from ticketmate.timeutil import utcnow

CONNECTOR_429 = (
    "Webhook message delivery failed with error: Microsoft Teams endpoint returned HTTP error "
    "429 with ContextId tcid=0,server=msgapi-production-eus-azsc2-4-170,cv=deadbeef.0"
)


def channel(svc: Services, workspace: MadeWorkspace, sink: TeamsSink, path: str) -> str:
    hook = make_webhook(svc, workspace.id, path.strip("/").replace("/", "-"), sink.url(path))
    make_subscription(svc, workspace.id, hook, "issue_created")
    return hook


def keys_received(sink: TeamsSink, path: str | None = None) -> list[str]:
    return [
        r.json()["attachments"][0]["content"]["body"][2]["text"].split(":")[0]
        for r in sink.received(path)
    ]


def attempt_count(svc: Services) -> int:
    with svc.db.transaction() as session:
        return int(session.scalar(select(func.count()).select_from(DeliveryAttempt)) or 0)


def test_a_batch_whose_commit_fails_leaves_its_deliveries_due_and_they_go_again(
    svc: Services, workspace: MadeWorkspace, sink: TeamsSink
) -> None:
    channel(svc, workspace, sink, "/workflows/eng")
    for n in range(3):
        store_and_route(svc, workspace.id, event(["issue_created"], key=f"DEMO-{n}"))
    with refuse_delivered(svc):
        stats = drain(svc)
    # Sent, but not recorded: not delivered, and not lost either.
    assert keys_received(sink) == ["DEMO-0", "DEMO-1", "DEMO-2"]
    assert stats.delivered == 0
    assert [d.status for d in deliveries(svc, workspace.id)] == ["in_flight"] * 3
    assert attempt_count(svc) == 0  # the attempts were in the batch that rolled back
    # Nothing is due while the lease holds...
    assert drain(svc).sent == 0
    # ...and once it runs out, the same cards go again and are recorded this time.
    later = utcnow() + timedelta(minutes=5)
    stats = drain(svc, clock=lambda: later)
    assert stats.delivered == 3
    assert keys_received(sink) == ["DEMO-0", "DEMO-1", "DEMO-2"] * 2
    assert [d.status for d in deliveries(svc, workspace.id)] == ["delivered"] * 3
    assert attempt_count(svc) == 3


def test_a_connector_200_quoting_429_rests_the_channel_as_a_429_does(
    svc: Services, workspace: MadeWorkspace, sink: TeamsSink
) -> None:
    hook = channel(svc, workspace, sink, "/webhookb2/eng")
    other = channel(svc, workspace, sink, "/webhookb2/plain")
    sink.script("/webhookb2/eng", Answer(200, CONNECTOR_429, {"Retry-After": "120"}))
    sink.script("/webhookb2/plain", Answer(200, CONNECTOR_429))
    for n in range(3):
        store_and_route(svc, workspace.id, event(["issue_created"], key=f"DEMO-{n}"))
    before = utcnow()
    drain(svc)
    # One request each, then the channel rests: the other two wait, not sent.
    assert len(sink.received("/webhookb2/eng")) == 1
    assert len(sink.received("/webhookb2/plain")) == 1
    with svc.db.transaction() as session:
        rested = session.get(TeamsWebhook, hook)
        plain = session.get(TeamsWebhook, other)
        assert rested is not None
        assert plain is not None
        assert rested.paused_until is not None
        assert (rested.paused_until - before).total_seconds() >= 119  # Retry-After honoured
        assert plain.paused_until is not None  # no Retry-After: rests all the same
        assert plain.paused_until > before
    assert {d.status for d in deliveries(svc, workspace.id)} == {"pending"}


def test_a_lane_handed_over_mid_burst_keeps_order_and_the_rate(
    svc: Services, workspace: MadeWorkspace, sink: TeamsSink
) -> None:
    """Worker a stops after a few cards (its outcomes written, the lane released with its
    last answers' times); worker b carries on at once, within the same rolling second."""
    channel(svc, workspace, sink, "/workflows/eng")
    keys = [f"DEMO-{n}" for n in range(10)]
    for key in keys:
        store_and_route(svc, workspace.id, event(["issue_created"], key=key))

    async def hand_over() -> tuple[int, int]:
        first = TeamsDeliveryWorker(svc, worker_id="a")
        running = asyncio.create_task(first.run())
        while len(sink.received()) < 5:
            await asyncio.sleep(0.005)
        first.stop()
        sent_by_a = (await running).sent
        sent_by_b = (await TeamsDeliveryWorker(svc, worker_id="b").run(once=True)).sent
        return sent_by_a, sent_by_b

    by_a, by_b = asyncio.run(hand_over())
    assert by_a >= 5
    assert by_b >= 1
    assert by_a + by_b == 10
    assert keys_received(sink) == keys  # in order, each once
    times = [r.at for r in sink.received()]
    spans = [later - earlier for earlier, later in zip(times, times[4:], strict=False)]
    assert min(spans) >= 1.0, spans  # never 5 in a rolling second, across the hand-over
    assert {d.status for d in deliveries(svc, workspace.id)} == {"delivered"}


def test_a_batch_and_a_top_up_of_the_same_lane_wait_for_each_other_without_a_deadlock(
    svc: Services, workspace: MadeWorkspace, sink: TeamsSink, caplog: pytest.LogCaptureFixture
) -> None:
    """A lane tops up (its webhook's row, then its deliveries in flight) while the writer
    records an answer of the same lane. Both take the webhook first, so one waits for the
    other; taken in opposite orders they deadlock and PostgreSQL aborts one a second later."""
    if svc.db.dialect != "postgresql":
        pytest.skip("SQLite has one writer at a time: its transactions never interleave")
    hook = channel(svc, workspace, sink, "/workflows/eng")
    for n in range(2):
        store_and_route(svc, workspace.id, event(["issue_created"], key=f"DEMO-{n}"))
    lease = timedelta(minutes=5)
    with svc.db.transaction() as session:
        [(_lane, works)] = queue.claim_lanes_with_work(
            session, worker_id="w", now=utcnow(), lease=lease, limit=1, take=10
        )
    answered = classify(202, b"", latency_ms=5)
    recorded: list[object] = []

    async def record() -> None:
        adb = AsyncDatabase(svc.settings, pool_size=1)
        writer = CompletionWriter(
            adb,
            worker_id="w",
            policy=RetryPolicy((1.0,)),
            auto_disable_after=3,
            clock=utcnow,
        )
        writer.start()
        try:
            recorded.append(await (await writer.submit(works[0], answered, utcnow())))
        finally:
            await writer.close()
            await adb.dispose()

    caplog.set_level(logging.INFO, logger="ticketmate.delivery.completions")
    with svc.db.engine.connect() as top_up:
        with top_up.begin():
            # The top-up's first statement: the lane's row, renewed and so locked.
            top_up.execute(
                update(TeamsWebhook)
                .where(TeamsWebhook.id == hook)
                .values(lane_locked_until=utcnow() + lease)
            )
            writing = threading.Thread(target=asyncio.run, args=(record(),))
            writing.start()
            time.sleep(0.5)  # the writer's batch is under way and waits for the lane's row
            # Its second: the lane's deliveries in flight, the answered one among them.
            top_up.execute(
                update(IntegrationDelivery)
                .where(
                    IntegrationDelivery.webhook_id == hook,
                    IntegrationDelivery.status == "in_flight",
                )
                .values(locked_until=utcnow() + lease)
            )
        writing.join(timeout=30)
    assert [getattr(c, "status", None) for c in recorded] == ["delivered"]
    assert [r.getMessage() for r in caplog.records if "trying again" in r.getMessage()] == []
    assert [d.status for d in deliveries(svc, workspace.id)] == ["delivered", "in_flight"]
