"""Retired and retiring URL families through the API: each webhook's family and warning, and
the count of affected webhooks per workspace in /metrics."""

from __future__ import annotations

import re

from fastapi.testclient import TestClient
from sqlalchemy import update

from tests.security import webhook_urls as U
from tests.support.factories import bearer, make_user
from tests.teams.helpers import BASE, People, add_webhook
from ticketmate.dev.teams_sink import Answer, TeamsSink
from ticketmate.models import TeamsWebhook
from ticketmate.security.urls import REPLACE_URL_ADVICE
from ticketmate.state import Services

GAUGE = "ticketmate_webhooks_needing_new_url"


def test_each_webhook_says_its_family_and_warns_for_retired_and_retiring_ones(
    client: TestClient, people: People, auth: dict[str, str], sink: TeamsSink
) -> None:
    made = {
        "#logic": add_webhook(client, auth, U.LOGIC_APPS, "#logic"),
        "#power": add_webhook(client, auth, U.POWER_PLATFORM, "#power"),
        "#connector": add_webhook(client, auth, U.CONNECTOR_V2, "#connector"),
        "#outlook": add_webhook(client, auth, U.OUTLOOK_CONNECTOR, "#outlook"),
        "#local": add_webhook(client, auth, sink.url("/workflows/local"), "#local"),
    }
    listed = client.get(f"{BASE}/webhooks", headers=auth)
    assert listed.status_code == 200
    items = {item["channel_name"]: item for item in listed.json()["items"]}
    families = {name: item["url_family"] for name, item in items.items()}
    assert families == {
        "#logic": "logic_apps",
        "#power": "power_platform",
        "#connector": "connector",
        "#outlook": "connector",
        "#local": "loopback",
    }
    # The answer to create says the same, and so does GET of one webhook.
    for name, created in made.items():
        assert created["url_family"] == families[name]
        one = client.get(f"{BASE}/webhooks/{created['id']}", headers=auth).json()
        assert (one["url_family"], one["url_warning"]) == (
            items[name]["url_family"],
            items[name]["url_warning"],
        )
    assert items["#power"]["url_warning"] is None
    assert items["#local"]["url_warning"] is None
    retired = items["#logic"]["url_warning"]
    assert "30 November 2025" in retired
    assert "logic.azure.com" in retired
    for name in ("#connector", "#outlook"):
        assert "Office 365 connectors" in items[name]["url_warning"]
    for name in ("#logic", "#connector", "#outlook"):
        assert items[name]["url_warning"].endswith(REPLACE_URL_ADVICE)
    # Still accepted and kind as before: the family is a warning, not a refusal.
    assert items["#logic"]["url_kind"] == "workflows"
    assert items["#connector"]["url_kind"] == "connector"


def test_the_fields_are_described_in_openapi(client: TestClient) -> None:
    spec = client.get("/openapi.json").json()
    view = spec["components"]["schemas"]["WebhookView"]
    assert {"url_family", "url_warning"} <= set(view["required"])
    assert "logic_apps" in view["properties"]["url_family"]["description"]


def metric(text: str, workspace: str, family: str) -> float | None:
    found = re.search(
        rf'^{GAUGE}{{url_family="{family}",workspace="{workspace}"}} (\S+)$', text, re.MULTILINE
    )
    return float(found.group(1)) if found else None


def test_metrics_count_the_webhooks_needing_a_new_url_per_workspace_and_family(
    client: TestClient, svc: Services, people: People, auth: dict[str, str], sink: TeamsSink
) -> None:
    assert f"# TYPE {GAUGE} gauge" in client.get("/metrics").text
    assert metric(client.get("/metrics").text, "acme", "logic_apps") is None

    first = add_webhook(client, auth, U.LOGIC_APPS, "#logic-1")
    add_webhook(client, auth, U.LOGIC_APPS.replace("Xk3Q", "Yz9P"), "#logic-2")
    add_webhook(client, auth, U.CONNECTOR, "#connector")
    add_webhook(client, auth, U.POWER_PLATFORM, "#power")
    add_webhook(client, auth, sink.url("/workflows/local"), "#local")
    globex = bearer(make_user(svc, "admin2@globex.test", {"globex": "admin"}))
    add_webhook(client, globex, U.OUTLOOK_CONNECTOR, "#globex", slug="globex")
    disabled = add_webhook(client, globex, U.LOGIC_APPS, "#off", slug="globex", enabled=False)
    assert disabled["enabled"] is False

    text = client.get("/metrics").text
    assert metric(text, "acme", "logic_apps") == 2
    assert metric(text, "acme", "connector") == 1
    assert metric(text, "globex", "connector") == 1
    assert metric(text, "globex", "logic_apps") == 1  # a disabled webhook still needs a new URL
    samples = re.findall(rf"^{GAUGE}{{.*$", text, re.MULTILINE)
    assert len(samples) == 4  # current and local families are not listed
    assert "power_platform" not in text
    assert "loopback" not in text
    # Workspace slugs and families only: no channel, host or URL.
    for leaked in ("#logic", "westeurope", "contoso", "127.0.0.1", "Xk3Q"):
        assert leaked not in text

    # Replaced by a Workflows URL (untested here: a real Microsoft URL is never contacted).
    replaced = client.patch(
        f"{BASE}/webhooks/{first['id']}",
        json={"url": U.POWER_PLATFORM_CU, "save_untested": True},
        headers=auth,
    )
    assert replaced.status_code == 200, replaced.text
    assert metric(client.get("/metrics").text, "acme", "logic_apps") == 1


def test_test_connection_of_a_retired_webhook_names_the_retirement(
    client: TestClient, svc: Services, people: People, auth: dict[str, str], sink: TeamsSink
) -> None:
    # A stand-in on 127.0.0.1 with the family a logic.azure.com URL has (set as the
    # migration sets it): Test Connection reads the saved webhook's family, as deliveries do.
    made = add_webhook(client, auth, sink.url("/workflows/retired"), "#retired")
    with svc.db.transaction() as session:
        session.execute(
            update(TeamsWebhook)
            .where(TeamsWebhook.id == made["id"])
            .values(url_family="logic_apps")
        )
    sink.set_default("/workflows/retired", Answer(404, ""))
    tested = client.post(f"{BASE}/webhooks/{made['id']}/test", headers=auth).json()
    assert tested["ok"] is False
    assert tested["status_code"] == 404
    assert "30 November 2025" in tested["message"]
    assert tested["message"].endswith(REPLACE_URL_ADVICE)
    health = client.get(f"{BASE}/webhooks/{made['id']}", headers=auth).json()["health"]
    assert health["last_failure_reason"] == tested["message"]
