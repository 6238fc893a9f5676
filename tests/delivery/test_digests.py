"""Digests against the real worker, database and Teams stand-in: what a digest subscription
matches is held, and goes out as one card per period through the ordinary queue."""

from __future__ import annotations

import json
import threading
from collections import Counter
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select, update

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
from ticketmate.delivery.digests import queue_due_digests
from ticketmate.dev.teams_sink import Answer, TeamsSink
from ticketmate.models import TeamsSubscription, Workspace
from ticketmate.state import Services
from ticketmate.teams import subscriptions
from ticketmate.timeutil import utcnow

PATH = "/workflows/digest"
SITE = "https://example.atlassian.net"


def digest_channel(
    svc: Services, workspace: MadeWorkspace, sink: TeamsSink, digest: str = "hourly"
) -> tuple[str, str]:
    hook = make_webhook(svc, workspace.id, "digest", sink.url(PATH))
    subscription = make_subscription(svc, workspace.id, hook, "issue_created", digest=digest)
    with svc.db.transaction() as session:
        session.execute(update(Workspace).values(jira_base_url=SITE))
    return hook, subscription


def next_digest_at(svc: Services, subscription_id: str) -> datetime:
    with svc.db.transaction() as session:
        value = session.scalar(
            select(TeamsSubscription.next_digest_at).where(TeamsSubscription.id == subscription_id)
        )
    assert value is not None
    return value


def created(svc: Services, workspace: MadeWorkspace, keys: list[str], now: datetime) -> list[str]:
    return [
        store_and_route(
            svc, workspace.id, event(["issue_created"], key=k, summary=f"New {k}"), now
        )[0]
        for k in keys
    ]


def card_text(body: bytes) -> str:
    return json.dumps(json.loads(body))


def test_held_events_go_out_as_one_digest_when_its_time_comes(
    svc: Services, workspace: MadeWorkspace, sink: TeamsSink
) -> None:
    _, subscription = digest_channel(svc, workspace, sink)
    due = next_digest_at(svc, subscription)
    assert (due.minute, due.second, due.microsecond) == (0, 0, 0)  # on the hour
    assert timedelta(0) < due - utcnow() <= timedelta(hours=1)
    ids = created(svc, workspace, ["DEMO-1", "DEMO-2", "DEMO-3"], utcnow())
    assert {d.status for d in deliveries(svc, workspace.id)} == {"held"}
    drain(svc)
    assert sink.received(PATH) == []  # not before its time
    drain(svc, clock=lambda: due + timedelta(seconds=1))
    [card] = sink.received(PATH)
    text = card_text(card.body)
    assert "Jira digest" in text
    assert "3 updates" in text
    # Newest first.
    assert text.index("DEMO-3") < text.index("DEMO-2") < text.index("DEMO-1")
    rows = {d.event_id: d for d in deliveries(svc, workspace.id)}
    head = rows[ids[0]]
    assert (head.status, head.card_kind, head.digest_of) == ("delivered", "digest", subscription)
    assert head.message.encode() == card.body
    assert all(rows[e].status == "folded" and rows[e].folded_into == head.id for e in ids[1:])
    assert next_digest_at(svc, subscription) == due + timedelta(hours=1)


def test_an_empty_period_sends_nothing_and_moves_on(
    svc: Services, workspace: MadeWorkspace, sink: TeamsSink
) -> None:
    _, subscription = digest_channel(svc, workspace, sink)
    due = next_digest_at(svc, subscription)
    drain(svc, clock=lambda: due + timedelta(minutes=1))
    assert sink.received(PATH) == []
    assert next_digest_at(svc, subscription) == due + timedelta(hours=1)


def test_periods_missed_while_no_worker_ran_make_one_digest(
    svc: Services, workspace: MadeWorkspace, sink: TeamsSink
) -> None:
    _, subscription = digest_channel(svc, workspace, sink)
    due = next_digest_at(svc, subscription)
    created(svc, workspace, ["DEMO-1", "DEMO-2"], utcnow())
    later = due + timedelta(hours=5, minutes=10)
    drain(svc, clock=lambda: later)
    assert len(sink.received(PATH)) == 1
    assert next_digest_at(svc, subscription) == due + timedelta(hours=6)


def test_a_long_digest_lists_twenty_and_links_a_search_of_the_rest(
    svc: Services, workspace: MadeWorkspace, sink: TeamsSink
) -> None:
    _, subscription = digest_channel(svc, workspace, sink)
    keys = [f"DEMO-{n}" for n in range(1, 26)]
    created(svc, workspace, keys, utcnow())
    due = next_digest_at(svc, subscription)
    drain(svc, clock=lambda: due + timedelta(seconds=1))
    [card] = sink.received(PATH)
    text = card_text(card.body)
    assert "and 5 more" in text
    [action] = card.json()["attachments"][0]["content"]["actions"]
    # The five oldest, which the card did not list: exactly those issues.
    assert action["url"].startswith(f"{SITE}/issues/?jql=")
    for key in keys[:5]:
        assert f"{key}%2C" in action["url"] or f"{key}%29" in action["url"]
    for key in keys[5:]:
        assert key in text
        assert f"{key}%2C" not in action["url"]
        assert f"{key}%29" not in action["url"]


def test_a_digest_is_retried_like_any_card(
    svc: Services, workspace: MadeWorkspace, sink: TeamsSink
) -> None:
    _, subscription = digest_channel(svc, workspace, sink)
    sink.script(PATH, Answer(500, "busy"))
    created(svc, workspace, ["DEMO-1", "DEMO-2"], utcnow())
    due = next_digest_at(svc, subscription)
    drain(svc, clock=lambda: due + timedelta(seconds=1))
    drain(svc, clock=lambda: due + timedelta(minutes=10))
    first, second = sink.received(PATH)
    assert (first.answered, second.answered) == (500, 202)
    assert first.body == second.body
    assert next_digest_at(svc, subscription) == due + timedelta(hours=1)  # made once


def test_a_channel_that_also_takes_each_event_at_once_is_not_sent_it_again(
    svc: Services, workspace: MadeWorkspace, sink: TeamsSink
) -> None:
    hook, subscription = digest_channel(svc, workspace, sink)
    make_subscription(svc, workspace.id, hook, "issue_created")
    created(svc, workspace, ["DEMO-1"], utcnow())
    drain(svc)
    assert len(sink.received(PATH)) == 1
    due = next_digest_at(svc, subscription)
    drain(svc, clock=lambda: due + timedelta(seconds=1))
    assert len(sink.received(PATH)) == 1  # no digest repeats it


def test_turning_the_digest_off_sends_what_was_held_at_once(
    svc: Services, workspace: MadeWorkspace, sink: TeamsSink
) -> None:
    _, subscription = digest_channel(svc, workspace, sink)
    created(svc, workspace, ["DEMO-1", "DEMO-2"], utcnow())
    with svc.db.transaction() as session:
        subscriptions.update_subscription(
            session,
            workspace.id,
            subscription,
            subscriptions.SubscriptionUpdate(digest="off"),
            actor=ADMIN,
        )
    drain(svc)
    [card] = sink.received(PATH)
    assert "2 updates" in card_text(card.body)
    created(svc, workspace, ["DEMO-3"], utcnow())
    drain(svc)
    assert len(sink.received(PATH)) == 2  # from now on, each event its own card


def test_a_deleted_digest_subscription_sends_nothing_it_held(
    svc: Services, workspace: MadeWorkspace, sink: TeamsSink
) -> None:
    _, subscription = digest_channel(svc, workspace, sink)
    created(svc, workspace, ["DEMO-1", "DEMO-2"], utcnow())
    with svc.db.transaction() as session:
        subscriptions.delete_subscription(session, workspace.id, subscription, actor=ADMIN)
    drain(svc)
    assert sink.received(PATH) == []
    assert {d.status for d in deliveries(svc, workspace.id)} == {"skipped", "folded"}


def test_a_daily_digest_goes_at_its_local_time(
    svc: Services, workspace: MadeWorkspace, sink: TeamsSink
) -> None:
    _, subscription = digest_channel(svc, workspace, sink, "daily@09:30/Asia/Kolkata")
    due = next_digest_at(svc, subscription)
    assert (due.hour, due.minute) == (4, 0)  # 09:30 at UTC+05:30
    created(svc, workspace, ["DEMO-1"], utcnow())
    with svc.db.transaction() as session:
        assert queue_due_digests(session, now=due - timedelta(seconds=1)) == []
    drain(svc, clock=lambda: due)
    [card] = sink.received(PATH)
    assert "Asia/Kolkata" in card_text(card.body)
    assert next_digest_at(svc, subscription) == due + timedelta(days=1)
    assert next_digest_at(svc, subscription).tzinfo == UTC


def test_a_worker_looking_while_another_makes_the_digest_passes_it_by(
    svc: Services, workspace: MadeWorkspace, sink: TeamsSink
) -> None:
    """Two workers at the same moment on PostgreSQL: the second skips the subscription the
    first is making a digest of (SKIP LOCKED) instead of waiting and making it again."""
    if svc.db.dialect != "postgresql":
        pytest.skip("on SQLite one worker runs, and its write transaction is the lock")
    _, subscription = digest_channel(svc, workspace, sink)
    created(svc, workspace, ["DEMO-1", "DEMO-2"], utcnow())
    due = next_digest_at(svc, subscription) + timedelta(seconds=1)
    second: list[object] = []
    with svc.db.transaction() as first:
        assert len(queue_due_digests(first, now=due)) == 1

        def look() -> None:
            with svc.db.transaction() as session:
                second.extend(queue_due_digests(session, now=due))
                second.append("done")

        other = threading.Thread(target=look)
        other.start()
        other.join(timeout=10)
        assert not other.is_alive(), "the second worker waited for the first"
    assert second == ["done"]  # it made nothing
    with svc.db.transaction() as session:
        assert queue_due_digests(session, now=due) == []  # and after the commit, neither
    assert Counter(d.status for d in deliveries(svc, workspace.id)) == {"pending": 1, "folded": 1}
