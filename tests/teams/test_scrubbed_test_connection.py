"""Test Connection never shows or stores a webhook's secret parts, whatever Teams answers.

Each test sends through the real client to the local stand-in, which quotes the request's URL
back in one of the forms in tests/teams/leaks.py; then every place the answer reaches is read.
"""

from __future__ import annotations

import logging

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from tests.support.web import sign_in
from tests.teams.helpers import BASE, People, add_webhook
from tests.teams.leaks import FORMS, HOOKS, SPLITS, applies, assert_no_secret, echo_answer
from ticketmate.dev.teams_sink import TeamsSink
from ticketmate.models import AuditEntry, TeamsWebhook
from ticketmate.state import Services

PAGES = "/w/acme/admin/integrations/teams"
CASES = [
    pytest.param(kind, form, id=f"{kind}-{form}")
    for kind in HOOKS
    for form in FORMS
    if applies(kind, form)
]


@pytest.mark.parametrize(("kind", "form"), CASES)
def test_testing_a_typed_url_answers_no_secret(
    client: TestClient,
    svc: Services,
    people: People,
    auth: dict[str, str],
    sink: TeamsSink,
    caplog: pytest.LogCaptureFixture,
    kind: str,
    form: str,
) -> None:
    caplog.set_level(logging.DEBUG)
    hook = HOOKS[kind]()
    sink.script(hook.path, echo_answer(hook, form))

    response = client.post(f"{BASE}/webhooks/test", json={"url": hook.url(sink)}, headers=auth)

    assert response.status_code == 200, response.text
    [request] = sink.received(hook.path)
    assert hook.ids[-1] in request.query + request.path  # the stand-in got the real URL
    body = response.json()
    assert body["ok"] is False
    assert body["status_code"] == (200 if kind == "connector" else 403)
    assert "Forbidden" in body["message"] or form in SPLITS
    assert_no_secret("the Test Connection answer", response.text, hook)
    with svc.db.transaction() as session:
        for entry in session.scalars(select(AuditEntry)):
            assert_no_secret("an audit entry", str(entry.details), hook)
    assert_no_secret("the log", caplog.text, hook)


@pytest.mark.parametrize(("kind", "form"), CASES)
def test_testing_a_saved_webhook_stores_and_shows_no_secret(
    client: TestClient,
    svc: Services,
    people: People,
    auth: dict[str, str],
    sink: TeamsSink,
    caplog: pytest.LogCaptureFixture,
    kind: str,
    form: str,
) -> None:
    caplog.set_level(logging.DEBUG)
    hook = HOOKS[kind]()
    webhook = add_webhook(client, auth, hook.url(sink), "#eng")
    sink.script(hook.path, echo_answer(hook, form), echo_answer(hook, form))
    csrf = sign_in(client, people.admin.email, people.admin.password)

    answer = client.post(f"{BASE}/webhooks/{webhook['id']}/test", headers=auth)
    # The Test button on the Webhooks page: the result comes back as a flash on the list.
    from_list = client.post(
        f"{PAGES}/webhooks/{webhook['id']}/test",
        data={"csrf_token": csrf, "origin": "list"},
        follow_redirects=True,
    )

    assert len(sink.received(hook.path)) == 2
    assert answer.status_code == 200, answer.text
    assert answer.json()["ok"] is False
    assert_no_secret("the Test Connection answer", answer.text, hook)
    assert from_list.status_code == 200
    assert "Test of “#eng”" in from_list.text  # the flash with the test's message is shown
    assert_no_secret("the Webhooks page after a test", from_list.text, hook)
    health = client.get(f"{BASE}/webhooks/{webhook['id']}", headers=auth).json()["health"]
    assert health["consecutive_failures"] == 2
    assert "HTTP 403" in health["last_failure_reason"]
    assert_no_secret("the webhook's health", health["last_failure_reason"], hook)
    with svc.db.transaction() as session:
        row = session.get(TeamsWebhook, webhook["id"])
        assert row is not None
        assert_no_secret("teams_webhooks.last_failure_reason", row.last_failure_reason, hook)
    page = client.get(f"{PAGES}/webhooks")
    assert page.status_code == 200
    assert "HTTP 403" in page.text  # the failure reason is on the page
    assert_no_secret("the Webhooks page", page.text, hook)
    assert_no_secret("the log", caplog.text, hook)
