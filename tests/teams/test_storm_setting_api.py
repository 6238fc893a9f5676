"""Storm control's webhook setting through the API: off by default, set, changed, turned off,
validated, audited, and routing's generation moved on."""

from __future__ import annotations

from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy import select

from tests.security import webhook_urls as U
from tests.teams.helpers import BASE, People, add_webhook, assert_error
from ticketmate.models import AuditEntry, Workspace
from ticketmate.state import Services


def updates(svc: Services, workspace_id: str) -> list[dict[str, Any]]:
    with svc.db.transaction() as session:
        return [
            e.details
            for e in session.scalars(
                select(AuditEntry)
                .where(
                    AuditEntry.workspace_id == workspace_id,
                    AuditEntry.action == "teams.webhook.updated",
                )
                .order_by(AuditEntry.seq)
            )
        ]


def generation(svc: Services, workspace_id: str) -> int:
    with svc.db.transaction() as session:
        found = session.scalar(
            select(Workspace.config_generation).where(Workspace.id == workspace_id)
        )
        return int(found or 0)


def test_the_setting_round_trips_and_is_audited(
    client: TestClient, svc: Services, people: People, auth: dict[str, str]
) -> None:
    off = add_webhook(client, auth, U.LOGIC_APPS, "#eng")
    assert off["storm_threshold"] is None  # off by default
    on = add_webhook(client, auth, U.CONNECTOR, "#ops", storm_threshold=40)
    assert on["storm_threshold"] == 40
    url = f"{BASE}/webhooks/{off['id']}"
    before = generation(svc, people.acme.id)
    changed = client.patch(url, json={"storm_threshold": 40}, headers=auth)
    assert changed.status_code == 200, changed.text
    assert changed.json()["storm_threshold"] == 40
    assert client.get(url, headers=auth).json()["storm_threshold"] == 40
    assert generation(svc, people.acme.id) > before
    # Leaving the field out keeps it; null turns it off.
    kept = client.patch(url, json={"enabled": True}, headers=auth).json()
    assert kept["storm_threshold"] == 40
    nulled = client.patch(url, json={"storm_threshold": None}, headers=auth).json()
    assert nulled["storm_threshold"] is None
    assert updates(svc, people.acme.id) == [
        {"storm_threshold": {"from": None, "to": 40}},
        {"storm_threshold": {"from": 40, "to": None}},
    ]


def test_out_of_range_or_not_a_number_is_refused(
    client: TestClient, people: People, auth: dict[str, str]
) -> None:
    created = add_webhook(client, auth, U.LOGIC_APPS, "#eng")
    url = f"{BASE}/webhooks/{created['id']}"
    for value in (4, 0, -1, 1001, "40", 40.5, True):
        response = client.patch(url, json={"storm_threshold": value}, headers=auth)
        error = assert_error(response, 422, "validation_error")
        assert error["details"][0]["field"] == "storm_threshold", (value, error)
        made = client.post(
            f"{BASE}/webhooks",
            json={"channel_name": "#x", "url": U.CONNECTOR, "storm_threshold": value},
            headers=auth,
        )
        assert_error(made, 422, "validation_error")
    for edge in (5, 1000):
        ok = client.patch(url, json={"storm_threshold": edge}, headers=auth)
        assert ok.status_code == 200
        assert ok.json()["storm_threshold"] == edge
