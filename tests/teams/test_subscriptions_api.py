"""Subscriptions through the API: CRUD, filters, and clear 422s for what cannot be saved."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from tests.security import webhook_urls as U
from tests.support.factories import bearer
from tests.teams.helpers import BASE, People, add_subscription, add_webhook, assert_error
from ticketmate.models import AuditEntry, TeamsSubscription
from ticketmate.state import Services

NO_FILTERS = {
    "projects": [],
    "issue_types": [],
    "statuses": [],
    "priorities": [],
    "labels": [],
    "components": [],
    "security_levels": [],
}


@pytest.fixture
def webhook_id(client: TestClient, people: People, auth: dict[str, str]) -> str:
    return str(add_webhook(client, auth, U.LOGIC_APPS, "#eng")["id"])


def test_create_read_list_update_delete(
    client: TestClient, svc: Services, people: People, auth: dict[str, str], webhook_id: str
) -> None:
    created = add_subscription(
        client,
        auth,
        webhook_id,
        "status_changed",
        filters={"projects": ["DEMO", "ops"], "statuses": ["Done"]},
    )
    assert created["event_type"] == "status_changed"
    assert created["event_label"] == "Status Changed"
    assert created["webhook_id"] == webhook_id
    assert created["channel_name"] == "#eng"
    assert created["enabled"] is True
    assert created["filters"] == {**NO_FILTERS, "projects": ["DEMO", "ops"], "statuses": ["Done"]}
    assert created["created_by"] == "admin@acme.test"
    assert created["created_at"].endswith("Z")

    url = f"{BASE}/subscriptions/{created['id']}"
    assert client.get(url, headers=auth).json() == created
    other = add_subscription(client, auth, webhook_id, "comment_created")
    listed = client.get(f"{BASE}/subscriptions", headers=auth).json()
    assert [s["id"] for s in listed["items"]] == [other["id"], created["id"]]
    assert listed["next_cursor"] is None
    only = client.get(
        f"{BASE}/subscriptions", params={"event_type": "comment_created"}, headers=auth
    ).json()
    assert [s["id"] for s in only["items"]] == [other["id"]]

    changed = client.patch(
        url, json={"enabled": False, "filters": {"labels": ["urgent"]}}, headers=auth
    )
    assert changed.status_code == 200, changed.text
    assert changed.json()["enabled"] is False
    assert changed.json()["filters"] == {**NO_FILTERS, "labels": ["urgent"]}  # replaced whole

    assert client.delete(url, headers=auth).status_code == 204
    assert_error(client.get(url, headers=auth), 404, "subscription_not_found")

    with svc.db.transaction() as session:
        entries = list(
            session.scalars(
                select(AuditEntry)
                .where(AuditEntry.action.like("teams.subscription.%"))
                .order_by(AuditEntry.seq)
            )
        )
    assert [(e.action, e.target_id) for e in entries] == [
        ("teams.subscription.created", created["id"]),
        ("teams.subscription.created", other["id"]),
        ("teams.subscription.updated", created["id"]),
        ("teams.subscription.deleted", created["id"]),
    ]
    assert entries[2].details["enabled"] == {"from": True, "to": False}
    assert entries[2].details["filters"]["to"]["labels"] == ["urgent"]


def test_filter_values_are_trimmed_and_deduplicated_case_insensitively(
    client: TestClient, people: People, auth: dict[str, str], webhook_id: str
) -> None:
    created = add_subscription(
        client,
        auth,
        webhook_id,
        filters={"issue_types": [" Bug", "bug", "Story "], "labels": None},
    )
    assert created["filters"]["issue_types"] == ["Bug", "Story"]
    assert created["filters"]["labels"] == []


def test_moving_a_subscription_to_another_webhook(
    client: TestClient, people: People, auth: dict[str, str], webhook_id: str
) -> None:
    created = add_subscription(client, auth, webhook_id)
    second = add_webhook(client, auth, U.CONNECTOR, "#ops")
    moved = client.patch(
        f"{BASE}/subscriptions/{created['id']}", json={"webhook_id": second["id"]}, headers=auth
    ).json()
    assert (moved["webhook_id"], moved["channel_name"]) == (second["id"], "#ops")
    listed = client.get(
        f"{BASE}/subscriptions", params={"webhook_id": second["id"]}, headers=auth
    ).json()
    assert [s["id"] for s in listed["items"]] == [created["id"]]


def invalid(**changes: Any) -> dict[str, Any]:
    return {"event_type": "issue_created", "webhook_id": "WEBHOOK", **changes}


CASES = [
    pytest.param(
        invalid(event_type="issue_exploded"), "event_type", "unknown event type", id="type"
    ),
    pytest.param(invalid(event_type=""), "event_type", "unknown event type", id="empty type"),
    pytest.param(invalid(webhook_id="0" * 26), "webhook_id", "no webhook", id="no such webhook"),
    pytest.param(invalid(webhook_id=""), "webhook_id", "at least 1", id="empty webhook id"),
    pytest.param(
        invalid(filters={"projects": ["DEMO", ""]}), "filters.projects", "empty", id="empty value"
    ),
    pytest.param(invalid(filters={"labels": ["   "]}), "filters.labels", "empty", id="blank value"),
    pytest.param(
        invalid(filters={"components": [f"c{n}" for n in range(101)]}),
        "filters.components",
        "at most 100",
        id="101 values",
    ),
    pytest.param(
        invalid(filters={"statuses": ["x" * 256]}), "filters.statuses", "255", id="long value"
    ),
    pytest.param(
        invalid(filters={"projects": "DEMO"}), "filters.projects", "list", id="not a list"
    ),
    pytest.param(
        invalid(filters={"project": ["DEMO"]}), "filters.project", "not permitted", id="typo"
    ),
    pytest.param(invalid(enabled="true"), "enabled", "boolean", id="bool as string"),
    pytest.param(invalid(extra=1), "extra", "not permitted", id="extra field"),
]


@pytest.mark.parametrize(("body", "field", "says"), CASES)
def test_invalid_subscriptions_are_422_naming_the_field(
    client: TestClient,
    svc: Services,
    people: People,
    auth: dict[str, str],
    webhook_id: str,
    body: dict[str, Any],
    field: str,
    says: str,
) -> None:
    if body["webhook_id"] == "WEBHOOK":
        body["webhook_id"] = webhook_id
    response = client.post(f"{BASE}/subscriptions", json=body, headers=auth)
    error = assert_error(response, 422, "validation_error")
    assert error["details"][0]["field"] == field, error
    assert says in error["details"][0]["message"], error
    assert error["message"].startswith(f"{field}: ")
    with svc.db.transaction() as session:
        assert session.scalar(select(TeamsSubscription.id)) is None


def test_exactly_100_values_are_fine(
    client: TestClient, people: People, auth: dict[str, str], webhook_id: str
) -> None:
    values = [f"L{n}" for n in range(100)]
    created = add_subscription(client, auth, webhook_id, filters={"labels": values})
    assert created["filters"]["labels"] == values


def test_webhook_of_another_workspace_is_refused(
    client: TestClient, people: People, auth: dict[str, str], webhook_id: str
) -> None:
    theirs = add_webhook(client, bearer(people.outsider), U.CONNECTOR, "#theirs", "globex")
    theirs_base = "/api/v1/workspaces/globex/teams"
    assert theirs["id"]
    response = client.post(
        f"{BASE}/subscriptions",
        json={"event_type": "issue_created", "webhook_id": theirs["id"]},
        headers=auth,
    )
    error = assert_error(response, 422, "validation_error")
    assert error["details"] == [
        {"field": "webhook_id", "message": "there is no webhook with this id in this workspace"}
    ]
    # Moving an existing subscription there is refused the same way.
    mine = add_subscription(client, auth, webhook_id)
    moved = client.patch(
        f"{BASE}/subscriptions/{mine['id']}", json={"webhook_id": theirs["id"]}, headers=auth
    )
    assert_error(moved, 422, "validation_error")
    # And the other workspace's admin cannot reach this workspace's subscription by id.
    peek = client.get(f"{theirs_base}/subscriptions/{mine['id']}", headers=bearer(people.outsider))
    assert_error(peek, 404, "subscription_not_found")


def test_patch_rejects_nulls_and_unknown_fields(
    client: TestClient, people: People, auth: dict[str, str], webhook_id: str
) -> None:
    created = add_subscription(client, auth, webhook_id)
    url = f"{BASE}/subscriptions/{created['id']}"
    for body in ({"event_type": None}, {"filters": None}, {"webhook": "x"}):
        assert_error(client.patch(url, json=body, headers=auth), 422, "validation_error")
    bad_type = client.patch(url, json={"event_type": "nope"}, headers=auth)
    assert "unknown event type" in assert_error(bad_type, 422, "validation_error")["message"]
    unchanged = client.patch(url, json={}, headers=auth)
    assert unchanged.status_code == 200
    assert unchanged.json() == created
