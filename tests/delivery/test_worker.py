"""TeamsDeliveryWorker against a real local Teams stand-in: answers, order, rate, pauses."""

from __future__ import annotations

import json
import threading
from datetime import timedelta

import pytest
from sqlalchemy import select, text, update

from tests.support.factories import MadeWorkspace
from tests.support.teams import (
    deliveries,
    drain,
    event,
    make_subscription,
    make_webhook,
    store_and_route,
)
from ticketmate.delivery.queue import Lane
from ticketmate.dev.teams_sink import Answer, TeamsSink
from ticketmate.models import AuditEntry, DeliveryAttempt, TeamsWebhook
from ticketmate.state import Services
from ticketmate.timeutil import utcnow

CONNECTOR_429 = (
    "Webhook message delivery failed with error: Microsoft Teams endpoint returned HTTP error "
    "429 with ContextId tcid=0,server=msgapi-production-eus-azsc2-4-170,cv=deadbeef.0"
)


def channel(svc: Services, workspace: MadeWorkspace, sink: TeamsSink, path: str) -> str:
    hook = make_webhook(svc, workspace.id, path.strip("/").replace("/", "-"), sink.url(path))
    make_subscription(svc, workspace.id, hook, "issue_created")
    return hook


def attempts(svc: Services, delivery_id: str) -> list[DeliveryAttempt]:
    with svc.db.transaction() as session:
        return list(
            session.scalars(
                select(DeliveryAttempt)
                .where(DeliveryAttempt.delivery_id == delivery_id)
                .order_by(DeliveryAttempt.number)
            )
        )


def test_workflows_202_is_delivered_and_the_stored_body_is_what_arrives(
    svc: Services, workspace: MadeWorkspace, sink: TeamsSink
) -> None:
    channel(svc, workspace, sink, "/workflows/eng")
    store_and_route(svc, workspace.id, event(["issue_created"], summary="Ünïcödé — привет"))
    stats = drain(svc)
    assert stats.delivered == 1
    [received] = sink.received("/workflows/eng")
    [delivery] = deliveries(svc, workspace.id)
    assert received.body == delivery.message.encode()
    assert received.headers["Content-Type"] == "application/json"
    assert "привет" in json.dumps(received.json(), ensure_ascii=False)
    assert delivery.status == "delivered"
    assert delivery.delivered_at is not None
    [attempt] = attempts(svc, delivery.id)
    assert (attempt.status_code, attempt.outcome, attempt.error_kind) == (202, "delivered", None)


def test_connector_200_one_is_delivered(
    svc: Services, workspace: MadeWorkspace, sink: TeamsSink
) -> None:
    channel(svc, workspace, sink, "/webhookb2/eng")
    store_and_route(svc, workspace.id, event(["issue_created"]))
    drain(svc)
    [delivery] = deliveries(svc, workspace.id)
    assert delivery.status == "delivered"
    assert delivery.last_status_code == 200


def test_connector_200_with_an_error_text_is_not_a_success(
    svc: Services, workspace: MadeWorkspace, sink: TeamsSink
) -> None:
    channel(svc, workspace, sink, "/webhookb2/eng")
    sink.script("/webhookb2/eng", Answer(200, CONNECTOR_429))
    store_and_route(svc, workspace.id, event(["issue_created"]))
    drain(svc)
    [delivery] = deliveries(svc, workspace.id)
    assert delivery.status == "pending"  # retried later, not lost and not "delivered"
    [attempt] = attempts(svc, delivery.id)
    assert attempt.error_kind == "teams_error_in_body"
    assert attempt.outcome == "retry"
    assert "429" in (delivery.last_error or "")


@pytest.mark.parametrize("status", [400, 401, 403, 404, 410, 413])
def test_permanent_answers_go_to_dead_letter_at_once(
    svc: Services, workspace: MadeWorkspace, sink: TeamsSink, status: int
) -> None:
    channel(svc, workspace, sink, "/workflows/eng")
    sink.script("/workflows/eng", Answer(status, '{"error":{"code":"X","message":"no"}}'))
    store_and_route(svc, workspace.id, event(["issue_created"]))
    drain(svc)
    [delivery] = deliveries(svc, workspace.id)
    assert delivery.status == "dead_letter"
    assert delivery.attempt_count == 1
    assert delivery.last_status_code == status
    if status in (404, 410):
        assert "removed" in (delivery.last_error or "")


@pytest.mark.parametrize("status", [500, 502, 503, 408, 429])
def test_temporary_answers_are_retried_later(
    svc: Services, workspace: MadeWorkspace, sink: TeamsSink, status: int
) -> None:
    channel(svc, workspace, sink, "/workflows/eng")
    sink.script("/workflows/eng", Answer(status, ""))
    store_and_route(svc, workspace.id, event(["issue_created"]))
    before = utcnow()
    drain(svc)
    after = utcnow()
    [delivery] = deliveries(svc, workspace.id)
    assert delivery.status == "pending"
    # The first delay of the schedule, ± 20 % jitter, counted from the answer, which came
    # between `before` and `after` however long the drain took.
    first = timedelta(seconds=svc.settings.retry_schedule_seconds[0])
    assert before + first * 0.8 <= delivery.next_attempt_at <= after + first * 1.2


def test_timeout_is_retried_with_a_clear_reason(
    svc: Services, workspace: MadeWorkspace, sink: TeamsSink
) -> None:
    timeout, answer_after = 0.3, 20.0
    svc.settings = svc.settings.model_copy(update={"delivery_timeout_seconds": timeout})
    channel(svc, workspace, sink, "/workflows/slow")
    sink.script("/workflows/slow", Answer(202, "", delay_seconds=answer_after))
    store_and_route(svc, workspace.id, event(["issue_created"]))
    drain(svc)
    [delivery] = deliveries(svc, workspace.id)
    assert delivery.status == "pending"
    [attempt] = attempts(svc, delivery.id)
    assert attempt.error_kind == "timeout"
    assert attempt.status_code is None
    assert "did not answer within 0.3 s" in (attempt.message or "")
    # Given up at the timeout, not when the answer would have come (measured relative to both,
    # with room for a loaded machine).
    assert timeout * 1000 * 0.9 <= attempt.duration_ms < answer_after * 1000 / 2


def test_first_attempts_to_a_channel_go_in_arrival_order(
    svc: Services, workspace: MadeWorkspace, sink: TeamsSink
) -> None:
    channel(svc, workspace, sink, "/workflows/eng")
    keys = [f"DEMO-{n}" for n in range(1, 9)]
    for key in keys:
        store_and_route(svc, workspace.id, event(["issue_created"], key=key))
    svc.settings = svc.settings.model_copy(update={"channel_rate_per_second": 100})
    drain(svc)
    arrived = [r.json()["attachments"][0]["content"]["body"][2]["text"] for r in sink.received()]
    assert [text.split(":")[0] for text in arrived] == keys


def test_never_more_than_four_requests_in_any_second_at_the_receiver(
    svc: Services, workspace: MadeWorkspace, sink: TeamsSink
) -> None:
    channel(svc, workspace, sink, "/workflows/eng")
    for n in range(13):
        store_and_route(svc, workspace.id, event(["issue_created"], key=f"DEMO-{n}"))
    drain(svc)
    times = [r.at for r in sink.received("/workflows/eng")]
    assert len(times) == 13
    # Any 5 consecutive arrivals span at least a second: no rolling second holds 5.
    spans = [later - earlier for earlier, later in zip(times, times[4:], strict=False)]
    assert min(spans) >= 1.0, spans
    assert times[-1] - times[0] < 4.5  # and the limit is used, not overshot by far


def test_a_timer_that_fires_early_does_not_break_the_limit(
    svc: Services, workspace: MadeWorkspace, sink: TeamsSink, monkeypatch: pytest.MonkeyPatch
) -> None:
    """uvloop's timers count whole milliseconds from the loop's cached time and may fire a
    little early; the worker must not trust a sleep to have lasted as long as asked."""
    import asyncio

    real_sleep = asyncio.sleep

    async def early(delay: float, result: object = None) -> object:
        return await real_sleep(max(0.0, delay - 0.01), result)

    monkeypatch.setattr(asyncio, "sleep", early)
    channel(svc, workspace, sink, "/workflows/eng")
    for n in range(9):
        store_and_route(svc, workspace.id, event(["issue_created"], key=f"DEMO-{n}"))
    drain(svc)
    times = [r.at for r in sink.received("/workflows/eng")]
    assert len(times) == 9
    spans = [later - earlier for earlier, later in zip(times, times[4:], strict=False)]
    assert min(spans) >= 1.0, spans


def test_rate_limit_holds_across_lane_holders(
    svc: Services, workspace: MadeWorkspace, sink: TeamsSink
) -> None:
    hook = channel(svc, workspace, sink, "/workflows/eng")
    for n in range(4):
        store_and_route(svc, workspace.id, event(["issue_created"], key=f"DEMO-{n}"))
    drain(svc, worker_id="first")
    for n in range(4, 8):
        store_and_route(svc, workspace.id, event(["issue_created"], key=f"DEMO-{n}"))
    drain(svc, worker_id="second")  # a different worker continues the same channel
    times = [r.at for r in sink.received("/workflows/eng")]
    assert len(times) == 8
    assert times[4] - times[0] >= 1.0
    with svc.db.transaction() as session:
        webhook = session.get(TeamsWebhook, hook)
        assert webhook is not None
        assert len(webhook.recent_sends) == 4


def test_a_holder_whose_lane_was_taken_over_stops_sending_to_the_channel(
    svc: Services, workspace: MadeWorkspace, sink: TeamsSink
) -> None:
    """A worker starved past its lease finds, at its next renewal, that another worker holds
    the lane: it sends nothing more (two holders would share one channel's rate) and hands back
    what it had taken, for the new holder."""
    svc.settings = svc.settings.model_copy(update={"delivery_lease_seconds": 1.5})
    hook = channel(svc, workspace, sink, "/workflows/eng")
    for n in range(20):
        store_and_route(svc, workspace.id, event(["issue_created"], key=f"DEMO-{n}"))

    def take_over(_record: object) -> None:
        if len(sink.received("/workflows/eng")) == 3:
            # What another worker's claim writes once the lease has run out.
            with svc.db.transaction() as session:
                session.execute(
                    update(TeamsWebhook)
                    .where(TeamsWebhook.id == hook)
                    .values(lane_worker="other", lane_locked_until=utcnow() + timedelta(hours=1))
                )

    sink.on_receive = take_over
    drain(svc, worker_id="starved")
    sent = len(sink.received("/workflows/eng"))
    # The next renewal comes a third of the lease (0.5 s) after the last, and at 4/s only a
    # few requests fit in between; without the check all 20 would go.
    assert 3 <= sent <= 8, sent
    statuses = [d.status for d in deliveries(svc, workspace.id)]
    assert statuses[sent:] == ["pending"] * (20 - sent)  # handed back, not left in flight


def test_a_throttled_channel_pauses_alone(
    svc: Services, workspace: MadeWorkspace, sink: TeamsSink
) -> None:
    slow = channel(svc, workspace, sink, "/workflows/throttled")
    channel(svc, workspace, sink, "/workflows/fine")
    sink.script("/workflows/throttled", Answer(429, "", {"Retry-After": "120"}))
    for n in range(3):
        store_and_route(svc, workspace.id, event(["issue_created"], key=f"DEMO-{n}"))
    before = utcnow()
    drain(svc)
    assert len(sink.received("/workflows/fine")) == 3
    assert len(sink.received("/workflows/throttled")) == 1  # paused after the 429
    throttled = [
        d for d in deliveries(svc, workspace.id) if d.channel_name == "workflows-throttled"
    ]
    assert [d.status for d in throttled] == ["pending", "pending", "pending"]
    assert (throttled[0].next_attempt_at - before).total_seconds() >= 119
    with svc.db.transaction() as session:
        webhook = session.get(TeamsWebhook, slow)
        assert webhook is not None
        assert webhook.paused_until is not None
        assert (webhook.paused_until - before).total_seconds() >= 119
    # Once the pause is over the channel carries on, oldest first.
    later = utcnow() + timedelta(seconds=125)
    drain(svc, clock=lambda: later)
    assert len(sink.received("/workflows/throttled")) == 4
    assert all(d.status == "delivered" for d in deliveries(svc, workspace.id))


def test_retry_after_as_an_http_date_and_the_one_hour_cap(
    svc: Services, workspace: MadeWorkspace, sink: TeamsSink
) -> None:
    from email.utils import format_datetime

    channel(svc, workspace, sink, "/workflows/a")
    channel(svc, workspace, sink, "/workflows/b")
    in_five_minutes = format_datetime(utcnow() + timedelta(minutes=5), usegmt=True)
    sink.script("/workflows/a", Answer(503, "", {"Retry-After": in_five_minutes}))
    sink.script("/workflows/b", Answer(429, "", {"Retry-After": "86400"}))
    before = utcnow()
    store_and_route(svc, workspace.id, event(["issue_created"]))
    drain(svc)
    waits = {
        d.channel_name: (d.next_attempt_at - before).total_seconds()
        for d in deliveries(svc, workspace.id)
    }
    assert 290 <= waits["workflows-a"] <= 305
    assert 3595 <= waits["workflows-b"] <= 3605  # a day asked, an hour granted


def test_the_retry_schedule_then_dead_letter(
    svc: Services, workspace: MadeWorkspace, sink: TeamsSink
) -> None:
    channel(svc, workspace, sink, "/workflows/down")
    sink.set_default("/workflows/down", Answer(500, "Internal Server Error"))
    store_and_route(svc, workspace.id, event(["issue_created"]))
    now = utcnow()
    waits = []
    for _ in range(8):
        drain(svc, clock=lambda now=now: now)
        [delivery] = deliveries(svc, workspace.id)
        if delivery.status == "dead_letter":
            break
        waits.append((delivery.next_attempt_at - now).total_seconds())
        now = delivery.next_attempt_at + timedelta(seconds=1)
    schedule = svc.settings.retry_schedule_seconds
    assert len(waits) == len(schedule) == 7
    for waited, planned in zip(waits, schedule, strict=True):
        assert planned * 0.8 - 0.01 <= waited <= planned * 1.2 + 0.01
    [delivery] = deliveries(svc, workspace.id)
    assert delivery.status == "dead_letter"
    assert delivery.attempt_count == 8
    assert (delivery.last_error or "").startswith("Gave up after 8 attempts.")
    assert len(sink.received("/workflows/down")) == 8


def test_removed_webhook_is_disabled_after_three_answers_in_a_row(
    svc: Services, workspace: MadeWorkspace, sink: TeamsSink
) -> None:
    hook = channel(svc, workspace, sink, "/workflows/gone")
    sink.set_default("/workflows/gone", Answer(410, "Gone"))
    for n in range(5):
        store_and_route(svc, workspace.id, event(["issue_created"], key=f"DEMO-{n}"))
    svc.settings = svc.settings.model_copy(update={"channel_rate_per_second": 100})
    drain(svc)
    assert len(sink.received("/workflows/gone")) == 3
    statuses = [d.status for d in deliveries(svc, workspace.id)]
    assert statuses == ["dead_letter"] * 3 + ["skipped"] * 2
    with svc.db.transaction() as session:
        webhook = session.get(TeamsWebhook, hook)
        assert webhook is not None
        assert not webhook.enabled
        assert "removed" in (webhook.disabled_reason or "")
        entry = session.scalar(
            select(AuditEntry).where(AuditEntry.action == "teams.webhook.auto_disabled")
        )
        assert entry is not None
        assert entry.actor_type == "system"
        assert entry.target_id == hook


def test_deliveries_of_a_disabled_subscription_or_deleted_webhook_are_skipped(
    svc: Services, workspace: MadeWorkspace, sink: TeamsSink
) -> None:
    from tests.support.teams import ADMIN
    from ticketmate.teams import subscriptions, webhooks

    first = make_webhook(svc, workspace.id, "first", sink.url("/workflows/first"))
    sub = make_subscription(svc, workspace.id, first, "issue_created")
    second = make_webhook(svc, workspace.id, "second", sink.url("/workflows/second"))
    make_subscription(svc, workspace.id, second, "issue_created")
    store_and_route(svc, workspace.id, event(["issue_created"]))
    with svc.db.transaction() as session:
        subscriptions.update_subscription(
            session, workspace.id, sub, subscriptions.SubscriptionUpdate(enabled=False), actor=ADMIN
        )
        webhooks.delete_webhook(session, workspace.id, second, cascade=True, actor=ADMIN)
    drain(svc)
    assert sink.received() == []
    reasons = {d.channel_name: (d.status, d.last_error) for d in deliveries(svc, workspace.id)}
    assert reasons["first"][0] == "skipped"
    assert "subscription was disabled or deleted" in (reasons["first"][1] or "")
    assert reasons["second"] == ("skipped", "Skipped: the webhook was deleted before sending.")


def test_a_slow_channel_does_not_hold_back_the_others(
    svc: Services, workspace: MadeWorkspace, sink: TeamsSink
) -> None:
    """Two channels answer only after `slow` seconds, a third at once. Sent side by side, every
    request arrives before the first slow answer is back; sent one after another, in whatever
    order, the second slow channel's request would arrive after the first one's answer."""
    slow = 3.0
    paths = ["/workflows/slow-a", "/workflows/slow-b", "/workflows/fast"]
    for path in paths:
        channel(svc, workspace, sink, path)
    for path in paths[:2]:
        sink.script(path, Answer(202, "", delay_seconds=slow))
    store_and_route(svc, workspace.id, event(["issue_created"]))
    drain(svc)
    arrivals = {path: sink.received(path)[0].at for path in paths}
    first_slow_answer = min(arrivals[p] for p in paths[:2]) + slow
    assert all(at < first_slow_answer for at in arrivals.values()), arrivals
    assert all(d.status == "delivered" for d in deliveries(svc, workspace.id))


def test_lane_claims_skip_locked_and_leased_lanes(
    svc: Services, workspace: MadeWorkspace, sink: TeamsSink
) -> None:
    """Worker a's claim holds its transaction open while worker b claims from another
    connection. On PostgreSQL b skips a's locked lane at once (SKIP LOCKED) and takes the other;
    on SQLite b's write transaction waits for a's and then sees a's lease. A leased lane is
    free again only once its lease is over."""
    from ticketmate.delivery import queue

    hooks = {
        channel(svc, workspace, sink, "/workflows/eng"),
        channel(svc, workspace, sink, "/workflows/ops"),
    }
    store_and_route(svc, workspace.id, event(["issue_created"]))
    now = utcnow()
    lease = timedelta(seconds=60)
    held = threading.Event()
    finish = threading.Event()
    first: list[Lane] = []
    second: list[Lane] = []

    def claim_and_hold() -> None:
        with svc.db.transaction() as session:
            first.extend(queue.claim_lanes(session, worker_id="a", now=now, lease=lease, limit=1))
            held.set()
            finish.wait(timeout=30)  # the transaction stays open, with its locks

    def claim_beside() -> None:
        with svc.db.transaction() as session:
            if svc.db.dialect == "postgresql":
                # Waiting for a's row lock instead of skipping it fails here.
                session.execute(text("SET LOCAL lock_timeout = '5s'"))
            second.extend(queue.claim_lanes(session, worker_id="b", now=now, lease=lease, limit=10))

    holder = threading.Thread(target=claim_and_hold)
    beside = threading.Thread(target=claim_beside)
    holder.start()
    try:
        assert held.wait(timeout=30)
        beside.start()
        if svc.db.dialect == "postgresql":
            beside.join(timeout=30)
            assert not beside.is_alive()
            assert second, "b took nothing while a's claim was open"
        else:
            beside.join(timeout=0.5)
            assert not second  # b's write transaction waits for a's
    finally:
        finish.set()
        holder.join(timeout=30)
        if beside.is_alive():
            beside.join(timeout=30)
    [a_lane] = first
    assert [lane.webhook_id for lane in second] == list(hooks - {a_lane.webhook_id})
    with svc.db.transaction() as session:
        leased = queue.claim_lanes(session, worker_id="c", now=now, lease=lease, limit=10)
    with svc.db.transaction() as session:
        later = queue.claim_lanes(
            session, worker_id="c", now=now + timedelta(seconds=61), lease=lease, limit=10
        )
    assert leased == []
    assert {lane.webhook_id for lane in later} == hooks


def test_claim_queries_use_the_partial_indexes_as_sent(
    svc: Services, workspace: MadeWorkspace, sink: TeamsSink
) -> None:
    """The statements the queue really sends (with their parameters) must be able to use the
    due-row partial indexes: a condition passed as bound parameters would not match them."""
    from sqlalchemy import event as sa_event

    from ticketmate.delivery import queue

    channel(svc, workspace, sink, "/workflows/eng")
    store_and_route(svc, workspace.id, event(["issue_created"]))
    seen: list[tuple[str, object]] = []

    def capture(_conn: object, _cursor: object, statement: str, params: object, *_: object) -> None:
        if statement.lstrip().startswith("SELECT") and "integration_delivery_log" in statement:
            seen.append((statement, params))

    sa_event.listen(svc.db.engine, "before_cursor_execute", capture)
    try:
        now, lease = utcnow(), timedelta(seconds=60)
        with svc.db.transaction() as session:
            [lane] = queue.claim_lanes(session, worker_id="w", now=now, lease=lease, limit=4)
            queue.take_batch(session, lane=lane, worker_id="w", now=now, lease=lease, limit=4)
    finally:
        sa_event.remove(svc.db.engine, "before_cursor_execute", capture)
    assert len(seen) == 2
    explain = "EXPLAIN QUERY PLAN " if svc.db.dialect == "sqlite" else "EXPLAIN "
    with svc.db.engine.connect() as connection:
        raw = connection.connection.driver_connection
        assert raw is not None
        cursor = raw.cursor()
        if svc.db.dialect == "postgresql":
            cursor.execute("SET enable_seqscan = off")
        for statement, params in seen:
            assert "'pending', 'in_flight'" in statement  # constants, not parameters
            cursor.execute(explain + statement, params)
            plan = " ".join(str(row) for row in cursor.fetchall())
            assert "ix_delivery_due_by" in plan, plan


def test_worker_ids_are_distinct(svc: Services) -> None:
    from ticketmate.delivery.worker import TeamsDeliveryWorker

    ids = {TeamsDeliveryWorker(svc).worker_id for _ in range(3)}
    assert len(ids) == 3


def test_an_unreadable_url_holds_the_channel_and_loses_nothing(
    svc: Services, workspace: MadeWorkspace, sink: TeamsSink
) -> None:
    from sqlalchemy import update

    hook = channel(svc, workspace, sink, "/workflows/eng")
    with svc.db.transaction() as session:
        webhook = session.get(TeamsWebhook, hook)
        assert webhook is not None
        tampered = bytearray(webhook.url_ciphertext)
        tampered[-1] ^= 1
        session.execute(
            update(TeamsWebhook)
            .where(TeamsWebhook.id == hook)
            .values(url_ciphertext=bytes(tampered))
        )
    store_and_route(svc, workspace.id, event(["issue_created"]))
    drain(svc)
    assert sink.received() == []
    [delivery] = deliveries(svc, workspace.id)
    assert delivery.status == "pending"
    assert delivery.attempt_count == 0
    with svc.db.transaction() as session:
        webhook = session.get(TeamsWebhook, hook)
        assert webhook is not None
        assert webhook.paused_until is not None
        assert "cannot be read" in (webhook.last_failure_reason or "")
        assert "http" not in (webhook.last_failure_reason or "")


def test_channels_resting_for_their_rate_limit_do_not_keep_others_waiting(
    svc: Services, workspace: MadeWorkspace, sink: TeamsSink
) -> None:
    """Two request slots, six channels of eight cards each: each channel must wait a second
    after its fourth card. A channel resting so needs no slot, so the worker takes up the
    other channels meanwhile: every channel has its first card before any has its fifth
    (holding only as many channels as slots, the last channels would start seconds later)."""
    paths = [f"/workflows/ch{n}" for n in range(6)]
    for path in paths:
        channel(svc, workspace, sink, path)
    for n in range(8):
        store_and_route(svc, workspace.id, event(["issue_created"], key=f"DEMO-{n}"))
    drain(svc, concurrency=2)
    arrivals = {path: [r.at for r in sink.received(path)] for path in paths}
    assert all(len(times) == 8 for times in arrivals.values())
    last_first = max(times[0] for times in arrivals.values())
    first_fifth = min(times[4] for times in arrivals.values())
    assert last_first < first_fifth, arrivals
    for times in arrivals.values():  # and the limit still holds on every channel
        assert min(b - a for a, b in zip(times, times[4:], strict=False)) >= 1.0
