"""Explanations on demand: the same words the router used to store, worked out when asked.

The reference (tests/routing/oracle.py) is the router's old explaining, run against the same
subscriptions at the moment the event is routed; the explanation is then read back through
the API a person uses.
"""

from __future__ import annotations

import copy
import json
from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy import select

from tests.jira.support import payload, post_signed
from tests.routing.oracle import old_routing
from tests.routing.support import fixture_events, set_filters, subscribed_workspace
from tests.support.factories import MadeUser, MadeWorkspace, bearer, make_user
from tests.support.teams import ADMIN, event, make_subscription, make_webhook, store_and_route
from ticketmate.dev.teams_sink import TeamsSink
from ticketmate.models import JiraEventRecord, TeamsSubscription
from ticketmate.pagination import Page
from ticketmate.routing.explanation import DELETED_REASON, explain
from ticketmate.state import Services
from ticketmate.teams import subscriptions

BASE = "/api/v1/workspaces/acme/jira/events"
MM = "mattermost_mattermost-plugin-jira__"


def admin_of(svc: Services, workspace: MadeWorkspace) -> MadeUser:
    return make_user(svc, "admin@acme.test", {workspace.slug: "admin"})


def all_explanations(
    client: TestClient, user: MadeUser, event_id: str, limit: int = 50
) -> list[dict[str, Any]]:
    """Every page of /explanations, following the cursors."""
    found: list[dict[str, Any]] = []
    cursor = None
    while True:
        params: dict[str, Any] = {"limit": limit, **({"cursor": cursor} if cursor else {})}
        answer = client.get(f"{BASE}/{event_id}/explanations", params=params, headers=bearer(user))
        assert answer.status_code == 200, answer.text
        page = answer.json()
        found += page["items"]
        cursor = page["next_cursor"]
        if cursor is None:
            return found


def test_on_demand_explanations_say_what_the_router_stored_for_every_captured_payload(
    svc: Services, workspace: MadeWorkspace, sink: TeamsSink, client: TestClient
) -> None:
    subscribed_workspace(svc, workspace.id, sink.url(""), 45)
    hook = make_webhook(svc, workspace.id, "#tes", sink.url("/workflows/tes"))
    for event_type in ("issue_created", "status_changed", "comment_created", "issue_updated"):
        make_subscription(svc, workspace.id, hook, event_type, projects=["TES"])
    admin = admin_of(svc, workspace)
    compared = matched = 0
    for name, envelope in fixture_events():
        with svc.db.transaction() as session:
            old = old_routing(session, workspace.id, envelope)
        event_id, _count = store_and_route(svc, workspace.id, envelope)
        items = {i["subscription_id"]: i for i in all_explanations(client, admin, event_id, 20)}
        # Fewer than 100 subscriptions: the old router explained every one of them.
        assert len(items) == len(old["matched"]) + len(old["not_matched"]), name
        for entry in old["matched"]:
            item = items[entry["subscription_id"]]
            assert item["matched_then"] is True, name
            assert item["matches_now"] is True, name
            assert item["reason"] is None, name
            assert {k: item[k] for k in entry} == entry, name
            matched += 1
        for entry in old["not_matched"]:
            item = items[entry["subscription_id"]]
            assert item["matched_then"] is False, name
            assert item["matches_now"] is False, name
            assert item["reason"] == entry["reason"], name
            assert {k: item[k] for k in entry if k != "reason"} == {
                k: v for k, v in entry.items() if k != "reason"
            }, name
            compared += 1
        detail = client.get(f"{BASE}/{event_id}", headers=bearer(admin)).json()
        assert detail["routing"] == {
            "matched_subscription_ids": [m["subscription_id"] for m in old["matched"]],
            "matched_count": len(old["matched"]),
            "not_matched_count": len(old["not_matched"]),
        }
    assert matched > 10
    assert compared > 500
    # Every kind of old reason was among them.
    with svc.db.transaction() as session:
        records = session.scalars(select(JiraEventRecord)).all()
        reasons = {
            item.reason or ""
            for record in records
            for item in explain(session, record, Page(200, None)).items
        }
    for start in ("listens for ", "the subscription is disabled", "the webhook #ch3 is disabled"):
        assert any(r.startswith(start) for r in reasons), start
    assert any(" not in [" in r for r in reasons)


def test_explanations_page_through_250_subscriptions(
    svc: Services, workspace: MadeWorkspace, sink: TeamsSink, client: TestClient
) -> None:
    hook = make_webhook(svc, workspace.id, "#eng", sink.url("/workflows/eng"))
    other = make_webhook(svc, workspace.id, "#ops", sink.url("/workflows/ops"))
    made = [
        make_subscription(
            svc,
            workspace.id,
            hook if n % 2 else other,
            "issue_created" if n % 3 else "comment_created",
            projects=["DEMO"] if n % 5 else ["OPS"],
        )
        for n in range(250)
    ]
    admin = admin_of(svc, workspace)
    event_id, count = store_and_route(svc, workspace.id, event(["issue_created"]))
    assert count == 2

    detail = client.get(f"{BASE}/{event_id}", headers=bearer(admin)).json()
    first = detail["explanations"]
    assert len(first["items"]) == 50
    assert first["next_cursor"]
    # 133 took it: more than an event keeps the ids of, and the explanations say so.
    assert detail["routing"]["matched_count"] == 133
    assert len(detail["routing"]["matched_subscription_ids"]) == 100
    assert detail["routing"]["not_matched_count"] == 117
    assert first["note"] == (
        "133 subscriptions took this event; the ids of the first 100 were kept, so whether "
        "the others took it is not known."
    )

    items = all_explanations(client, admin, event_id, limit=37)
    assert [i["subscription_id"] for i in items] == sorted(made)
    assert items[:50] == first["items"]
    took = {i["subscription_id"] for i in items if i["matched_then"]}
    assert took == set(detail["routing"]["matched_subscription_ids"])
    assert sum(i["matched_then"] is None for i in items) == 150
    assert sum(i["matches_now"] for i in items) == 133
    assert all(i["matches_now"] == (i["reason"] is None) for i in items)
    reasons = {i["reason"] for i in items if i["reason"]}
    assert reasons == {
        "listens for comment_created; this event is issue_created",
        "project DEMO not in [OPS]",
    }


def test_a_bad_cursor_or_event_answers_in_the_error_shape(
    svc: Services, workspace: MadeWorkspace, client: TestClient
) -> None:
    admin = admin_of(svc, workspace)
    event_id, _ = store_and_route(svc, workspace.id, event(["issue_created"]))
    for cursor in ("%%%", "bm90IGFuIGlk!", "AAAA"):
        answer = client.get(
            f"{BASE}/{event_id}/explanations", params={"cursor": cursor}, headers=bearer(admin)
        )
        assert answer.status_code == 400, cursor
        assert answer.json()["error"]["code"] == "invalid_cursor"
    missing = client.get(f"{BASE}/nosuchevent/explanations", headers=bearer(admin))
    assert missing.status_code == 404
    assert missing.json()["error"]["code"] == "event_not_found"
    assert client.get(f"{BASE}/{event_id}/explanations").status_code == 401
    member = make_user(svc, "member@acme.test", {workspace.slug: "member"})
    assert client.get(f"{BASE}/{event_id}/explanations", headers=bearer(member)).status_code == 403


def test_another_workspaces_event_is_not_explained(
    svc: Services, workspace: MadeWorkspace, sink: TeamsSink, client: TestClient
) -> None:
    from tests.support.factories import make_workspace

    other = make_workspace(svc, "globex")
    hook = make_webhook(svc, other.id, "#g", sink.url("/workflows/g"))
    make_subscription(svc, other.id, hook, "issue_created")
    theirs, _ = store_and_route(svc, other.id, event(["issue_created"]))
    admin = admin_of(svc, workspace)
    answer = client.get(f"{BASE}/{theirs}/explanations", headers=bearer(admin))
    assert answer.status_code == 404


def test_explanations_compare_then_and_now(
    svc: Services, workspace: MadeWorkspace, sink: TeamsSink, client: TestClient
) -> None:
    hook = make_webhook(svc, workspace.id, "#eng", sink.url("/workflows/eng"))
    gone = make_subscription(svc, workspace.id, hook, "issue_created")
    narrowed = make_subscription(svc, workspace.id, hook, "issue_created")
    widened = make_subscription(svc, workspace.id, hook, "issue_created", projects=["OPS"])
    admin = admin_of(svc, workspace)
    event_id, _ = store_and_route(svc, workspace.id, event(["issue_created"]))

    with svc.db.transaction() as session:
        subscriptions.delete_subscription(session, workspace.id, gone, actor=ADMIN)
    set_filters(svc, workspace.id, narrowed, projects=["OPS"])
    set_filters(svc, workspace.id, widened, projects=["OPS", "demo"])

    items = {i["subscription_id"]: i for i in all_explanations(client, admin, event_id)}
    assert items[gone] == {
        "subscription_id": gone,
        "webhook_id": None,
        "channel_name": None,
        "event_type": None,
        "matched_then": True,
        "matches_now": False,
        "reason": DELETED_REASON,
        "changed_since": True,
        "deleted": True,
    }
    assert items[narrowed]["matched_then"] is True
    assert items[narrowed]["matches_now"] is False
    assert items[narrowed]["reason"] == "project DEMO not in [OPS]"
    assert items[narrowed]["changed_since"] is True
    assert items[widened]["matched_then"] is False
    assert items[widened]["matches_now"] is True
    assert items[widened]["changed_since"] is True
    assert not items[narrowed]["deleted"]


def test_unchanged_subscriptions_are_not_marked_changed(
    svc: Services, workspace: MadeWorkspace, sink: TeamsSink, client: TestClient
) -> None:
    hook = make_webhook(svc, workspace.id, "#eng", sink.url("/workflows/eng"))
    kept = make_subscription(svc, workspace.id, hook, "issue_created")
    admin = admin_of(svc, workspace)
    event_id, _ = store_and_route(svc, workspace.id, event(["issue_created"]))
    [item] = all_explanations(client, admin, event_id)
    assert item["subscription_id"] == kept
    assert item["changed_since"] is False


def test_events_that_were_not_routed_say_so(
    svc: Services, workspace: MadeWorkspace, sink: TeamsSink, client: TestClient
) -> None:
    hook = make_webhook(svc, workspace.id, "#eng", sink.url("/workflows/eng"))
    make_subscription(svc, workspace.id, hook, "comment_created")
    admin = admin_of(svc, workspace)

    ignored = post_signed(
        client, workspace, payload("mobitel-ltd_jira-to-matrix__project-created.json")
    )
    detail = client.get(f"{BASE}/{ignored.json()['event_id']}", headers=bearer(admin)).json()
    assert detail["status"] == "ignored"
    assert detail["routing"] is None
    assert detail["explanations"]["items"] == []
    assert detail["explanations"]["note"].startswith(
        "This event was ignored when it arrived: it was not routed, so no subscription was "
        "consulted."
    )

    # Jira Server reports a new comment twice; the second report is stored, not routed.
    comment_created = payload(f"{MM}server-comment-created.json")
    issue_commented = payload(f"{MM}server-issue-updated-issue-commented.json")
    issue_commented["comment"] = copy.deepcopy(comment_created["comment"])
    first = post_signed(client, workspace, comment_created, identifier="a").json()
    second = post_signed(client, workspace, issue_commented, identifier="b").json()
    assert first["deliveries"] == 1
    assert second["deliveries"] == 0
    detail = client.get(f"{BASE}/{second['event_id']}", headers=bearer(admin)).json()
    assert detail["routing"] is None
    note = detail["explanations"]["note"]
    assert note.startswith("This event was not routed, so no subscription took it.")
    assert f"Duplicate of event {first['event_id']} (same comment)" in note
    [item] = detail["explanations"]["items"]
    assert item["matched_then"] is False  # the first report took it
    assert item["matches_now"] is True
    first_detail = client.get(f"{BASE}/{first['event_id']}", headers=bearer(admin)).json()
    assert first_detail["explanations"]["note"] is None
    assert first_detail["explanations"]["items"][0]["matched_then"] is True


def test_a_routed_event_stores_a_few_bytes_with_1000_subscriptions(
    svc: Services, workspace: MadeWorkspace, sink: TeamsSink, client: TestClient
) -> None:
    """1,000 subscriptions on 200 webhooks, 5 of which take the event: the stored row (all
    its columns but the raw body) stays under 4 KB."""
    hooks = [
        make_webhook(svc, workspace.id, f"#ch{n}", sink.url(f"/workflows/ch{n}"))
        for n in range(200)
    ]
    with svc.db.transaction() as session:
        # Written in one transaction to keep the test quick; the generation tells the router.
        from ticketmate.workspaces.generation import bump_generation

        for n in range(1000):
            session.add(
                TeamsSubscription(
                    workspace_id=workspace.id,
                    webhook_id=hooks[n % 200],
                    event_type="issue_created" if n < 5 or n % 2 else "comment_created",
                    enabled=True,
                    filters={"projects": ["TES"] if n < 5 else [f"P{n}"]},
                )
            )
        bump_generation(session, workspace.id)
    raw = json.dumps(payload(f"{MM}issue-created.json")).encode()
    answer = post_signed(client, workspace, raw, identifier="size-1")
    assert answer.status_code == 202, answer.text
    assert answer.json()["deliveries"] == 5
    with svc.db.transaction() as session:
        table = JiraEventRecord.__table__
        row = session.execute(
            select(*[c for c in table.columns if c.name != "raw_body"]).where(
                table.c.id == answer.json()["event_id"]
            )
        ).one()
    stored = sum(_stored_size(value) for value in row)
    assert row.matched_count == 5
    assert row.not_matched_count == 995
    assert stored <= 4096, stored


def _stored_size(value: Any) -> int:
    if value is None:
        return 0
    if isinstance(value, bytes):
        return len(value)
    if isinstance(value, str):
        return len(value.encode())
    if isinstance(value, dict | list):
        return len(json.dumps(value, separators=(",", ":")).encode())
    return 8  # numbers and times
