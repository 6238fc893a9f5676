"""A delivery stores and shows no part of its webhook's secret, whatever Teams answers.

The real worker sends to the local stand-in, which quotes the request's URL back in one of the
forms in tests/teams/leaks.py; then the database columns that keep Teams' answer, the Delivery
Log API, the pages and the log are read.
"""

from __future__ import annotations

import logging

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from tests.support.factories import MadeWorkspace, bearer, make_user
from tests.support.teams import (
    deliveries,
    drain,
    event,
    make_subscription,
    make_webhook,
    store_and_route,
)
from tests.support.web import sign_in
from tests.teams.leaks import (
    FORMS,
    HOOKS,
    SPLITS,
    applies,
    assert_no_secret,
    cut_piece,
    echo_answer,
)
from ticketmate.dev.teams_sink import Answer, TeamsSink
from ticketmate.models import DeliveryAttempt, TeamsWebhook
from ticketmate.state import Services
from ticketmate.teams.client import EXCERPT_BYTES

PAGES = "/w/acme/admin/integrations/teams"
API = "/api/v1/workspaces/acme/teams"
CASES = [
    pytest.param(kind, form, id=f"{kind}-{form}")
    for kind in HOOKS
    for form in FORMS
    if applies(kind, form)
]


@pytest.mark.parametrize(("kind", "form"), CASES)
def test_a_refused_delivery_keeps_no_secret(
    client: TestClient,
    svc: Services,
    workspace: MadeWorkspace,
    sink: TeamsSink,
    caplog: pytest.LogCaptureFixture,
    kind: str,
    form: str,
) -> None:
    caplog.set_level(logging.DEBUG)
    hook = HOOKS[kind]()
    webhook_id = make_webhook(svc, workspace.id, "#eng", hook.url(sink))
    make_subscription(svc, workspace.id, webhook_id, "issue_created")
    sink.script(hook.path, echo_answer(hook, form))
    store_and_route(svc, workspace.id, event(["issue_created"]))

    drain(svc)

    [request] = sink.received(hook.path)
    assert hook.ids[-1] in request.query + request.path  # the stand-in got the real URL
    [delivery] = deliveries(svc, workspace.id)
    assert delivery.status == "dead_letter"
    assert "HTTP 403" in (delivery.last_error or "")
    assert_no_secret("integration_delivery_log.last_error", delivery.last_error, hook)
    with svc.db.transaction() as session:
        [attempt] = session.scalars(select(DeliveryAttempt))
        assert attempt.response_excerpt
        assert "Forbidden" in attempt.response_excerpt
        assert_no_secret("delivery_attempts.response_excerpt", attempt.response_excerpt, hook)
        assert_no_secret("delivery_attempts.message", attempt.message, hook)
        row = session.get(TeamsWebhook, webhook_id)
        assert row is not None
        assert_no_secret("teams_webhooks.last_failure_reason", row.last_failure_reason, hook)
    if form in SPLITS:
        # The answer was longer than the excerpt: the excerpt is cut, and keeps not even the
        # beginning of the secret the cut fell into.
        assert len(attempt.response_excerpt.encode()) <= EXCERPT_BYTES
        assert attempt.response_excerpt.startswith(echo_answer(hook, form).body[:100])
        assert cut_piece(hook) not in attempt.response_excerpt

    admin = make_user(svc, "ada@example.com", {"acme": "admin"})
    detail = client.get(f"{API}/deliveries/{delivery.id}", headers=bearer(admin))
    assert detail.status_code == 200
    assert detail.json()["attempts"][0]["response_excerpt"] == attempt.response_excerpt
    assert_no_secret("the delivery in the API", detail.text, hook)
    assert cut_piece(hook) not in detail.text
    listing = client.get(f"{API}/deliveries", headers=bearer(admin))
    assert_no_secret("the Delivery Log API", listing.text, hook)
    webhooks = client.get(f"{API}/webhooks", headers=bearer(admin))
    assert_no_secret("the webhooks in the API", webhooks.text, hook)

    sign_in(client, admin.email, admin.password)
    for where, path in (
        ("the Delivery Log", f"{PAGES}/deliveries"),
        ("the delivery page", f"{PAGES}/deliveries/{delivery.id}"),
        ("the Webhooks page", f"{PAGES}/webhooks"),
    ):
        page = client.get(path)
        assert page.status_code == 200, where
        assert "HTTP 403" in page.text, where  # Teams' answer is on the page, scrubbed
        assert_no_secret(where, page.text, hook)
        assert cut_piece(hook) not in page.text, where
    assert_no_secret("the log", caplog.text, hook)


def test_a_retried_delivery_keeps_no_secret_in_its_waiting_reason(
    svc: Services, workspace: MadeWorkspace, sink: TeamsSink
) -> None:
    hook = HOOKS["workflows"]()
    webhook_id = make_webhook(svc, workspace.id, "#eng", hook.url(sink))
    make_subscription(svc, workspace.id, webhook_id, "issue_created")
    sink.script(hook.path, Answer(503, "Service Unavailable at $authority$target", echo=True))
    store_and_route(svc, workspace.id, event(["issue_created"]))

    drain(svc)

    [delivery] = deliveries(svc, workspace.id)
    assert delivery.status == "pending"
    assert "HTTP 503" in (delivery.last_error or "")
    assert "Service Unavailable" in (delivery.last_error or "")
    assert_no_secret("integration_delivery_log.last_error", delivery.last_error, hook)
    with svc.db.transaction() as session:
        [attempt] = session.scalars(select(DeliveryAttempt))
        assert_no_secret("delivery_attempts.response_excerpt", attempt.response_excerpt, hook)
        assert_no_secret("delivery_attempts.message", attempt.message, hook)
