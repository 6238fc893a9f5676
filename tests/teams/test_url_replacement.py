"""Replacing a webhook's URL through PATCH: the new URL gets the sample card first and is saved
only when Teams accepts it, or with `save_untested`; never quoted in answers, audit or logs."""

from __future__ import annotations

import json
import logging
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from tests.security import webhook_urls as U
from tests.teams.helpers import BASE, People, add_webhook, assert_error
from ticketmate.dev.teams_sink import Answer, TeamsSink
from ticketmate.models import AuditEntry, TeamsWebhook
from ticketmate.state import Services
from ticketmate.teams.test_connection import TEST_MESSAGE_TITLE
from ticketmate.teams.webhooks import decrypt_webhook_url

PATH = "/workflows/N3wFl0wPathSecret/triggers/manual/paths/invoke"
SIG = "N3wS1gnatureSecret"


def new_url(sink: TeamsSink) -> str:
    return sink.url(f"{PATH}?api-version=1&sig={SIG}")


def saved(svc: Services, webhook_id: str) -> TeamsWebhook:
    with svc.db.transaction() as session:
        found = session.get(TeamsWebhook, webhook_id)
        assert found is not None
        return found


def audit(svc: Services, action: str) -> list[dict[str, Any]]:
    with svc.db.transaction() as session:
        return [
            e.details
            for e in session.scalars(
                select(AuditEntry).where(AuditEntry.action == action).order_by(AuditEntry.seq)
            )
        ]


def everything_audited(svc: Services) -> str:
    with svc.db.transaction() as session:
        return json.dumps([e.details for e in session.scalars(select(AuditEntry))])


def assert_no_secret(texts: list[str], url: str) -> None:
    for text in texts:
        for secret in (url, PATH, SIG, "N3wFl0wPathSecret"):
            assert secret not in text


@pytest.fixture
def retired(client: TestClient, people: People, auth: dict[str, str]) -> dict[str, Any]:
    """A webhook on a retired logic.azure.com URL, to be replaced."""
    return add_webhook(client, auth, U.LOGIC_APPS, "#ops")


def test_a_new_url_is_saved_once_teams_accepts_the_sample_card(
    client: TestClient,
    svc: Services,
    auth: dict[str, str],
    sink: TeamsSink,
    retired: dict[str, Any],
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    url = new_url(sink)
    answer = client.patch(
        f"{BASE}/webhooks/{retired['id']}",
        json={"url": url, "channel_name": "#ops-new"},
        headers=auth,
    )
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["channel_name"] == "#ops-new"
    assert body["url_family"] == "loopback"
    assert body["url_warning"] is None
    # The sample card went to the new URL, naming the channel as it will be.
    [card] = sink.received(PATH)
    sent = json.dumps(card.json())
    assert TEST_MESSAGE_TITLE in sent
    assert "#ops-new" in sent
    assert decrypt_webhook_url(svc.keyring, saved(svc, retired["id"])) == url
    assert audit(svc, "teams.webhook.updated") == [
        {
            "channel_name": {"from": "#ops", "to": "#ops-new"},
            "url_changed": True,
            "url_family": {"from": "logic_apps", "to": "loopback"},
            "url_tested": True,
        }
    ]
    [test] = audit(svc, "teams.webhook.tested")
    assert (test["ok"], test["status_code"], test["saved"]) == (True, 202, False)
    assert_no_secret(
        [answer.text, everything_audited(svc), *(r.getMessage() for r in caplog.records)], url
    )


def test_a_refused_test_saves_nothing_and_says_why_without_the_url(
    client: TestClient,
    svc: Services,
    auth: dict[str, str],
    sink: TeamsSink,
    retired: dict[str, Any],
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    url = new_url(sink)
    # The stand-in refuses and quotes the URL back, as receivers have been seen to do.
    sink.set_default(PATH, Answer(404, "No flow at $url ($path?$query)", echo=True))
    before = saved(svc, retired["id"])
    answer = client.patch(
        f"{BASE}/webhooks/{retired['id']}",
        json={"url": url, "channel_name": "#renamed"},
        headers=auth,
    )
    error = assert_error(answer, 422, "webhook_test_failed")
    assert "The URL was not replaced" in error["message"]
    assert "Teams answered 404" in error["message"]
    assert "save_untested" in error["message"]
    [detail] = error["details"]
    assert detail["field"] == "url"
    assert detail["status_code"] == 404
    assert "Teams answered 404" in detail["message"]
    assert len(sink.received(PATH)) == 1
    # Nothing changed: not the URL, not the channel name, not the saved URL's health.
    after = saved(svc, retired["id"])
    assert decrypt_webhook_url(svc.keyring, after) == U.LOGIC_APPS
    assert (after.channel_name, after.url_family, after.url_digest) == (
        "#ops",
        "logic_apps",
        before.url_digest,
    )
    assert after.last_failure_reason is None
    assert after.consecutive_failures == 0
    assert audit(svc, "teams.webhook.updated") == []
    [test] = audit(svc, "teams.webhook.tested")
    assert (test["ok"], test["status_code"]) == (False, 404)
    assert_no_secret(
        [answer.text, everything_audited(svc), *(r.getMessage() for r in caplog.records)], url
    )


def test_save_untested_saves_without_a_card_and_the_audit_says_so(
    client: TestClient,
    svc: Services,
    auth: dict[str, str],
    sink: TeamsSink,
    retired: dict[str, Any],
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    url = new_url(sink)
    sink.set_default(PATH, Answer(404, ""))
    item = f"{BASE}/webhooks/{retired['id']}"
    refused = client.patch(item, json={"url": url}, headers=auth)
    assert_error(refused, 422, "webhook_test_failed")
    assert len(sink.received(PATH)) == 1

    # "Save anyway": the same change with save_untested.
    answer = client.patch(item, json={"url": url, "save_untested": True}, headers=auth)
    assert answer.status_code == 200, answer.text
    assert answer.json()["url_family"] == "loopback"
    assert len(sink.received(PATH)) == 1  # no second card
    assert decrypt_webhook_url(svc.keyring, saved(svc, retired["id"])) == url
    assert audit(svc, "teams.webhook.updated") == [
        {
            "url_changed": True,
            "url_family": {"from": "logic_apps", "to": "loopback"},
            "url_tested": False,
        }
    ]
    assert_no_secret(
        [
            refused.text,
            answer.text,
            everything_audited(svc),
            *(r.getMessage() for r in caplog.records),
        ],
        url,
    )


def test_no_card_goes_to_a_url_that_would_be_refused_or_is_already_saved(
    client: TestClient,
    svc: Services,
    auth: dict[str, str],
    sink: TeamsSink,
    retired: dict[str, Any],
) -> None:
    item = f"{BASE}/webhooks/{retired['id']}"
    other = add_webhook(client, auth, sink.url("/workflows/other"), "#other")
    assert_error(
        client.patch(item, json={"url": sink.url("/workflows/other")}, headers=auth),
        409,
        "duplicate_webhook_url",
    )
    assert_error(
        client.patch(item, json={"url": new_url(sink), "channel_name": "#OTHER"}, headers=auth),
        409,
        "channel_name_taken",
    )
    assert_error(
        client.patch(item, json={"url": "https://x.test/a"}, headers=auth),
        422,
        "invalid_webhook_url",
    )
    assert_error(
        client.patch(f"{BASE}/webhooks/nope", json={"url": new_url(sink)}, headers=auth),
        404,
        "webhook_not_found",
    )
    # The saved URL itself: nothing changes, nothing is sent.
    same = client.patch(
        f"{BASE}/webhooks/{other['id']}", json={"url": sink.url("/workflows/other")}, headers=auth
    )
    assert same.status_code == 200
    assert sink.received() == []
    assert audit(svc, "teams.webhook.tested") == []
    assert audit(svc, "teams.webhook.updated") == []


def test_openapi_documents_save_untested_and_the_failed_test(client: TestClient) -> None:
    spec = client.get("/openapi.json").json()
    update = spec["components"]["schemas"]["WebhookUpdate"]["properties"]
    assert update["save_untested"]["type"] == "boolean"
    patch = spec["paths"]["/api/v1/workspaces/{slug}/teams/webhooks/{webhook_id}"]["patch"]
    assert "webhook_test_failed" in json.dumps(patch["responses"]["422"])
