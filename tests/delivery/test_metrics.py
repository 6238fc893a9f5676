"""/metrics: counters of what came in and went out, and the queue depth read at scrape time."""

from __future__ import annotations

import re

from fastapi.testclient import TestClient

from tests.support.factories import MadeWorkspace
from tests.support.teams import drain, event, make_subscription, make_webhook, store_and_route
from ticketmate.dev.teams_sink import TeamsSink
from ticketmate.state import Services


def sample(text: str, name: str) -> float:
    found = re.search(rf"^{re.escape(name)} (\S+)$", text, re.MULTILINE)
    return float(found.group(1)) if found else 0.0


def test_metrics_follow_a_delivery(
    client: TestClient, svc: Services, workspace: MadeWorkspace, sink: TeamsSink
) -> None:
    before = client.get("/metrics").text
    hook = make_webhook(svc, workspace.id, "eng", sink.url("/workflows/eng"))
    make_subscription(svc, workspace.id, hook, "issue_created")
    store_and_route(svc, workspace.id, event(["issue_created"]))
    queued = client.get("/metrics")
    assert queued.status_code == 200
    assert queued.headers["content-type"].startswith("text/plain")
    assert sample(queued.text, 'ticketmate_delivery_queue_depth{status="pending"}') == 1
    assert sample(queued.text, "ticketmate_deliveries_queued_total") == (
        sample(before, "ticketmate_deliveries_queued_total") + 1
    )
    drain(svc)
    after = client.get("/metrics").text
    delivered = 'ticketmate_delivery_attempts_total{outcome="delivered"}'
    assert sample(after, delivered) == sample(before, delivered) + 1
    assert sample(after, 'ticketmate_delivery_queue_depth{status="pending"}') == 0
    assert sample(after, "ticketmate_teams_request_seconds_count") == (
        sample(before, "ticketmate_teams_request_seconds_count") + 1
    )
    # Operators' numbers only: no workspace, channel or URL appears.
    assert "acme" not in after
    assert "127.0.0.1" not in after


def test_jira_events_are_counted_by_outcome(client: TestClient, workspace: MadeWorkspace) -> None:
    import json

    from ticketmate.jira.signature import body_signature

    def post(body: dict[str, object], identifier: str) -> None:
        raw = json.dumps(body).encode()
        response = client.post(
            f"/api/webhooks/jira?workspace={workspace.slug}",
            content=raw,
            headers={
                "Content-Type": "application/json",
                "X-Hub-Signature": body_signature(workspace.jira.secret, raw),
                "X-Atlassian-Webhook-Identifier": identifier,
            },
        )
        assert response.status_code in (200, 202), response.text

    before = client.get("/metrics").text
    post({"webhookEvent": "sprint_started", "timestamp": 1}, "a")
    post({"webhookEvent": "sprint_started", "timestamp": 1}, "a")
    after = client.get("/metrics").text
    for status, added in (("ignored", 1), ("duplicate", 1), ("routed", 0)):
        name = f'ticketmate_jira_events_total{{status="{status}"}}'
        assert sample(after, name) == sample(before, name) + added
