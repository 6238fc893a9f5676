"""GET /audit-log: newest first, the documented shape, filters and pagination."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy import select

from tests.security import webhook_urls as U
from tests.support.factories import bearer
from tests.teams.helpers import People, add_webhook, assert_error
from ticketmate.audit.service import SYSTEM, record
from ticketmate.models import AuditEntry
from ticketmate.state import Services
from ticketmate.timeutil import rfc3339, utcnow

LOG = "/api/v1/workspaces/acme/audit-log"


def entries(client: TestClient, auth: dict[str, str], **params: Any) -> dict[str, Any]:
    response = client.get(LOG, params=params, headers=auth)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def test_entries_have_the_documented_shape_newest_first(
    client: TestClient, people: People, auth: dict[str, str]
) -> None:
    webhook = add_webhook(client, auth, U.CONNECTOR, "#eng")
    client.patch(
        f"/api/v1/workspaces/acme/teams/webhooks/{webhook['id']}",
        json={"url": U.CONNECTOR_V2, "save_untested": True},
        headers={**auth, "User-Agent": "pytest-agent/1.0"},
    )
    body = entries(client, auth)
    assert body["next_cursor"] is None
    newest, oldest = body["items"]
    assert set(newest) == {
        "id",
        "at",
        "actor",
        "action",
        "target",
        "ip",
        "user_agent",
        "details",
        "hash",
    }
    assert newest["action"] == "teams.webhook.updated"
    assert newest["details"] == {"url_changed": True, "url_tested": False}
    assert newest["actor"] == {"type": "user", "id": people.admin.id, "email": "admin@acme.test"}
    assert newest["target"] == {"type": "teams_webhook", "id": webhook["id"]}
    assert newest["user_agent"] == "pytest-agent/1.0"
    assert newest["ip"] == "testclient"
    assert newest["at"].endswith("Z")
    assert len(newest["hash"]) == 64
    assert oldest["action"] == "teams.webhook.created"
    assert U.CONNECTOR not in str(body)
    assert U.CONNECTOR_V2 not in str(body)


def test_filters_and_pagination(
    client: TestClient, svc: Services, people: People, auth: dict[str, str]
) -> None:
    now = utcnow()
    with svc.db.transaction() as session:
        for n, action in enumerate(
            ["teams.webhook.created", "keys.rotated", "teams.webhook.tested"]
        ):
            record(
                session,
                workspace_id=people.acme.id,
                actor=SYSTEM,
                action=action,
                at=now - timedelta(hours=3 - n),
            )
        # Another workspace's entries never show here.
        record(session, workspace_id=people.globex.id, actor=SYSTEM, action="keys.rotated")
    add_webhook(client, auth, U.CONNECTOR)  # now, by the admin

    assert len(entries(client, auth)["items"]) == 4
    assert [e["action"] for e in entries(client, auth, action="keys.rotated")["items"]] == [
        "keys.rotated"
    ]
    assert len(entries(client, auth, action="teams.webhook.*")["items"]) == 3
    assert len(entries(client, auth, action="teams.%")["items"]) == 0  # no SQL wildcards
    by_system = entries(client, auth, actor="system")["items"]
    assert len(by_system) == 3
    assert by_system[0]["target"] == {"type": None, "id": None}
    assert by_system[0]["actor"] == {"type": "system", "id": None, "email": None}
    by_email = entries(client, auth, actor="Admin@Acme.test")["items"]
    assert [e["action"] for e in by_email] == ["teams.webhook.created"]
    assert entries(client, auth, actor=people.admin.id)["items"] == by_email
    since = entries(client, auth, since=rfc3339(now - timedelta(hours=1, minutes=30)))["items"]
    assert [e["action"] for e in since] == ["teams.webhook.created", "teams.webhook.tested"]
    until = entries(client, auth, until=rfc3339(now - timedelta(hours=2, minutes=30)))["items"]
    assert [e["action"] for e in until] == ["teams.webhook.created"]
    naive = entries(client, auth, since=(now - timedelta(minutes=5)).strftime("%Y-%m-%dT%H:%M:%S"))
    assert len(naive["items"]) == 1

    page = entries(client, auth, limit=3)
    assert len(page["items"]) == 3
    rest = entries(client, auth, limit=3, cursor=page["next_cursor"])
    assert len(rest["items"]) == 1
    assert rest["next_cursor"] is None
    all_ids = [e["id"] for e in page["items"] + rest["items"]]
    assert all_ids == sorted(all_ids, reverse=True)


def test_bad_query_parameters_are_4xx(
    client: TestClient, people: People, auth: dict[str, str]
) -> None:
    assert_error(
        client.get(LOG, params={"since": "yesterday"}, headers=auth), 422, "validation_error"
    )
    assert_error(client.get(LOG, params={"limit": 0}, headers=auth), 422, "validation_error")
    assert_error(client.get(LOG, params={"limit": 201}, headers=auth), 422, "validation_error")
    assert_error(client.get(LOG, params={"cursor": "!!"}, headers=auth), 400, "invalid_cursor")
    assert_error(
        client.get(LOG, params={"action": "x" * 65}, headers=auth), 422, "validation_error"
    )


def test_verify_endpoint(
    client: TestClient, svc: Services, people: People, auth: dict[str, str]
) -> None:
    add_webhook(client, auth, U.CONNECTOR)
    add_webhook(client, auth, U.LOGIC_APPS, "#two")
    verdict = client.get(f"{LOG}/verify", headers=auth).json()
    assert verdict == {"ok": True, "checked": 2, "broken_entry_id": None, "problem": None}

    with svc.db.transaction() as session:
        second = session.scalars(
            select(AuditEntry)
            .where(AuditEntry.workspace_id == people.acme.id)
            .order_by(AuditEntry.seq.desc())
        ).first()
        assert second is not None
        second.details = {**second.details, "channel_name": "#innocent"}
    verdict = client.get(f"{LOG}/verify", headers=auth).json()
    assert verdict["ok"] is False
    assert verdict["checked"] == 1
    assert verdict["broken_entry_id"] == second.id
    assert "does not match its hash" in verdict["problem"]
    # Another workspace's chain is its own.
    theirs = client.get(
        "/api/v1/workspaces/globex/audit-log/verify", headers=bearer(people.outsider)
    ).json()
    assert theirs["ok"] is True
