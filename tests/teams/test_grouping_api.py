"""Combining and digests as subscription settings through the API: off by default, set,
changed, turned off, validated (one or the other, a real time and zone), audited, and the
digest's next time worked out and shown."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from fastapi.testclient import TestClient
from sqlalchemy import select

from tests.security import webhook_urls as U
from tests.teams.helpers import BASE, People, add_subscription, add_webhook, assert_error
from ticketmate.models import AuditEntry
from ticketmate.state import Services


def audited(svc: Services, workspace_id: str, action: str) -> list[dict[str, Any]]:
    with svc.db.transaction() as session:
        return [
            e.details
            for e in session.scalars(
                select(AuditEntry)
                .where(AuditEntry.workspace_id == workspace_id, AuditEntry.action == action)
                .order_by(AuditEntry.seq)
            )
        ]


def test_off_by_default_then_set_changed_and_turned_off(
    client: TestClient, svc: Services, people: People, auth: dict[str, str]
) -> None:
    hook = add_webhook(client, auth, U.LOGIC_APPS, "#eng")
    plain = add_subscription(client, auth, hook["id"])
    assert (plain["combine"], plain["digest"], plain["next_digest_at"]) == ("off", "off", None)
    combined = add_subscription(client, auth, hook["id"], combine="30s")
    assert combined["combine"] == "30s"
    url = f"{BASE}/subscriptions/{combined['id']}"
    # From combining to a digest in one request.
    changed = client.patch(
        url, json={"combine": "off", "digest": "daily@09:00/Europe/Berlin"}, headers=auth
    )
    assert changed.status_code == 200, changed.text
    body = changed.json()
    assert (body["combine"], body["digest"]) == ("off", "daily@09:00/Europe/Berlin")
    assert body["digest_label"] == "Daily at 09:00 (Europe/Berlin)"
    at = datetime.fromisoformat(body["next_digest_at"].replace("Z", "+00:00"))
    local = at.astimezone(ZoneInfo("Europe/Berlin"))
    assert (local.hour, local.minute) == (9, 0)
    assert timedelta(0) < at - datetime.now(UTC) <= timedelta(days=1)
    assert client.get(url, headers=auth).json()["digest"] == "daily@09:00/Europe/Berlin"
    off = client.patch(url, json={"digest": "off"}, headers=auth).json()
    assert (off["digest"], off["next_digest_at"]) == ("off", None)
    details = audited(svc, people.acme.id, "teams.subscription.updated")
    assert details[0]["combine"] == {"from": "30s", "to": "off"}
    assert details[0]["digest"] == {"from": "off", "to": "daily@09:00/Europe/Berlin"}
    assert details[1] == {"digest": {"from": "daily@09:00/Europe/Berlin", "to": "off"}}
    created = audited(svc, people.acme.id, "teams.subscription.created")
    assert [c["combine"] for c in created] == ["off", "30s"]


def test_hourly_is_on_the_hour_and_spelled_as_stored(
    client: TestClient, people: People, auth: dict[str, str]
) -> None:
    hook = add_webhook(client, auth, U.LOGIC_APPS, "#eng")
    made = add_subscription(client, auth, hook["id"], digest="Hourly")
    assert made["digest"] == "hourly"
    at = datetime.fromisoformat(made["next_digest_at"].replace("Z", "+00:00"))
    assert (at.minute, at.second) == (0, 0)


def test_bad_settings_are_refused_with_the_field_named(
    client: TestClient, people: People, auth: dict[str, str]
) -> None:
    hook = add_webhook(client, auth, U.LOGIC_APPS, "#eng")
    create = f"{BASE}/subscriptions"
    base = {"event_type": "issue_created", "webhook_id": hook["id"]}
    for extra, field in (
        ({"combine": "15s"}, "combine"),
        ({"combine": 30}, "combine"),
        ({"digest": "weekly"}, "digest"),
        ({"digest": "daily@25:00/UTC"}, "digest"),
        ({"digest": "daily@09:00/Mars/Olympus"}, "digest"),
        ({"digest": "daily@9:00/UTC"}, "digest"),
        ({"digest": None}, "digest"),
    ):
        error = assert_error(
            client.post(create, json={**base, **extra}, headers=auth), 422, "validation_error"
        )
        assert error["details"][0]["field"] == field, (extra, error)
    both = client.post(create, json={**base, "combine": "1m", "digest": "hourly"}, headers=auth)
    assert "either combining or a digest" in assert_error(both, 422, "validation_error")["message"]
    # A digest asked for on a subscription that combines, without turning combining off.
    combining = add_subscription(client, auth, hook["id"], combine="1m")
    url = f"{BASE}/subscriptions/{combining['id']}"
    refused = client.patch(url, json={"digest": "hourly"}, headers=auth)
    error = assert_error(refused, 422, "validation_error")
    assert error["details"][0]["field"] == "digest"
    kept = client.get(url, headers=auth).json()
    assert (kept["combine"], kept["digest"]) == ("1m", "off")  # nothing was changed
    for value in (None,):
        nulled = client.patch(url, json={"combine": value}, headers=auth)
        assert_error(nulled, 422, "validation_error")
