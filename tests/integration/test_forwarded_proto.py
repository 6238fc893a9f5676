"""X-Forwarded-Proto, even from a trusted proxy, changes nothing visible: the Secure cookie flag
and printed URLs follow TICKETMATE_BASE_URL (docs/deployment.md, "Behind a reverse proxy")."""

from __future__ import annotations

from pathlib import Path

import httpx2

from tests.support.factories import make_user
from tests.support.processes import ServeProcess
from tests.support.web import csrf_from
from ticketmate.state import Services

FROM_TLS = {"X-Forwarded-Proto": "https"}


def test_a_trusted_proxys_https_does_not_make_cookies_secure(svc: Services, tmp_path: Path) -> None:
    user = make_user(svc, "ada@example.com")
    serve = ServeProcess(
        svc.settings.database_url, tmp_path, TICKETMATE_TRUSTED_PROXIES="127.0.0.1"
    )
    assert serve.url.startswith("http://")  # TICKETMATE_BASE_URL is the plain address
    with serve.start(), httpx2.Client(base_url=serve.url, headers=FROM_TLS) as http:
        form = http.get("/login")
        signed_in = http.post(
            "/login",
            data={
                "email": user.email,
                "password": user.password,
                "csrf_token": csrf_from(form.text),
            },
            follow_redirects=False,
        )
    assert signed_in.status_code == 303
    assert signed_in.headers["location"] == "/"  # relative: no scheme to get wrong
    cookies = form.headers.get_list("set-cookie") + signed_in.headers.get_list("set-cookie")
    assert len(cookies) >= 2, cookies
    assert not [c for c in cookies if "secure" in c.lower()], cookies


def test_an_https_base_url_makes_cookies_secure_without_the_header(
    svc: Services, tmp_path: Path
) -> None:
    serve = ServeProcess(svc.settings.database_url, tmp_path)
    serve.env["TICKETMATE_BASE_URL"] = "https://ticketmate.example.com"
    with serve.start(), httpx2.Client(base_url=serve.url) as http:
        form = http.get("/login")
    cookies = form.headers.get_list("set-cookie")
    assert cookies
    assert all("secure" in c.lower() for c in cookies), cookies
