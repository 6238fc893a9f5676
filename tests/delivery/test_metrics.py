"""/metrics: counters of what came in and went out, and the queue depth read at scrape time."""

from __future__ import annotations

import re
from pathlib import Path

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


def test_what_on_call_looks_at_first_follows_the_queue(
    client: TestClient, svc: Services, workspace: MadeWorkspace, sink: TeamsSink
) -> None:
    """Final outcomes, auto-disables, lease expiries and the age of the oldest due delivery."""
    from datetime import timedelta

    from sqlalchemy import update

    from ticketmate.dev.teams_sink import Answer
    from ticketmate.models import IntegrationDelivery
    from ticketmate.timeutil import utcnow

    def value(text: str, name: str) -> float:
        return sample(text, name)

    finished = 'ticketmate_deliveries_finished_total{outcome="%s"}'
    before = client.get("/metrics").text
    assert value(before, "ticketmate_delivery_oldest_due_seconds") == 0
    gone = make_webhook(svc, workspace.id, "gone", sink.url("/workflows/gone"))
    make_subscription(svc, workspace.id, gone, "issue_created", projects=["GONE"])
    sink.set_default("/workflows/gone", Answer(410, "Gone"))
    eng = make_webhook(svc, workspace.id, "eng", sink.url("/workflows/eng"))
    make_subscription(svc, workspace.id, eng, "issue_created", projects=["DEMO"])
    for n in range(4):
        store_and_route(
            svc, workspace.id, event(["issue_created"], key=f"GONE-{n}", project="GONE")
        )
    store_and_route(svc, workspace.id, event(["issue_created"], key="DEMO-1"))
    # One of eng's deliveries has waited ten minutes already, in flight under a dead lease.
    with svc.db.transaction() as session:
        session.execute(
            update(IntegrationDelivery)
            .where(IntegrationDelivery.webhook_id == eng)
            .values(
                status="in_flight",
                next_attempt_at=utcnow() - timedelta(minutes=10),
                locked_until=utcnow() - timedelta(minutes=1),
                worker_id="vm:1:dead",
            )
        )
    waiting = client.get("/metrics").text
    assert 590 <= value(waiting, "ticketmate_delivery_oldest_due_seconds") <= 900
    svc.settings = svc.settings.model_copy(update={"channel_rate_per_second": 100})
    drain(svc)
    after = client.get("/metrics").text
    added = {
        name: value(after, name) - value(before, name)
        for name in (
            finished % "delivered",
            finished % "dead_letter",
            finished % "skipped",
            "ticketmate_webhooks_auto_disabled_total",
            "ticketmate_delivery_lease_expiries_total",
        )
    }
    assert added == {
        finished % "delivered": 1,
        finished % "dead_letter": 3,  # three "removed" answers, then the webhook is disabled
        finished % "skipped": 1,  # the fourth, never sent
        "ticketmate_webhooks_auto_disabled_total": 1,
        "ticketmate_delivery_lease_expiries_total": 1,
    }
    assert value(after, "ticketmate_delivery_oldest_due_seconds") == 0


def test_intake_transactions_are_measured(client: TestClient, workspace: MadeWorkspace) -> None:
    from tests.jira.support import post_signed

    before = client.get("/metrics").text
    answer = post_signed(client, workspace, {"webhookEvent": "sprint_started", "timestamp": 1})
    assert answer.status_code == 202, answer.text
    after = client.get("/metrics").text
    for name in ("ticketmate_intake_batch_events_count", "ticketmate_intake_commit_seconds_count"):
        assert sample(after, name) == sample(before, name) + 1
    assert sample(after, "ticketmate_intake_batch_events_sum") >= (
        sample(before, "ticketmate_intake_batch_events_sum") + 1
    )


def test_with_a_token_metrics_answers_only_its_bearer(svc: Services, tmp_path: Path) -> None:
    from pydantic import SecretStr

    from ticketmate.app import create_app

    svc.settings = svc.settings.model_copy(update={"metrics_token": SecretStr("s3cret-token")})
    with TestClient(create_app(svc.settings, services=svc)) as guarded:
        for headers in (
            {},
            {"Authorization": "Bearer wrong"},
            {"Authorization": "Bearer s3cret-toke"},
            {"Authorization": "Basic s3cret-token"},
            {"Authorization": "s3cret-token"},
        ):
            refused = guarded.get("/metrics", headers=headers)
            assert refused.status_code == 401, headers
            assert refused.headers["www-authenticate"] == "Bearer"
            assert refused.json()["error"]["code"] == "unauthorized"
            assert "s3cret" not in refused.text
        allowed = guarded.get("/metrics", headers={"Authorization": "Bearer s3cret-token"})
        assert allowed.status_code == 200
        assert "ticketmate_delivery_queue_depth" in allowed.text
        # The probes stay open: a load balancer has no token.
        assert guarded.get("/healthz").status_code == 200
