"""A workspace with an administrator, a member and an outsider, and a browser-like client."""

from __future__ import annotations

import html
import re
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from fastapi.testclient import TestClient
from httpx2 import Response

from tests.support.factories import MadeUser, MadeWorkspace, make_user, make_workspace
from tests.support.web import sign_in
from ticketmate.dev.teams_sink import TeamsSink
from ticketmate.state import Services


@dataclass(frozen=True)
class People:
    acme: MadeWorkspace
    globex: MadeWorkspace
    admin: MadeUser
    member: MadeUser
    outsider: MadeUser


@dataclass(frozen=True)
class Browser:
    """A TestClient signed in through the login form, with its session's CSRF token."""

    client: TestClient
    csrf: str
    base: str  # /w/acme/admin/integrations


@pytest.fixture
def people(svc: Services) -> People:
    acme = make_workspace(svc, "acme", "Acme Corp")
    globex = make_workspace(svc, "globex", "Globex")
    return People(
        acme=acme,
        globex=globex,
        admin=make_user(svc, "admin@acme.test", {"acme": "admin", "globex": "member"}),
        member=make_user(svc, "member@acme.test", {"acme": "member"}),
        outsider=make_user(svc, "admin@globex.test", {"globex": "admin"}),
    )


@pytest.fixture
def admin(client: TestClient, people: People) -> Browser:
    csrf = sign_in(client, people.admin.email, people.admin.password)
    return Browser(client, csrf, "/w/acme/admin/integrations")


@pytest.fixture
def sink() -> Iterator[TeamsSink]:
    with TeamsSink() as running:
        yield running


def post_form(browser: Browser, path: str, /, **data: str) -> Response:
    """Submit a form as a browser without JavaScript does: fields + the CSRF field."""
    return browser.client.post(
        path, data={"csrf_token": browser.csrf, **data}, follow_redirects=False
    )


def htmx(browser: Browser, method: str, path: str, /, **data: str) -> Response:
    """A request as HTMX sends it: HX-Request and the CSRF header set once on <body>."""
    headers = {
        "HX-Request": "true",
        "HX-Current-URL": f"http://testserver{path}",
        "X-CSRF-Token": browser.csrf,
    }
    if method == "GET":
        return browser.client.get(path, params=data, headers=headers)
    return browser.client.post(path, data=data, headers=headers, follow_redirects=False)


def flash_of(browser: Browser, response: Response) -> str:
    """Follow a 303 and return the page's one-time message."""
    assert response.status_code == 303, response.text
    page = browser.client.get(response.headers["location"])
    found = FLASH.search(page.text)
    assert found, "no flash message on the page after the redirect"
    return html.unescape(found.group(1))


FLASH = re.compile(r'<p class="flash flash-\w+" role="status">([^<]*)</p>')
