"""HTML sign-in and sign-out: cookie flags, CSRF, lock-out, and sessions that really end."""

from __future__ import annotations

import logging

import pytest
from fastapi.testclient import TestClient

from tests.support.factories import PASSWORD, make_user, make_workspace
from tests.support.web import csrf_from, sign_in
from ticketmate.state import Services


@pytest.fixture
def admin(svc: Services) -> str:
    make_workspace(svc, "acme")
    return make_user(svc, "ada@example.com", {"acme": "admin"}).email


def test_login_form_has_the_fields_people_look_for(client: TestClient) -> None:
    page = client.get("/login")
    assert page.status_code == 200
    assert 'for="email">Email<' in page.text
    assert 'for="password">Password<' in page.text
    assert ">Sign in</button>" in page.text


def test_sign_in_sets_a_protected_session_cookie(client: TestClient, admin: str) -> None:
    form = client.get("/login")
    response = client.post(
        "/login",
        data={"email": admin, "password": PASSWORD, "csrf_token": csrf_from(form.text)},
        follow_redirects=False,
    )
    assert response.status_code == 303
    cookie = response.headers["set-cookie"]
    assert "tm_session=" in cookie
    assert "HttpOnly" in cookie
    assert "SameSite=lax" in cookie or "samesite=lax" in cookie.lower()
    me = client.get("/api/v1/me")
    assert me.status_code == 200
    assert me.json()["email"] == admin
    assert me.json()["workspaces"] == [{"slug": "acme", "name": "Acme", "role": "admin"}]


def test_secure_flag_when_served_over_https(svc: Services, admin: str) -> None:
    from ticketmate.app import create_app

    svc.settings = svc.settings.model_copy(update={"base_url": "https://tm.example.com"})
    with TestClient(create_app(svc.settings, services=svc), base_url="https://testserver") as c:
        form = c.get("/login")
        response = c.post(
            "/login",
            data={"email": admin, "password": PASSWORD, "csrf_token": csrf_from(form.text)},
            follow_redirects=False,
        )
    assert "Secure" in response.headers["set-cookie"]


def test_sign_in_without_the_csrf_token_is_refused(client: TestClient, admin: str) -> None:
    client.get("/login")
    response = client.post("/login", data={"email": admin, "password": PASSWORD})
    assert response.status_code == 403
    assert "tm_session" not in response.headers.get("set-cookie", "")
    forged = client.post(
        "/login", data={"email": admin, "password": PASSWORD, "csrf_token": "forged"}
    )
    assert forged.status_code == 403


def test_wrong_password_is_refused_without_saying_which_part(
    client: TestClient, admin: str
) -> None:
    form = client.get("/login")
    wrong = client.post(
        "/login", data={"email": admin, "password": "nope-nope", "csrf_token": csrf_from(form.text)}
    )
    form = client.get("/login")
    unknown = client.post(
        "/login",
        data={"email": "who@example.com", "password": "x", "csrf_token": csrf_from(form.text)},
    )
    assert wrong.status_code == unknown.status_code == 401
    assert "Wrong e-mail or password." in wrong.text
    assert "Wrong e-mail or password." in unknown.text


def test_repeated_failures_lock_the_address_and_are_logged(
    client: TestClient, admin: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    statuses = []
    for _ in range(5):
        form = client.get("/login")
        statuses.append(
            client.post(
                "/login",
                data={"email": admin, "password": "wrong-pass", "csrf_token": csrf_from(form.text)},
            ).status_code
        )
    assert statuses[:4] == [401, 401, 401, 401]
    assert statuses[4] == 429
    # Locked: even the right password is refused now.
    form = client.get("/login")
    locked = client.post(
        "/login", data={"email": admin, "password": PASSWORD, "csrf_token": csrf_from(form.text)}
    )
    assert locked.status_code == 429
    assert "Too many failed sign-ins" in locked.text
    assert any("sign-in locked" in r.getMessage() for r in caplog.records)
    assert any("sign-in failed" in r.getMessage() for r in caplog.records)
    assert not any(PASSWORD in r.getMessage() for r in caplog.records)


def test_sign_out_ends_the_session_on_the_server(client: TestClient, admin: str) -> None:
    csrf = sign_in(client, admin, PASSWORD)
    stolen = client.cookies.get("tm_session")
    assert client.get("/api/v1/me").status_code == 200
    assert client.post("/logout", data={"csrf_token": "wrong"}).status_code == 403
    assert client.get("/api/v1/me").status_code == 200
    out = client.post("/logout", data={"csrf_token": csrf}, follow_redirects=False)
    assert out.status_code == 303
    client.cookies.clear()
    client.cookies.set("tm_session", stolen or "")
    assert client.get("/api/v1/me").status_code == 401


def test_next_only_redirects_within_the_site(client: TestClient, admin: str) -> None:
    form = client.get("/login")
    response = client.post(
        "/login",
        data={
            "email": admin,
            "password": PASSWORD,
            "csrf_token": csrf_from(form.text),
            "next": "//evil.example.com/",
        },
        follow_redirects=False,
    )
    assert response.headers["location"] == "/"
