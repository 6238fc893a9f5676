"""The one authorization rule across two workspaces: 401, 403, 404, and the error shape."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from tests.support.factories import MadeUser, bearer, make_user, make_workspace
from ticketmate.state import Services


@pytest.fixture
def people(svc: Services) -> dict[str, MadeUser]:
    make_workspace(svc, "acme")
    make_workspace(svc, "globex")
    return {
        "acme_admin": make_user(svc, "admin@acme.test", {"acme": "admin"}),
        "acme_member": make_user(svc, "member@acme.test", {"acme": "member"}),
        "both": make_user(svc, "both@test.test", {"acme": "member", "globex": "admin"}),
    }


def assert_error(response: object, status: int, code: str) -> None:
    from httpx2 import Response

    assert isinstance(response, Response)
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error"}
    assert body["error"]["code"] == code
    assert body["error"]["message"].endswith((".", "'."))


def test_no_credentials_is_401(client: TestClient, people: dict[str, MadeUser]) -> None:
    assert_error(client.get("/api/v1/workspaces/acme"), 401, "unauthorized")
    assert_error(client.get("/api/v1/me"), 401, "unauthorized")


def test_unknown_token_is_401(client: TestClient, people: dict[str, MadeUser]) -> None:
    response = client.get("/api/v1/me", headers={"Authorization": "Bearer tm_nope"})
    assert_error(response, 401, "unauthorized")
    assert response.headers["www-authenticate"] == "Bearer"


def test_admin_sees_their_workspace(client: TestClient, people: dict[str, MadeUser]) -> None:
    response = client.get("/api/v1/workspaces/acme", headers=bearer(people["acme_admin"]))
    assert response.status_code == 200
    body = response.json()
    assert body["slug"] == "acme"
    assert body["name"] == "Acme"
    assert body["created_at"].endswith("Z")


def test_member_gets_403(client: TestClient, people: dict[str, MadeUser]) -> None:
    response = client.get("/api/v1/workspaces/acme", headers=bearer(people["acme_member"]))
    assert_error(response, 403, "admin_required")


def test_non_member_gets_404_same_as_missing(
    client: TestClient, people: dict[str, MadeUser]
) -> None:
    other = client.get("/api/v1/workspaces/globex", headers=bearer(people["acme_admin"]))
    missing = client.get("/api/v1/workspaces/nothing", headers=bearer(people["acme_admin"]))
    assert_error(other, 404, "workspace_not_found")
    assert_error(missing, 404, "workspace_not_found")


def test_roles_are_per_workspace(client: TestClient, people: dict[str, MadeUser]) -> None:
    assert (
        client.get("/api/v1/workspaces/globex", headers=bearer(people["both"])).status_code == 200
    )
    assert client.get("/api/v1/workspaces/acme", headers=bearer(people["both"])).status_code == 403
    me = client.get("/api/v1/me", headers=bearer(people["both"])).json()
    assert {(w["slug"], w["role"]) for w in me["workspaces"]} == {
        ("acme", "member"),
        ("globex", "admin"),
    }


def test_errors_never_use_the_framework_shape(
    client: TestClient, people: dict[str, MadeUser]
) -> None:
    assert_error(client.get("/api/v1/nothing-here"), 404, "not_found")
    assert_error(client.post("/api/v1/me"), 405, "method_not_allowed")
    too_long = client.get("/api/v1/workspaces/" + "x" * 65, headers=bearer(people["acme_admin"]))
    assert_error(too_long, 422, "validation_error")
    assert too_long.json()["error"]["details"][0]["field"] == "slug"
