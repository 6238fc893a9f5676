"""EventRouter: filters, one delivery per channel, and the reasons shown for the events list."""

from __future__ import annotations

import json
import re
from typing import Any

from sqlalchemy import event as sa_event

from tests.support.factories import MadeWorkspace, make_workspace
from tests.support.teams import deliveries, event, make_subscription, make_webhook, store_and_route
from ticketmate.dev.teams_sink import TeamsSink
from ticketmate.models import JiraEventRecord
from ticketmate.pagination import Page
from ticketmate.routing.explanation import explain
from ticketmate.state import Services


def not_matched(svc: Services, event_id: str) -> list[dict[str, Any]]:
    """The explanations of the subscriptions that did not take the event, as a person sees
    them when opening it."""
    with svc.db.transaction() as session:
        record = session.get(JiraEventRecord, event_id)
        assert record is not None
        assert record.matched_subscription_ids is not None
        found = explain(session, record, Page(200, None))
    return [item.as_json() for item in found.items if not item.matched_then]


def test_one_delivery_per_channel_when_two_subscriptions_match(
    svc: Services, workspace: MadeWorkspace, sink: TeamsSink
) -> None:
    hook = make_webhook(svc, workspace.id, "eng", sink.url("/workflows/eng"))
    updated = make_subscription(svc, workspace.id, hook, "issue_updated")
    moved = make_subscription(svc, workspace.id, hook, "status_changed")
    _, count = store_and_route(
        svc, workspace.id, event(["issue_updated", "status_changed"], status="Done")
    )
    assert count == 1
    [delivery] = deliveries(svc, workspace.id)
    assert delivery.event_type == "status_changed"  # the most specific card
    assert sorted(delivery.subscription_ids) == sorted([updated, moved])
    card = json.loads(delivery.message)["attachments"][0]["content"]
    assert "Alice moved DEMO-1 from To Do to Done" in json.dumps(card)


def test_each_channel_gets_its_own_delivery(
    svc: Services, workspace: MadeWorkspace, sink: TeamsSink
) -> None:
    for name in ("eng", "ops", "support"):
        hook = make_webhook(svc, workspace.id, name, sink.url(f"/workflows/{name}"))
        make_subscription(svc, workspace.id, hook, "issue_created")
    _, count = store_and_route(svc, workspace.id, event(["issue_created"]))
    assert count == 3
    assert {d.channel_name for d in deliveries(svc, workspace.id)} == {"eng", "ops", "support"}


def test_filters_and_within_or_across(
    svc: Services, workspace: MadeWorkspace, sink: TeamsSink
) -> None:
    hook = make_webhook(svc, workspace.id, "eng", sink.url("/workflows/eng"))
    make_subscription(
        svc, workspace.id, hook, "issue_created", projects=["ops", "demo"], priorities=["Highest"]
    )
    other = make_webhook(svc, workspace.id, "bugs", sink.url("/workflows/bugs"))
    make_subscription(
        svc, workspace.id, other, "issue_created", projects=["DEMO"], issue_types=["bug", "task"]
    )
    event_id, count = store_and_route(svc, workspace.id, event(["issue_created"], priority="High"))
    assert count == 1
    assert [d.channel_name for d in deliveries(svc, workspace.id)] == ["bugs"]
    [miss] = [m for m in not_matched(svc, event_id) if m["channel_name"] == "eng"]
    assert miss["reason"] == "priority High not in [Highest]"


def test_project_reason_reads_like_a_sentence(
    svc: Services, workspace: MadeWorkspace, sink: TeamsSink
) -> None:
    hook = make_webhook(svc, workspace.id, "ops", sink.url("/workflows/ops"))
    make_subscription(svc, workspace.id, hook, "issue_created", projects=["OPS"])
    make_subscription(svc, workspace.id, hook, "comment_created")
    event_id, count = store_and_route(svc, workspace.id, event(["issue_created"]))
    assert count == 0
    reasons = {m["event_type"]: m["reason"] for m in not_matched(svc, event_id)}
    assert reasons == {
        "issue_created": "project DEMO not in [OPS]",
        "comment_created": "listens for comment_created; this event is issue_created",
    }


def test_status_filter_on_status_changed_means_the_new_status(
    svc: Services, workspace: MadeWorkspace, sink: TeamsSink
) -> None:
    hook = make_webhook(svc, workspace.id, "eng", sink.url("/workflows/eng"))
    make_subscription(svc, workspace.id, hook, "status_changed", statuses=["done"])
    assert store_and_route(svc, workspace.id, event(["status_changed"], status="Done"))[1] == 1
    assert store_and_route(svc, workspace.id, event(["status_changed"], status="In Review"))[1] == 0


def test_labels_and_components_match_any_value(
    svc: Services, workspace: MadeWorkspace, sink: TeamsSink
) -> None:
    hook = make_webhook(svc, workspace.id, "eng", sink.url("/workflows/eng"))
    make_subscription(
        svc, workspace.id, hook, "issue_created", labels=["Urgent"], components=["api", "web"]
    )
    yes = event(["issue_created"], labels=["backend", "urgent"], components=["API"])
    no = event(["issue_created"], labels=["backend"], components=["API"])
    assert store_and_route(svc, workspace.id, yes)[1] == 1
    assert store_and_route(svc, workspace.id, no)[1] == 0


def test_disabled_subscription_or_webhook_routes_nothing(
    svc: Services, workspace: MadeWorkspace, sink: TeamsSink
) -> None:
    from ticketmate.audit.service import Actor
    from ticketmate.teams import webhooks

    hook = make_webhook(svc, workspace.id, "eng", sink.url("/workflows/eng"))
    make_subscription(svc, workspace.id, hook, "issue_created", enabled=False)
    event_id, count = store_and_route(svc, workspace.id, event(["issue_created"]))
    assert count == 0
    assert not_matched(svc, event_id)[0]["reason"] == "the subscription is disabled"

    make_subscription(svc, workspace.id, hook, "issue_created")
    with svc.db.transaction() as session:
        webhooks.update_webhook(
            session,
            svc.keyring,
            workspace.id,
            hook,
            webhooks.WebhookUpdate(enabled=False),
            allow_loopback=True,
            actor=Actor("user", None, "a@example.com"),
        )
    event_id, count = store_and_route(svc, workspace.id, event(["issue_created"]))
    assert count == 0
    reasons = {m["reason"] for m in not_matched(svc, event_id)}
    assert "the webhook eng is disabled" in reasons


def test_other_workspaces_are_never_routed(
    svc: Services, workspace: MadeWorkspace, sink: TeamsSink
) -> None:
    other = make_workspace(svc, "globex")
    hook = make_webhook(svc, other.id, "eng", sink.url("/workflows/eng"))
    make_subscription(svc, other.id, hook, "issue_created")
    assert store_and_route(svc, workspace.id, event(["issue_created"]))[1] == 0


def test_router_uses_one_indexed_lookup(
    svc: Services, workspace: MadeWorkspace, sink: TeamsSink
) -> None:
    """The statements the router really sends, with their parameters, as the database plans
    them: the workspace's subscriptions (and their webhooks) come from one statement that
    goes through the routing index by workspace, and nothing is read by a full scan."""
    hook = make_webhook(svc, workspace.id, "eng", sink.url("/workflows/eng"))
    make_subscription(svc, workspace.id, hook, "issue_created")
    seen: list[tuple[str, Any]] = []

    def capture(_conn: object, _cursor: object, statement: str, params: Any, *_: object) -> None:
        if statement.lstrip().upper().startswith("SELECT"):
            seen.append((statement, params))

    sa_event.listen(svc.db.engine, "before_cursor_execute", capture)
    try:
        assert store_and_route(svc, workspace.id, event(["issue_created"]))[1] == 1
    finally:
        sa_event.remove(svc.db.engine, "before_cursor_execute", capture)
    lookups = [statement for statement, _ in seen if "teams_subscriptions" in statement]
    assert len(lookups) == 1, lookups
    sqlite = svc.db.dialect == "sqlite"
    plans: dict[str, str] = {}
    with svc.db.engine.connect() as connection:
        raw = connection.connection.driver_connection
        assert raw is not None
        cursor = raw.cursor()
        if not sqlite:
            # Tiny test tables: without this PostgreSQL would scan them whatever the indexes.
            cursor.execute("SET enable_seqscan = off")
        for statement, params in seen:
            cursor.execute(("EXPLAIN QUERY PLAN " if sqlite else "EXPLAIN ") + statement, params)
            plans[statement] = "\n".join(str(row[-1]) for row in cursor.fetchall())
    for statement, plan in plans.items():
        if sqlite:
            assert not re.search(r"^SCAN ", plan, re.MULTILINE), (statement, plan)
        else:
            assert "Seq Scan" not in plan, (statement, plan)
    routing = plans[lookups[0]]
    if sqlite:
        assert (
            "SEARCH teams_subscriptions USING INDEX ix_teams_subscriptions_routing (workspace_id=?)"
            in routing
        ), routing
        assert re.search(r"SEARCH teams_webhooks USING .*INDEX \S+ \(id=\?\)", routing), routing
    else:
        assert re.search(
            r"Index Scan using ix_teams_subscriptions_routing on teams_subscriptions\s+\(.*\)\n"
            r"\s+Index Cond: \(\(workspace_id\)::text = ",
            routing,
        ), routing
        assert "Index Scan using pk_teams_webhooks on teams_webhooks" in routing, routing
