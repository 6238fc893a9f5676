"""From Jira's POST to the card at a Teams stand-in, waking the worker instead of polling."""

from __future__ import annotations

import asyncio
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
from ticketmate.delivery.worker import TeamsDeliveryWorker
from ticketmate.dev.teams_sink import TeamsSink
from ticketmate.jira.signature import body_signature
from ticketmate.state import Services

PAYLOADS = Path(__file__).resolve().parents[1] / "fixtures" / "jira-payloads"
STATUS_CHANGE = "mattermost_mattermost-plugin-jira__issue-updated-status-todo-to-inprogress.json"
# The worker polls this seldom: once it is idle, only a wake-up explains a card that arrives
# within ARRIVES_WITHIN seconds.
SLOW_POLL = 60.0
ARRIVES_WITHIN = SLOW_POLL / 3


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
    slow_poll: Services,
    workspace: MadeWorkspace,
    admin: MadeUser,
    sink: TeamsSink,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Only the in-process signal may wake it: on PostgreSQL the worker would also hear NOTIFY.
    async def deaf(_worker: TeamsDeliveryWorker) -> None:
        await asyncio.Event().wait()

    monkeypatch.setattr(TeamsDeliveryWorker, "_listen", deaf)
    claims: list[tuple[float, int]] = []  # (when it returned, lanes claimed)
    claim = TeamsDeliveryWorker._claim

    async def counted(worker: TeamsDeliveryWorker) -> int:
        found = await claim(worker)
        claims.append((time.monotonic(), found))
        return found

    monkeypatch.setattr(TeamsDeliveryWorker, "_claim", counted)
    app = create_app(slow_poll.settings, services=slow_poll, background=[start_embedded_worker])
    with TestClient(app) as client:
        configure(client, admin, sink.url("/workflows/eng"))
        # Idle: its start-up claim found nothing; the next comes with a wake-up or the poll.
        deadline = time.monotonic() + 30
        while not claims:
            assert time.monotonic() < deadline, "the embedded worker never looked for work"
            time.sleep(0.05)
        assert claims == [(claims[0][0], 0)]
        started = time.monotonic()
        answer = post_jira(client, workspace, STATUS_CHANGE)
        assert answer["deliveries"] == 1
        [received] = sink.wait_for(1, timeout=ARRIVES_WITHIN)
        assert len(claims) >= 2  # a claim after the post took the card
        assert claims[1][0] >= started
    assert received.at - started < ARRIVES_WITHIN < SLOW_POLL
    card = received.json()["attachments"][0]["content"]
    assert "moved" in json.dumps(card)
    time.sleep(0.2)
    assert [d.status for d in deliveries(slow_poll, workspace.id)] == ["delivered"]


def wait_until_idle(svc: Services, quiet: float = 1.0, timeout: float = 60.0) -> None:
    """Until the worker process listens and every connection to the database has been idle
    and unchanged for `quiet` seconds, the worker's having run a statement after its LISTEN:
    its start-up claims (the first one, and the one its LISTEN wakes) are over and it waits
    for a NOTIFY or its next poll."""
    deadline = time.monotonic() + timeout
    seen: object = None
    still_since = time.monotonic()
    while True:
        with svc.db.engine.connect() as conn:
            listen_at = conn.exec_driver_sql(
                "SELECT max(query_start) FROM pg_stat_activity "
                "WHERE datname = current_database() AND query LIKE 'LISTEN %%'"
            ).scalar()
            rows = conn.exec_driver_sql(
                "SELECT pid, application_name, state, state_change FROM pg_stat_activity "
                "WHERE datname = current_database() AND pid <> pg_backend_pid() ORDER BY pid"
            ).all()
        snapshot = [tuple(row) for row in rows]
        worker_after_listen = listen_at is not None and any(
            name == "ticketmate-worker" and changed > listen_at for _, name, _, changed in rows
        )
        if worker_after_listen and all(state == "idle" for _, _, state, _ in rows):
            if snapshot != seen:
                seen, still_since = snapshot, time.monotonic()
            elif time.monotonic() - still_since >= quiet:
                return
        else:
            seen = None
        assert time.monotonic() < deadline, f"the worker did not settle: {snapshot}"
        time.sleep(0.1)


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
        wait_until_idle(slow_poll)
        started = time.monotonic()
        post_jira(client, workspace, STATUS_CHANGE)
        [received] = sink.wait_for(1, timeout=ARRIVES_WITHIN)
    assert received.at - started < ARRIVES_WITHIN < SLOW_POLL
