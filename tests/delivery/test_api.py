"""The Delivery Log API and CLI: list, detail with attempts, retry one, retry in bulk, purge."""

from __future__ import annotations

from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from tests.support.factories import MadeUser, MadeWorkspace, bearer, make_user
from tests.support.processes import cli_env, run_cli
from tests.support.teams import (
    deliveries,
    drain,
    event,
    make_subscription,
    make_webhook,
    store_and_route,
)
from ticketmate.dev.teams_sink import Answer, TeamsSink
from ticketmate.models import AuditEntry
from ticketmate.state import Services


@pytest.fixture
def admin(svc: Services, workspace: MadeWorkspace) -> MadeUser:
    return make_user(svc, "ada@example.com", {"acme": "admin"})


def dead_letters(svc: Services, workspace: MadeWorkspace, sink: TeamsSink, count: int = 2) -> str:
    hook = make_webhook(svc, workspace.id, "eng", sink.url("/workflows/eng"))
    make_subscription(svc, workspace.id, hook, "issue_created")
    for n in range(count):
        sink.script(
            "/workflows/eng", Answer(400, '{"error":{"code":"TriggerInputSchemaMismatch"}}')
        )
        store_and_route(svc, workspace.id, event(["issue_created"], key=f"DEMO-{n}"))
    drain(svc)
    assert {d.status for d in deliveries(svc, workspace.id)} == {"dead_letter"}
    return hook


def test_list_and_detail(
    client: TestClient, svc: Services, workspace: MadeWorkspace, sink: TeamsSink, admin: MadeUser
) -> None:
    hook = dead_letters(svc, workspace, sink)
    listing = client.get("/api/v1/workspaces/acme/teams/deliveries", headers=bearer(admin)).json()
    assert listing["next_cursor"] is None
    assert [i["issue_key"] for i in listing["items"]] == ["DEMO-1", "DEMO-0"]  # newest first
    item = listing["items"][0]
    assert item["status"] == "dead_letter"
    assert item["channel_name"] == "eng"
    assert item["webhook_id"] == hook
    assert item["last_status_code"] == 400
    assert item["created_at"].endswith("Z")
    detail = client.get(
        f"/api/v1/workspaces/acme/teams/deliveries/{item['id']}", headers=bearer(admin)
    ).json()
    assert detail["message"]["attachments"][0]["contentUrl"] is None
    [attempt] = detail["attempts"]
    assert attempt["status_code"] == 400
    assert attempt["outcome"] == "dead_letter"
    assert "TriggerInputSchemaMismatch" in attempt["response_excerpt"]
    page = client.get(
        "/api/v1/workspaces/acme/teams/deliveries?limit=1&status=dead_letter", headers=bearer(admin)
    ).json()
    assert len(page["items"]) == 1
    assert page["next_cursor"]
    rest = client.get(
        f"/api/v1/workspaces/acme/teams/deliveries?limit=1&cursor={page['next_cursor']}",
        headers=bearer(admin),
    ).json()
    assert rest["items"][0]["issue_key"] == "DEMO-0"
    assert (
        client.get(
            "/api/v1/workspaces/acme/teams/deliveries?status=delivered", headers=bearer(admin)
        ).json()["items"]
        == []
    )
    bad = client.get("/api/v1/workspaces/acme/teams/deliveries?status=lost", headers=bearer(admin))
    assert bad.status_code == 422
    assert bad.json()["error"]["code"] == "validation_error"


def test_retry_one_keeps_history_and_is_audited(
    client: TestClient, svc: Services, workspace: MadeWorkspace, sink: TeamsSink, admin: MadeUser
) -> None:
    dead_letters(svc, workspace, sink, count=1)
    [delivery] = deliveries(svc, workspace.id)
    response = client.post(
        f"/api/v1/workspaces/acme/teams/deliveries/{delivery.id}/retry", headers=bearer(admin)
    )
    assert response.status_code == 202
    assert response.json()["status"] == "pending"
    drain(svc)
    detail = client.get(
        f"/api/v1/workspaces/acme/teams/deliveries/{delivery.id}", headers=bearer(admin)
    ).json()
    assert detail["status"] == "delivered"
    assert [a["outcome"] for a in detail["attempts"]] == ["dead_letter", "delivered"]
    again = client.post(
        f"/api/v1/workspaces/acme/teams/deliveries/{delivery.id}/retry", headers=bearer(admin)
    )
    assert again.status_code == 409
    with svc.db.transaction() as session:
        entry = session.scalar(
            select(AuditEntry).where(AuditEntry.action == "teams.delivery.retried")
        )
        assert entry is not None
        assert entry.actor_email == "ada@example.com"
        assert entry.target_id == delivery.id


def test_bulk_retry_of_dead_letters(
    client: TestClient, svc: Services, workspace: MadeWorkspace, sink: TeamsSink, admin: MadeUser
) -> None:
    hook = dead_letters(svc, workspace, sink, count=3)
    response = client.post(
        "/api/v1/workspaces/acme/teams/deliveries/retry",
        json={"status": "dead_letter", "webhook_id": hook},
        headers=bearer(admin),
    )
    assert response.status_code == 202
    assert response.json() == {"requeued": 3}
    drain(svc)
    assert {d.status for d in deliveries(svc, workspace.id)} == {"delivered"}
    with svc.db.transaction() as session:
        entry = session.scalar(
            select(AuditEntry).where(AuditEntry.action == "teams.deliveries.retried_bulk")
        )
        assert entry is not None
        assert entry.details["requeued"] == 3
    wrong = client.post(
        "/api/v1/workspaces/acme/teams/deliveries/retry",
        json={"status": "delivered"},
        headers=bearer(admin),
    )
    assert wrong.status_code == 422


def test_other_workspaces_deliveries_are_not_found(
    client: TestClient, svc: Services, workspace: MadeWorkspace, sink: TeamsSink, admin: MadeUser
) -> None:
    from tests.support.factories import make_workspace

    dead_letters(svc, workspace, sink, count=1)
    [delivery] = deliveries(svc, workspace.id)
    make_workspace(svc, "globex")
    other_admin = make_user(svc, "bo@example.com", {"globex": "admin"})
    response = client.get(
        f"/api/v1/workspaces/globex/teams/deliveries/{delivery.id}", headers=bearer(other_admin)
    )
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "delivery_not_found"


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("get", "/api/v1/workspaces/acme/teams/deliveries"),
        ("get", "/api/v1/workspaces/acme/teams/deliveries/x"),
        ("post", "/api/v1/workspaces/acme/teams/deliveries/x/retry"),
        ("post", "/api/v1/workspaces/acme/teams/deliveries/retry"),
    ],
)
def test_admins_only(
    client: TestClient, svc: Services, workspace: MadeWorkspace, method: str, path: str
) -> None:
    from tests.support.factories import make_workspace

    member = make_user(svc, "m@example.com", {"acme": "member"})
    make_workspace(svc, "globex")
    stranger = make_user(svc, "s@example.com", {"globex": "admin"})
    call = getattr(client, method)
    kwargs = {"json": {}} if method == "post" else {}
    assert call(path, **kwargs).status_code == 401
    assert call(path, headers=bearer(member), **kwargs).status_code == 403
    assert call(path, headers=bearer(stranger), **kwargs).status_code == 404


def test_cli_retry_and_purge(
    svc: Services,
    workspace: MadeWorkspace,
    sink: TeamsSink,
    admin: MadeUser,
    database_url: str,
    tmp_path: Path,
) -> None:
    dead_letters(svc, workspace, sink, count=2)
    env = cli_env(database_url)
    result = run_cli(
        ["deliveries", "retry", "--workspace", "acme", "--as", admin.email], env, tmp_path
    )
    assert result.returncode == 0, result.stderr
    assert "requeued 2 deliveries" in result.stdout
    assert {d.status for d in deliveries(svc, workspace.id)} == {"pending"}
    member = make_user(svc, "m@example.com", {"acme": "member"})
    refused = run_cli(
        ["deliveries", "retry", "--workspace", "acme", "--as", member.email], env, tmp_path
    )
    assert refused.returncode == 1
    assert "not an administrator" in refused.stderr
    sink.script("/workflows/eng", Answer(404, ""), Answer(404, ""))
    drain(svc)
    purged = run_cli(["deliveries", "purge", "--workspace", "acme", "--yes"], env, tmp_path)
    assert purged.returncode == 0, purged.stderr
    assert "purged 2 dead letters" in purged.stdout
    assert deliveries(svc, workspace.id) == []
