"""From Jira's POST to the card at a Teams stand-in, waking the worker instead of polling."""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from tests.support.factories import MadeUser, MadeWorkspace, bearer, make_user
from tests.support.processes import TICKETMATE, cli_env
from tests.support.teams import deliveries
from ticketmate.app import create_app
from ticketmate.delivery.embedded import start_embedded_worker
from ticketmate.dev.teams_sink import TeamsSink
from ticketmate.jira.signature import body_signature
from ticketmate.state import Services

PAYLOADS = Path(__file__).resolve().parents[1] / "fixtures" / "jira-payloads"
STATUS_CHANGE = "mattermost_mattermost-plugin-jira__issue-updated-status-todo-to-inprogress.json"
SLOW_POLL = 30.0  # so only a wake-up explains a card that arrives within seconds


@pytest.fixture
def admin(svc: Services, workspace: MadeWorkspace) -> MadeUser:
    return make_user(svc, "ada@example.com", {"acme": "admin"})


def configure(client: TestClient, admin: MadeUser, url: str) -> None:
    hook = client.post(
        "/api/v1/workspaces/acme/teams/webhooks",
        json={"channel_name": "#engineering-alerts", "url": url},
        headers=bearer(admin),
    )
    assert hook.status_code == 201, hook.text
    sub = client.post(
        "/api/v1/workspaces/acme/teams/subscriptions",
        json={"event_type": "status_changed", "webhook_id": hook.json()["id"]},
        headers=bearer(admin),
    )
    assert sub.status_code == 201, sub.text


def post_jira(client: TestClient, workspace: MadeWorkspace, name: str) -> dict[str, object]:
    raw = (PAYLOADS / name).read_bytes()
    response = client.post(
        f"/api/webhooks/jira?workspace={workspace.slug}",
        content=raw,
        headers={
            "Content-Type": "application/json",
            "X-Hub-Signature": body_signature(workspace.jira.secret, raw),
        },
    )
    assert response.status_code == 202, response.text
    body: dict[str, object] = response.json()
    return body


@pytest.fixture
def slow_poll(svc: Services) -> Services:
    svc.settings = svc.settings.model_copy(update={"worker_poll_seconds": SLOW_POLL})
    return svc


def test_embedded_worker_is_woken_by_the_intake(
    slow_poll: Services, workspace: MadeWorkspace, admin: MadeUser, sink: TeamsSink
) -> None:
    app = create_app(slow_poll.settings, services=slow_poll, background=[start_embedded_worker])
    with TestClient(app) as client:
        configure(client, admin, sink.url("/workflows/eng"))
        time.sleep(0.3)  # the worker is idle, waiting for up to SLOW_POLL seconds
        started = time.monotonic()
        answer = post_jira(client, workspace, STATUS_CHANGE)
        assert answer["deliveries"] == 1
        [received] = sink.wait_for(1, timeout=5)
    assert received.at - started < 5 < SLOW_POLL
    card = received.json()["attachments"][0]["content"]
    assert "moved" in json.dumps(card)
    time.sleep(0.2)
    assert [d.status for d in deliveries(slow_poll, workspace.id)] == ["delivered"]


@pytest.fixture
def worker_process(
    slow_poll: Services, database_url: str, tmp_path: Path
) -> Iterator[subprocess.Popen[str]]:
    env = cli_env(database_url, TICKETMATE_WORKER_POLL_SECONDS=str(SLOW_POLL))
    process = subprocess.Popen(
        [TICKETMATE, "worker"],
        env=env,
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        yield process
    finally:
        process.terminate()
        process.communicate(timeout=20)


def test_a_worker_in_another_process_hears_postgres_notify(
    slow_poll: Services,
    workspace: MadeWorkspace,
    admin: MadeUser,
    sink: TeamsSink,
    worker_process: subprocess.Popen[str],
) -> None:
    if slow_poll.db.dialect != "postgresql":
        pytest.skip("LISTEN/NOTIFY is PostgreSQL's; SQLite runs its worker inside serve")
    with TestClient(create_app(slow_poll.settings, services=slow_poll)) as client:
        configure(client, admin, sink.url("/workflows/eng"))
        time.sleep(1.5)  # the worker has started, found nothing, and is listening
        started = time.monotonic()
        post_jira(client, workspace, STATUS_CHANGE)
        [received] = sink.wait_for(1, timeout=10)
    assert received.at - started < 5 < SLOW_POLL
