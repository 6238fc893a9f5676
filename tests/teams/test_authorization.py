"""The 401 / 403 / 404 rules on every Teams and audit-log endpoint; refusals change nothing."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from tests.support.factories import bearer
from tests.teams.helpers import People, add_subscription, add_webhook, assert_error
from ticketmate.dev.teams_sink import TeamsSink
from ticketmate.models import AuditEntry, TeamsSubscription, TeamsWebhook
from ticketmate.state import Services

ENDPOINTS = [
    ("GET", "/teams/webhooks", None),
    ("POST", "/teams/webhooks", {"channel_name": "#new", "url": "SINK"}),
    ("POST", "/teams/webhooks/test", {"url": "SINK"}),
    ("GET", "/teams/webhooks/{webhook}", None),
    ("PATCH", "/teams/webhooks/{webhook}", {"enabled": False}),
    ("DELETE", "/teams/webhooks/{webhook}?cascade=true", None),
    ("POST", "/teams/webhooks/{webhook}/test", None),
    ("GET", "/teams/subscriptions", None),
    ("POST", "/teams/subscriptions", {"event_type": "issue_created", "webhook_id": "{webhook}"}),
    ("GET", "/teams/subscriptions/{subscription}", None),
    ("PATCH", "/teams/subscriptions/{subscription}", {"enabled": False}),
    ("DELETE", "/teams/subscriptions/{subscription}", None),
    ("GET", "/audit-log", None),
    ("GET", "/audit-log/verify", None),
]
IDS = [f"{method} {path}" for method, path, _ in ENDPOINTS]


class Setup:
    def __init__(self, client: TestClient, people: People, sink: TeamsSink) -> None:
        self.client = client
        self.sink = sink
        admin = bearer(people.admin)
        self.webhook = add_webhook(client, admin, sink.url("/workflows/a"), "#eng")["id"]
        self.subscription = add_subscription(client, admin, self.webhook)["id"]

    def call(
        self, method: str, path: str, body: Any, headers: dict[str, str], slug: str = "acme"
    ) -> Any:
        values = {"webhook": self.webhook, "subscription": self.subscription}
        url = f"/api/v1/workspaces/{slug}" + path.format(**values)
        if isinstance(body, dict):
            body = {k: v.format(**values) if isinstance(v, str) else v for k, v in body.items()}
            if body.get("url") == "SINK":
                body["url"] = self.sink.url("/workflows/other")
        return self.client.request(method, url, json=body, headers=headers)


@pytest.fixture
def setup(client: TestClient, people: People, sink: TeamsSink) -> Setup:
    return Setup(client, people, sink)


def snapshot(svc: Services) -> tuple[int, int, int]:
    with svc.db.transaction() as session:
        return (
            session.scalar(select(func.count()).select_from(TeamsWebhook)) or 0,
            session.scalar(select(func.count()).select_from(TeamsSubscription)) or 0,
            session.scalar(select(func.count()).select_from(AuditEntry)) or 0,
        )


@pytest.mark.parametrize(("method", "path", "body"), ENDPOINTS, ids=IDS)
def test_refusals(
    svc: Services, people: People, setup: Setup, method: str, path: str, body: Any
) -> None:
    before = snapshot(svc)
    cases = [
        ({}, 401, "unauthorized"),
        ({"Authorization": "Bearer tm_not_a_token"}, 401, "unauthorized"),
        (bearer(people.member), 403, "admin_required"),
        (bearer(people.outsider), 404, "workspace_not_found"),
    ]
    for headers, status, code in cases:
        assert_error(setup.call(method, path, body, headers), status, code)
    # A workspace that does not exist looks the same as one that is not yours.
    assert_error(
        setup.call(method, path, body, bearer(people.admin), slug="nothing"),
        404,
        "workspace_not_found",
    )
    assert snapshot(svc) == before
    assert len(setup.sink.received()) == 0


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [e for e in ENDPOINTS if "{" in e[1] or (e[2] and "{webhook}" in str(e[2]))],
    ids=[i for i, e in zip(IDS, ENDPOINTS, strict=True) if "{" in e[1] or "{webhook}" in str(e[2])],
)
def test_another_workspaces_ids_are_not_found(
    svc: Services, people: People, setup: Setup, method: str, path: str, body: Any
) -> None:
    """The globex admin, in globex, naming acme's webhook or subscription: 404 or 422."""
    before = snapshot(svc)
    response = setup.call(method, path, body, bearer(people.outsider), slug="globex")
    assert response.status_code in (404, 422), response.text
    if response.status_code == 404:
        assert response.json()["error"]["code"] in ("webhook_not_found", "subscription_not_found")
    assert snapshot(svc) == before
    assert len(setup.sink.received()) == 0


@pytest.mark.parametrize(("method", "path", "body"), ENDPOINTS, ids=IDS)
def test_the_admin_gets_through(
    people: People, setup: Setup, method: str, path: str, body: Any
) -> None:
    response = setup.call(method, path, body, bearer(people.admin))
    assert response.status_code in (200, 201, 204), response.text
