"""Helpers for the Teams API tests: the people fixture's shape and short API calls."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from fastapi.testclient import TestClient

from tests.support.factories import MadeUser, MadeWorkspace


@dataclass(frozen=True)
class People:
    acme: MadeWorkspace
    globex: MadeWorkspace
    admin: MadeUser  # admin of acme
    member: MadeUser  # member (not admin) of acme
    outsider: MadeUser  # admin of globex only


BASE = "/api/v1/workspaces/acme/teams"


def add_webhook(
    client: TestClient,
    headers: dict[str, str],
    url: str,
    channel_name: str = "#eng",
    slug: str = "acme",
    **extra: Any,
) -> dict[str, Any]:
    response = client.post(
        f"/api/v1/workspaces/{slug}/teams/webhooks",
        json={"channel_name": channel_name, "url": url, **extra},
        headers=headers,
    )
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


def add_subscription(
    client: TestClient,
    headers: dict[str, str],
    webhook_id: str,
    event_type: str = "issue_created",
    **extra: Any,
) -> dict[str, Any]:
    response = client.post(
        f"{BASE}/subscriptions",
        json={"event_type": event_type, "webhook_id": webhook_id, **extra},
        headers=headers,
    )
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


def assert_error(response: Any, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error"}, body
    assert body["error"]["code"] == code, body
    assert body["error"]["message"], body
    error: dict[str, Any] = body["error"]
    return error
