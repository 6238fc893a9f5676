"""/healthz and /readyz: ready only with a reachable database at the newest migration."""

from __future__ import annotations

from pathlib import Path

from fastapi.testclient import TestClient

from tests.conftest import TEST_KEY_LINE
from ticketmate.app import create_app
from ticketmate.config import load_settings
from ticketmate.migrate import head_revision


def app_for(url: str, tmp_path: Path) -> TestClient:
    settings = load_settings(
        _env_file=None, database_url=url, encryption_keys=TEST_KEY_LINE, key_file=tmp_path / "k"
    )
    return TestClient(create_app(settings))


def test_ready_with_migrated_database(client: TestClient) -> None:
    assert client.get("/healthz").json() == {"status": "ok"}
    ready = client.get("/readyz")
    assert ready.status_code == 200
    assert ready.json()["revision"] == head_revision()


def test_not_ready_when_the_database_is_unreachable(tmp_path: Path) -> None:
    with app_for("postgresql://nobody@127.0.0.1:1/none", tmp_path) as c:
        assert c.get("/healthz").status_code == 200
        response = c.get("/readyz")
    assert response.status_code == 503
    assert response.json()["database"] == "unreachable"


def test_not_ready_before_migrations(tmp_path: Path) -> None:
    with app_for(f"sqlite:///{tmp_path / 'empty.db'}", tmp_path) as c:
        response = c.get("/readyz")
    assert response.status_code == 503
    assert response.json()["database"] == "migrations pending"


def test_openapi_is_served(client: TestClient) -> None:
    assert client.get("/docs").status_code == 200
    paths = client.get("/openapi.json").json()["paths"]
    assert "/api/v1/me" in paths
    assert "/api/v1/workspaces/{slug}" in paths
