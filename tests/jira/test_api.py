"""The admins' Jira API: events list and detail, connection, regeneration (audit-logged)."""

from __future__ import annotations

import json

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from tests.jira.conftest import RoutingSpy
from tests.jira.support import (
    assert_error,
    payload,
    payload_bytes,
    post_signed,
    post_with_token,
)
from tests.support.factories import MadeUser, MadeWorkspace, bearer, make_user, make_workspace
from ticketmate.models import AuditEntry
from ticketmate.state import Services

MM = "mattermost_mattermost-plugin-jira__"
MT = "mobitel-ltd_jira-to-matrix__"
BASE = "/api/v1/workspaces/acme/jira"


def post_three(client: TestClient, workspace: MadeWorkspace) -> list[str]:
    """A routed, an ignored and a rejected event, in that order; their ids."""
    bodies = [
        payload_bytes(f"{MT}epic-created-cyrillic.json"),
        payload_bytes(f"{MT}project-created.json"),
        json.dumps({"webhookEvent": "jira:issue_updated", "issue": []}).encode(),
    ]
    ids = []
    for index, body in enumerate(bodies):
        response = post_signed(client, workspace, body, identifier=f"hook-{index}")
        assert response.status_code == 202, response.text
        ids.append(response.json()["event_id"])
    return ids


# ---------------------------------------------------------------------------------------------
# Events


def test_events_list_newest_first_with_every_field(
    client: TestClient, workspace: MadeWorkspace, admin: MadeUser
) -> None:
    routed, ignored, rejected = post_three(client, workspace)
    response = client.get(f"{BASE}/events", headers=bearer(admin))
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["next_cursor"] is None
    assert [item["id"] for item in body["items"]] == [rejected, ignored, routed]
    first = body["items"][2]
    assert first == {
        "id": routed,
        "received_at": first["received_at"],
        "jira_event": "jira:issue_created",
        "event_types": ["issue_created"],
        "issue_key": "DTP-1",
        "summary": "Тестовый эпик",
        "status": "routed",
        "reason": "The payload's timestamp is not epoch milliseconds, so occurred_at is unknown.",
        "delivery_ids": [],
    }
    assert first["received_at"].endswith("Z")
    assert body["items"][1]["status"] == "ignored"
    assert body["items"][1]["reason"] == "Project events are not about one issue."
    assert body["items"][0]["status"] == "rejected"
    assert "issue is an array" in body["items"][0]["reason"]


@pytest.mark.parametrize("status", ["routed", "ignored", "rejected"])
def test_events_list_filters_on_status(
    client: TestClient, workspace: MadeWorkspace, admin: MadeUser, status: str
) -> None:
    ids = dict(zip(("routed", "ignored", "rejected"), post_three(client, workspace), strict=True))
    response = client.get(f"{BASE}/events", params={"status": status}, headers=bearer(admin))
    assert [item["id"] for item in response.json()["items"]] == [ids[status]]


def test_events_list_rejects_an_unknown_status(client: TestClient, admin: MadeUser) -> None:
    response = client.get(f"{BASE}/events", params={"status": "lost"}, headers=bearer(admin))
    assert_error(response, 422, "validation_error")


def test_events_list_pages_with_a_cursor(
    client: TestClient, workspace: MadeWorkspace, admin: MadeUser
) -> None:
    ids = [
        post_signed(client, workspace, payload(f"{MM}issue-created.json")).json()["event_id"]
        for _ in range(5)
    ]
    seen: list[str] = []
    cursor = None
    while True:
        params = {"limit": "2", **({"cursor": cursor} if cursor else {})}
        page = client.get(f"{BASE}/events", params=params, headers=bearer(admin)).json()
        seen += [item["id"] for item in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == list(reversed(ids))


def test_events_list_shows_delivery_ids_from_routing(
    client: TestClient, workspace: MadeWorkspace, admin: MadeUser, routing: RoutingSpy
) -> None:
    accepted = post_signed(client, workspace, payload(f"{MM}issue-created.json")).json()
    assert accepted["deliveries"] == 2
    items = client.get(f"{BASE}/events", headers=bearer(admin)).json()["items"]
    assert len(items[0]["delivery_ids"]) == 2
    detail = client.get(f"{BASE}/events/{accepted['event_id']}", headers=bearer(admin)).json()
    assert detail["delivery_ids"] == items[0]["delivery_ids"]


def test_event_detail_has_envelope_and_raw_payload(
    client: TestClient, workspace: MadeWorkspace, admin: MadeUser
) -> None:
    raw = payload_bytes(f"{MT}epic-created-cyrillic.json")
    event_id = post_signed(client, workspace, raw, identifier="hook-9").json()["event_id"]
    response = client.get(f"{BASE}/events/{event_id}", headers=bearer(admin))
    assert response.status_code == 200, response.text
    detail = response.json()
    assert detail["id"] == event_id
    assert detail["jira_event_id"] == "hook-9"
    assert detail["raw_payload"] == json.loads(raw)
    assert detail["headers"]["x-atlassian-webhook-identifier"] == "hook-9"
    assert "x-hub-signature" not in detail["headers"]
    # Filled by the router: which subscriptions matched (none exist here).
    assert detail["routing"] is None or isinstance(detail["routing"], dict)
    envelope = detail["envelope"]
    assert envelope["event_types"] == ["issue_created"]
    assert envelope["issue"]["summary"] == "Тестовый эпик"
    assert envelope["changes"][3] == {
        "field": "status",
        "from": None,
        "to": "To Do",
        "label": "Статус",
    }


def test_event_detail_of_an_ignored_event_has_no_envelope(
    client: TestClient, workspace: MadeWorkspace, admin: MadeUser
) -> None:
    _, ignored, _ = post_three(client, workspace)
    detail = client.get(f"{BASE}/events/{ignored}", headers=bearer(admin)).json()
    assert detail["envelope"] is None
    assert detail["raw_payload"]["webhookEvent"] == "project_created"


def test_event_detail_of_another_workspace_is_404(
    client: TestClient, svc: Services, workspace: MadeWorkspace, admin: MadeUser
) -> None:
    other = make_workspace(svc, "globex")
    foreign = post_signed(client, other, payload(f"{MM}issue-created.json")).json()["event_id"]
    for event_id in (foreign, "nothing"):
        response = client.get(f"{BASE}/events/{event_id}", headers=bearer(admin))
        assert_error(response, 404, "event_not_found")


def test_jira_endpoints_follow_the_admin_rule(
    client: TestClient, svc: Services, workspace: MadeWorkspace
) -> None:
    member = make_user(svc, "member@acme.test", {"acme": "member"})
    make_workspace(svc, "globex")
    outsider = make_user(svc, "admin@globex.test", {"globex": "admin"})
    for method, path in (
        ("GET", f"{BASE}/events"),
        ("GET", f"{BASE}/events/x"),
        ("GET", f"{BASE}/connection"),
        ("POST", f"{BASE}/connection/regenerate"),
    ):
        body = {"which": "secret"} if method == "POST" else None
        assert_error(client.request(method, path, json=body), 401, "unauthorized")
        response = client.request(method, path, json=body, headers=bearer(member))
        assert_error(response, 403, "admin_required")
        response = client.request(method, path, json=body, headers=bearer(outsider))
        assert_error(response, 404, "workspace_not_found")


# ---------------------------------------------------------------------------------------------
# Connection and regeneration


def test_connection_shows_url_secret_and_token(
    client: TestClient, workspace: MadeWorkspace, admin: MadeUser
) -> None:
    response = client.get(f"{BASE}/connection", headers=bearer(admin))
    assert response.status_code == 200, response.text
    assert response.json() == {
        "webhook_url": "http://testserver/api/webhooks/jira?workspace=acme",
        "secret": workspace.jira.secret,
        "ingest_token": workspace.jira.ingest_token,
    }


def audit_entries(svc: Services, workspace_id: str) -> list[AuditEntry]:
    """The workspace's audit entries by people (a signed event's learned Jira site is not)."""
    with svc.db.transaction() as session:
        return list(
            session.scalars(
                select(AuditEntry)
                .where(AuditEntry.workspace_id == workspace_id, AuditEntry.actor_type == "user")
                .order_by(AuditEntry.seq)
            )
        )


def test_regenerating_the_secret_stops_the_old_one_at_once(
    client: TestClient, svc: Services, workspace: MadeWorkspace, admin: MadeUser
) -> None:
    body = payload(f"{MM}issue-created.json")
    assert post_signed(client, workspace, body).status_code == 202
    response = client.post(
        f"{BASE}/connection/regenerate", json={"which": "secret"}, headers=bearer(admin)
    )
    assert response.status_code == 200, response.text
    connection = response.json()
    assert connection["secret"] != workspace.jira.secret
    assert connection["ingest_token"] == workspace.jira.ingest_token
    assert_error(post_signed(client, workspace, body), 401, "unauthorized")
    renewed = MadeWorkspace(
        workspace.id,
        workspace.slug,
        workspace.name,
        type(workspace.jira)(connection["secret"], workspace.jira.ingest_token),
    )
    assert post_signed(client, renewed, body).status_code == 202
    assert client.get(f"{BASE}/connection", headers=bearer(admin)).json() == connection

    [entry] = audit_entries(svc, workspace.id)
    assert entry.action == "jira.secret.regenerated"
    assert entry.actor_email == "admin@acme.test"
    assert entry.target_id == workspace.id
    recorded = json.dumps(entry.details)
    assert connection["secret"] not in recorded
    assert workspace.jira.secret not in recorded


def test_regenerating_the_ingest_token_stops_the_old_one_at_once(
    client: TestClient, svc: Services, workspace: MadeWorkspace, admin: MadeUser
) -> None:
    body = payload(f"{MM}issue-created.json")
    response = client.post(
        f"{BASE}/connection/regenerate", json={"which": "ingest_token"}, headers=bearer(admin)
    )
    connection = response.json()
    assert connection["ingest_token"] != workspace.jira.ingest_token
    assert connection["ingest_token"].startswith("tmi_")
    assert connection["secret"] == workspace.jira.secret
    assert_error(post_with_token(client, workspace, body), 401, "unauthorized")
    assert post_signed(client, workspace, body).status_code == 202
    [entry] = audit_entries(svc, workspace.id)
    assert entry.action == "jira.ingest_token.regenerated"
    assert connection["ingest_token"] not in json.dumps(entry.details)


@pytest.mark.parametrize("body", [{"which": "password"}, {}, {"which": "secret", "extra": 1}])
def test_regenerate_validates_its_body(
    client: TestClient, admin: MadeUser, body: dict[str, object]
) -> None:
    response = client.post(f"{BASE}/connection/regenerate", json=body, headers=bearer(admin))
    assert_error(response, 422, "validation_error")


def test_openapi_describes_the_jira_endpoints(client: TestClient) -> None:
    spec = client.get("/openapi.json").json()
    paths = spec["paths"]
    intake = paths["/api/webhooks/jira"]["post"]
    assert {"200", "202", "400", "401", "413", "415", "503"} <= set(intake["responses"])
    assert {p["name"] for p in intake["parameters"]} == {"workspace", "token", "event"}
    assert "/api/v1/workspaces/{slug}/jira/events" in paths
    assert "/api/v1/workspaces/{slug}/jira/events/{event_id}" in paths
    assert "/api/v1/workspaces/{slug}/jira/connection/regenerate" in paths
    schemas = spec["components"]["schemas"]
    assert "JiraEvent" in json.dumps(schemas["JiraEventDetailOut"])
    assert set(schemas["ConnectionOut"]["properties"]) == {"webhook_url", "secret", "ingest_token"}
