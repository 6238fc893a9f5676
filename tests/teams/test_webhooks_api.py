"""Webhooks through the API: create, read, change, delete; URLs write-only and masked."""

from __future__ import annotations

from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy import select

from tests.security import webhook_urls as U
from tests.support.web import sign_in
from tests.teams.helpers import BASE, People, add_subscription, add_webhook, assert_error
from ticketmate.models import AuditEntry, TeamsWebhook
from ticketmate.state import Services
from ticketmate.teams.webhooks import decrypt_webhook_url

READ_FIELDS = {
    "id",
    "channel_name",
    "url_masked",
    "url_kind",
    "url_family",
    "url_warning",
    "enabled",
    "created_at",
    "updated_at",
    "created_by",
    "disabled_reason",
    "storm_threshold",
    "health",
}


def audit(svc: Services, workspace_id: str, action: str | None = None) -> list[AuditEntry]:
    with svc.db.transaction() as session:
        query = select(AuditEntry).where(AuditEntry.workspace_id == workspace_id)
        if action:
            query = query.where(AuditEntry.action == action)
        return list(session.scalars(query.order_by(AuditEntry.seq)))


def stored(svc: Services, webhook_id: str) -> TeamsWebhook:
    with svc.db.transaction() as session:
        found = session.get(TeamsWebhook, webhook_id)
        assert found is not None
        return found


def test_create_answers_201_with_the_read_model(
    client: TestClient, svc: Services, people: People, auth: dict[str, str]
) -> None:
    body = add_webhook(client, auth, U.LOGIC_APPS, "#engineering-alerts")
    assert set(body) == READ_FIELDS
    assert body["channel_name"] == "#engineering-alerts"
    assert body["url_masked"] == "https://prod-27.westeurope.logic.azure.com/…Xk3Q"
    assert body["url_kind"] == "workflows"
    assert body["enabled"] is True
    assert body["created_by"] == "admin@acme.test"
    assert body["disabled_reason"] is None
    assert body["created_at"].endswith("Z")
    assert body["health"] == {
        "last_success_at": None,
        "last_failure_at": None,
        "last_failure_reason": None,
        "consecutive_failures": 0,
    }
    assert decrypt_webhook_url(svc.keyring, stored(svc, body["id"])) == U.LOGIC_APPS
    [entry] = audit(svc, people.acme.id, "teams.webhook.created")
    assert entry.target_type == "teams_webhook"
    assert entry.target_id == body["id"]
    assert entry.actor_email == "admin@acme.test"
    assert entry.details["url_kind"] == "workflows"
    assert "url" not in entry.details


def test_connector_urls_are_labelled_connector(
    client: TestClient, people: People, auth: dict[str, str]
) -> None:
    body = add_webhook(client, auth, U.CONNECTOR_V2, "#legacy", enabled=False)
    assert body["url_kind"] == "connector"
    assert body["enabled"] is False


def test_list_get_newest_first_with_cursor(
    client: TestClient, people: People, auth: dict[str, str]
) -> None:
    ids = [
        add_webhook(client, auth, url, f"#c{n}")["id"]
        for n, url in enumerate([U.LOGIC_APPS, U.POWER_PLATFORM, U.CONNECTOR])
    ]
    first = client.get(f"{BASE}/webhooks?limit=2", headers=auth).json()
    assert [w["id"] for w in first["items"]] == [ids[2], ids[1]]
    assert first["next_cursor"]
    second = client.get(
        f"{BASE}/webhooks", params={"limit": 2, "cursor": first["next_cursor"]}, headers=auth
    ).json()
    assert [w["id"] for w in second["items"]] == [ids[0]]
    assert second["next_cursor"] is None
    one = client.get(f"{BASE}/webhooks/{ids[1]}", headers=auth)
    assert one.status_code == 200
    assert one.json()["url_kind"] == "workflows"
    assert "url" not in one.json()
    disabled = client.get(f"{BASE}/webhooks?enabled=false", headers=auth).json()
    assert disabled["items"] == []


def test_invalid_url_is_422_listing_the_accepted_forms(
    client: TestClient, people: People, auth: dict[str, str]
) -> None:
    bad = U.LOGIC_APPS.split("&sig=")[0]
    response = client.post(
        f"{BASE}/webhooks", json={"channel_name": "#x", "url": bad}, headers=auth
    )
    error = assert_error(response, 422, "invalid_webhook_url")
    assert "sig=" in error["message"]
    assert "webhook.office.com/webhookb2" in error["message"]
    assert error["details"][0]["field"] == "url"
    assert bad[30:] not in response.text


def test_amp_is_refused_with_a_hint(
    client: TestClient, people: People, auth: dict[str, str]
) -> None:
    response = client.post(
        f"{BASE}/webhooks",
        json={"channel_name": "#x", "url": U.POWER_PLATFORM.replace("&", "&amp;")},
        headers=auth,
    )
    assert "&amp;" in assert_error(response, 422, "invalid_webhook_url")["message"]


def test_loopback_refused_unless_allowed(
    svc: Services, people: People, auth: dict[str, str]
) -> None:
    from ticketmate.app import create_app

    svc.settings = svc.settings.model_copy(update={"allow_loopback_webhooks": False})
    with TestClient(create_app(svc.settings, services=svc)) as strict:
        response = strict.post(
            f"{BASE}/webhooks",
            json={"channel_name": "#x", "url": "http://127.0.0.1:9/workflows/a"},
            headers=auth,
        )
    error = assert_error(response, 422, "invalid_webhook_url")
    assert "TICKETMATE_ALLOW_LOOPBACK_WEBHOOKS" in error["message"]


def test_same_url_twice_is_409_even_with_other_whitespace(
    client: TestClient, svc: Services, people: People, auth: dict[str, str]
) -> None:
    add_webhook(client, auth, U.CONNECTOR, "#one")
    response = client.post(
        f"{BASE}/webhooks", json={"channel_name": "#two", "url": f" {U.CONNECTOR}\n"}, headers=auth
    )
    error = assert_error(response, 409, "duplicate_webhook_url")
    assert "#one" in error["message"]
    # Another workspace may hold the same URL: uniqueness is per workspace.
    other = client.post(
        "/api/v1/workspaces/globex/teams/webhooks",
        json={"channel_name": "#one", "url": U.CONNECTOR},
        headers={"Authorization": f"Bearer {people.outsider.token}"},
    )
    assert other.status_code == 201


def test_channel_name_rules(client: TestClient, people: People, auth: dict[str, str]) -> None:
    add_webhook(client, auth, U.CONNECTOR, "#eng")
    taken = client.post(
        f"{BASE}/webhooks", json={"channel_name": " #ENG ", "url": U.LOGIC_APPS}, headers=auth
    )
    assert_error(taken, 409, "channel_name_taken")
    for name, says in [("", "1 to 100"), ("x" * 101, "1 to 100"), ("a\nb", "control")]:
        response = client.post(
            f"{BASE}/webhooks", json={"channel_name": name, "url": U.LOGIC_APPS}, headers=auth
        )
        error = assert_error(response, 422, "validation_error")
        assert error["details"][0]["field"] == "channel_name"
        assert says in error["message"]


def test_request_body_is_checked_strictly(
    client: TestClient, people: People, auth: dict[str, str]
) -> None:
    cases: list[tuple[dict[str, Any], str]] = [
        ({"channel_name": "#x", "url": U.LOGIC_APPS, "secret": 1}, "secret"),
        ({"channel_name": "#x", "url": U.LOGIC_APPS, "enabled": "yes"}, "enabled"),
        ({"channel_name": "#x"}, "url"),
        ({"url": U.LOGIC_APPS}, "channel_name"),
        ({"channel_name": 5, "url": U.LOGIC_APPS}, "channel_name"),
    ]
    for body, field in cases:
        response = client.post(f"{BASE}/webhooks", json=body, headers=auth)
        error = assert_error(response, 422, "validation_error")
        assert error["details"][0]["field"] == field
    not_json = client.post(
        f"{BASE}/webhooks", content=b"{nope", headers={**auth, "Content-Type": "application/json"}
    )
    assert_error(not_json, 422, "validation_error")


def test_patch_changes_fields_and_replaces_the_url(
    client: TestClient, svc: Services, people: People, auth: dict[str, str]
) -> None:
    created = add_webhook(client, auth, U.LOGIC_APPS, "#eng")
    url = f"{BASE}/webhooks/{created['id']}"
    renamed = client.patch(url, json={"channel_name": "#engineering"}, headers=auth)
    assert renamed.status_code == 200
    assert renamed.json()["channel_name"] == "#engineering"
    assert renamed.json()["url_masked"] == created["url_masked"]

    # Untested: a real Microsoft URL is never contacted from the tests (the sample-card test
    # before saving is tested against the stand-in, tests/teams/test_url_replacement.py).
    moved = client.patch(
        url, json={"url": U.POWER_PLATFORM_CU, "save_untested": True}, headers=auth
    ).json()
    assert moved["url_kind"] == "workflows"
    assert moved["url_family"] == "power_platform"
    assert moved["url_warning"] is None
    assert moved["url_masked"].endswith(".powerplatform.com/…YxWv")
    assert decrypt_webhook_url(svc.keyring, stored(svc, created["id"])) == U.POWER_PLATFORM_CU

    disabled = client.patch(url, json={"enabled": False}, headers=auth).json()
    assert disabled["enabled"] is False

    updates = audit(svc, people.acme.id, "teams.webhook.updated")
    assert [u.details for u in updates] == [
        {"channel_name": {"from": "#eng", "to": "#engineering"}},
        {
            "url_changed": True,
            "url_family": {"from": "logic_apps", "to": "power_platform"},
            "url_tested": False,
        },
        {"enabled": {"from": True, "to": False}},
    ]
    # Nothing changed, nothing logged.
    assert client.patch(url, json={"enabled": False}, headers=auth).status_code == 200
    assert len(audit(svc, people.acme.id, "teams.webhook.updated")) == 3


def test_patch_validates_like_create(
    client: TestClient, people: People, auth: dict[str, str]
) -> None:
    first = add_webhook(client, auth, U.LOGIC_APPS, "#one")
    add_webhook(client, auth, U.CONNECTOR, "#two")
    url = f"{BASE}/webhooks/{first['id']}"
    assert_error(
        client.patch(url, json={"url": "https://x.test/a"}, headers=auth),
        422,
        "invalid_webhook_url",
    )
    assert_error(
        client.patch(url, json={"url": U.CONNECTOR}, headers=auth), 409, "duplicate_webhook_url"
    )
    assert_error(
        client.patch(url, json={"channel_name": "#TWO"}, headers=auth), 409, "channel_name_taken"
    )
    nulled = client.patch(url, json={"enabled": None}, headers=auth)
    assert "cannot be null" in assert_error(nulled, 422, "validation_error")["message"]
    assert_error(
        client.patch(url, json={"url_kind": "connector"}, headers=auth), 422, "validation_error"
    )
    # Saving the same URL again is not a duplicate of itself (and, unchanged, is not tested).
    assert client.patch(url, json={"url": U.LOGIC_APPS}, headers=auth).status_code == 200


def test_reenabling_clears_the_systems_reason(
    client: TestClient, svc: Services, people: People, auth: dict[str, str]
) -> None:
    created = add_webhook(client, auth, U.LOGIC_APPS)
    with svc.db.transaction() as session:
        row = session.get(TeamsWebhook, created["id"])
        assert row is not None
        row.enabled = False
        row.disabled_reason = "Teams answered 404 three times: removed from the channel."
        row.consecutive_removed = 3
    shown = client.get(f"{BASE}/webhooks/{created['id']}", headers=auth).json()
    assert shown["disabled_reason"].startswith("Teams answered 404")
    enabled = client.patch(
        f"{BASE}/webhooks/{created['id']}", json={"enabled": True}, headers=auth
    ).json()
    assert enabled["enabled"] is True
    assert enabled["disabled_reason"] is None
    assert stored(svc, created["id"]).consecutive_removed == 0


def test_delete_refused_while_subscriptions_use_it_unless_cascade(
    client: TestClient, svc: Services, people: People, auth: dict[str, str]
) -> None:
    webhook = add_webhook(client, auth, U.LOGIC_APPS)
    subs = [
        add_subscription(client, auth, webhook["id"], kind)["id"]
        for kind in ("issue_created", "status_changed")
    ]
    url = f"{BASE}/webhooks/{webhook['id']}"
    refused = client.delete(url, headers=auth)
    error = assert_error(refused, 409, "webhook_in_use")
    assert {d["subscription_id"] for d in error["details"]} == set(subs)
    assert "cascade=true" in error["message"]
    assert client.get(url, headers=auth).status_code == 200

    deleted = client.delete(f"{url}?cascade=true", headers=auth)
    assert deleted.status_code == 204
    assert deleted.content == b""
    assert_error(client.get(url, headers=auth), 404, "webhook_not_found")
    assert client.get(f"{BASE}/subscriptions", headers=auth).json()["items"] == []
    actions = [e.action for e in audit(svc, people.acme.id)]
    assert actions[-3:] == [
        "teams.subscription.deleted",
        "teams.subscription.deleted",
        "teams.webhook.deleted",
    ]
    sub_entries = audit(svc, people.acme.id, "teams.subscription.deleted")
    assert {e.target_id for e in sub_entries} == set(subs)
    assert all(e.details["cascade"] is True for e in sub_entries)


def test_delete_unused_webhook(
    client: TestClient, svc: Services, people: People, auth: dict[str, str]
) -> None:
    webhook = add_webhook(client, auth, U.CONNECTOR)
    assert client.delete(f"{BASE}/webhooks/{webhook['id']}", headers=auth).status_code == 204
    [entry] = audit(svc, people.acme.id, "teams.webhook.deleted")
    assert entry.details["deleted_subscriptions"] == []
    assert_error(
        client.delete(f"{BASE}/webhooks/{webhook['id']}", headers=auth), 404, "webhook_not_found"
    )


def test_session_cookie_writes_need_the_csrf_header(client: TestClient, people: People) -> None:
    csrf = sign_in(client, people.admin.email, people.admin.password)
    body = {"channel_name": "#eng", "url": U.CONNECTOR}
    refused = client.post(f"{BASE}/webhooks", json=body)
    assert_error(refused, 403, "csrf_failed")
    wrong = client.post(f"{BASE}/webhooks", json=body, headers={"X-CSRF-Token": "nope"})
    assert_error(wrong, 403, "csrf_failed")
    assert client.get(f"{BASE}/webhooks").json()["items"] == []
    made = client.post(f"{BASE}/webhooks", json=body, headers={"X-CSRF-Token": csrf})
    assert made.status_code == 201
    assert client.get(f"{BASE}/webhooks").status_code == 200  # reads need no token


def test_openapi_documents_the_endpoints_and_url_is_write_only(client: TestClient) -> None:
    spec = client.get("/openapi.json").json()
    paths = spec["paths"]
    for path, methods in {
        f"{BASE}/webhooks": {"get", "post"},
        f"{BASE}/webhooks/test": {"post"},
        f"{BASE}/webhooks/{{webhook_id}}": {"get", "patch", "delete"},
        f"{BASE}/webhooks/{{webhook_id}}/test": {"post"},
        f"{BASE}/subscriptions": {"get", "post"},
        f"{BASE}/subscriptions/{{subscription_id}}": {"get", "patch", "delete"},
        "/api/v1/workspaces/{slug}/audit-log": {"get"},
        "/api/v1/workspaces/{slug}/audit-log/verify": {"get"},
    }.items():
        assert methods <= set(paths[path.replace("/acme/", "/{slug}/")]), path
    schemas = spec["components"]["schemas"]
    assert schemas["WebhookCreate"]["properties"]["url"]["writeOnly"] is True
    assert "url" not in schemas["WebhookView"]["properties"]
    assert schemas["WebhookCreate"]["additionalProperties"] is False
    created = paths["/api/v1/workspaces/{slug}/teams/webhooks"]["post"]["responses"]
    assert {"201", "401", "403", "404", "409", "422"} <= set(created)
