"""Browser and cache headers: every page may load only our own files and may not be framed;
answers that carry a secret are never stored; the templates need nothing the policy forbids."""

from __future__ import annotations

import re
from pathlib import Path

from fastapi.testclient import TestClient
from httpx2 import Response

from tests.support.factories import bearer
from tests.support.teams import event, make_subscription, make_webhook, store_and_route
from tests.web.conftest import Browser, People, htmx
from ticketmate.dev.teams_sink import TeamsSink
from ticketmate.state import Services

A = "/w/acme/admin/integrations"
T = f"{A}/teams"
API = "/api/v1/workspaces/acme"
TEMPLATES = Path(__file__).resolve().parents[2] / "src" / "ticketmate" / "web" / "templates"


def policy(response: Response) -> dict[str, list[str]]:
    header = response.headers.get("content-security-policy")
    assert header, f"{response.request.url} has no Content-Security-Policy"
    directives: dict[str, list[str]] = {}
    for part in header.split(";"):
        name, *sources = part.split()
        directives[name] = sources
    return directives


def assert_browser_headers(response: Response) -> None:
    where = str(response.request.url)
    csp = policy(response)
    # Scripts and styles: our own files only — no inline code, no eval, no other site.
    assert csp["default-src"] == ["'self'"], where
    assert csp["script-src"] == ["'self'"], where
    assert csp["style-src"] == ["'self'"], where
    # Images: ours, or data: icons drawn by the vendored stylesheets.
    assert set(csp["img-src"]) <= {"'self'", "data:"}, where
    for name in ("connect-src", "font-src", "form-action"):
        assert csp[name] == ["'self'"], (where, name)
    assert csp["object-src"] == ["'none'"], where
    assert csp["base-uri"] == ["'none'"], where
    assert csp["frame-ancestors"] == ["'none'"], where
    assert response.headers["x-frame-options"] == "DENY", where
    assert response.headers["x-content-type-options"] == "nosniff", where
    assert response.headers["referrer-policy"] == "same-origin", where


def test_every_page_of_an_administrator_sends_the_browser_headers(
    admin: Browser, svc: Services, people: People, sink: TeamsSink
) -> None:
    hook = make_webhook(svc, people.acme.id, "#eng", sink.url("/workflows/eng"))
    subscription = make_subscription(svc, people.acme.id, hook, "issue_created")
    store_and_route(svc, people.acme.id, event(["issue_created"]))
    log = admin.client.get(f"{T}/deliveries")
    delivery = re.search(rf'href="{T}/deliveries/(\w+)"', log.text)
    assert delivery, "the Delivery Log shows no delivery"
    pages = (
        "/",
        A,
        T,
        f"{T}/webhooks",
        f"{T}/webhooks/new",
        f"{T}/webhooks/{hook}/edit",
        f"{T}/webhooks/{hook}/delete",
        f"{T}/subscriptions",
        f"{T}/subscriptions/new",
        f"{T}/subscriptions/{subscription}/edit",
        f"{T}/deliveries",
        f"{T}/deliveries/{delivery.group(1)}",
        f"{T}/events",
        "/w/acme/security/audit-log",
        f"{A}/jira/reveal?which=secret",
        "/w/acme/admin/nothing-here",  # the 404 page
        "/w/globex/admin/integrations",  # the 403 page (a member there)
    )
    for path in pages:
        page = admin.client.get(path)
        assert page.status_code in (200, 403, 404), (path, page.status_code)
        assert_browser_headers(page)
    # What HTMX swaps in comes with them too.
    assert_browser_headers(htmx(admin, "GET", f"{A}/jira/reveal", which="ingest_token"))


def test_public_pages_api_answers_and_files_send_the_browser_headers(
    client: TestClient, people: People
) -> None:
    answers = [
        client.get("/login"),
        client.get("/docs"),
        client.get("/openapi.json"),
        client.get("/healthz"),
        client.get("/static/app.css"),
        client.get("/static/vendor/htmx/htmx.min.js"),
        client.get("/api/v1/me"),  # 401
        client.get("/api/v1/me", headers=bearer(people.admin)),
        client.get("/no-such-page"),
    ]
    for answer in answers:
        assert_browser_headers(answer)


def test_answers_that_carry_a_secret_are_never_stored(
    client: TestClient, people: People, admin: Browser
) -> None:
    token = bearer(people.admin)
    connection = client.get(f"{API}/jira/connection", headers=token)
    assert connection.status_code == 200
    assert connection.json()["secret"]
    assert connection.headers["cache-control"] == "no-store"
    regenerated = client.post(
        f"{API}/jira/connection/regenerate", json={"which": "ingest_token"}, headers=token
    )
    assert regenerated.status_code == 200
    assert regenerated.headers["cache-control"] == "no-store"
    # Every API answer is one user's view of a workspace: none is stored.
    assert client.get("/api/v1/me", headers=token).headers["cache-control"] == "no-store"
    # The pages that reveal them say so themselves.
    assert admin.client.get(f"{A}/jira/reveal?which=secret").headers["cache-control"] == (
        "no-store"
    )
    # Our own files may be cached: they hold nothing of anyone's.
    assert "no-store" not in client.get("/static/app.css").headers.get("cache-control", "")


def test_docs_are_served_from_our_own_files(client: TestClient) -> None:
    docs = client.get("/docs")
    assert docs.status_code == 200
    assert "text/html" in docs.headers["content-type"]
    # Nothing from another site (the service runs offline), and no inline script or style.
    assert "http://" not in docs.text
    assert "https://" not in docs.text
    scripts = re.findall(r"<script\b[^>]*>", docs.text)
    assert scripts
    assert all('src="/static/' in tag for tag in scripts), scripts
    assert "<style" not in docs.text
    assert 'style="' not in docs.text
    for asset in re.findall(r'(?:src|href)="(/static/[^"]+)"', docs.text):
        assert client.get(asset).status_code == 200, asset
    assert 'data-openapi-url="/openapi.json"' in docs.text
    assert client.get("/redoc").status_code == 404


# A data block (<script type="application/json">) is not run, so the policy allows it.
INLINE_SCRIPT = re.compile(r"<script\b(?![^>]*\bsrc=)(?![^>]*type=\"application/json\")[^>]*>")
FORBIDDEN_IN_TEMPLATES = {
    "an inline script": INLINE_SCRIPT,
    "a <style> element": re.compile(r"<style\b", re.IGNORECASE),
    "a style attribute": re.compile(r"\sstyle\s*=", re.IGNORECASE),
    "an event handler attribute": re.compile(r"\son[a-z]+\s*=", re.IGNORECASE),
    "an hx-on attribute": re.compile(r"\shx-on", re.IGNORECASE),
    "a javascript: URL": re.compile(r"javascript:", re.IGNORECASE),
    "a data: URL": re.compile(r"[\"'(]\s*data:", re.IGNORECASE),
    "another site's file": re.compile(r"(?:\bsrc=|<link\b[^>]*\bhref=)\"(?:https?:)?//", re.I),
}
# What each pattern must catch, so that a pattern that matches nothing cannot pass unseen.
SAMPLES = {
    "an inline script": '<script>alert(1)</script> <script type="application/json">{}</script>',
    "a <style> element": "<STYLE>p {}</STYLE>",
    "a style attribute": '<p style="color: red">',
    "an event handler attribute": '<button onclick="go()">',
    "an hx-on attribute": '<form hx-on::after-request="reset()">',
    "a javascript: URL": '<a href="javascript:void(0)">',
    "a data: URL": '<img src="data:image/png;base64,AAAA">',
    "another site's file": '<script src="https://cdn.example.com/x.js"></script>',
}
ALLOWED = (
    '<script src="/static/app.js" defer></script>'
    '<script type="application/json" id="card-json">{"a": 1}</script>'
    '<a href="https://learn.microsoft.com/">Teams help</a>'
    '<details data-confirm="Delete?">'
)


def test_templates_need_nothing_the_policy_forbids() -> None:
    for what, pattern in FORBIDDEN_IN_TEMPLATES.items():
        assert pattern.search(SAMPLES[what]), what
        assert not pattern.search(ALLOWED), what
    templates = sorted(TEMPLATES.rglob("*.html"))
    assert len(templates) > 10
    problems = [
        f"{template.relative_to(TEMPLATES)}: {what}"
        for template in templates
        for what, pattern in FORBIDDEN_IN_TEMPLATES.items()
        if pattern.search(template.read_text())
    ]
    assert problems == []


def test_an_unhandled_error_answer_carries_the_same_headers(svc: Services) -> None:
    """A 500 is answered outside the middleware that adds the headers; it must not lack them."""
    from ticketmate.app import create_app

    app = create_app(svc.settings, services=svc)

    async def broken() -> None:
        raise RuntimeError("a bug")

    app.add_api_route(f"{API}/broken", broken)
    app.add_api_route("/broken-page", broken)
    with TestClient(app, raise_server_exceptions=False) as client:
        for path in (f"{API}/broken", "/broken-page"):
            answer = client.get(path)
            assert answer.status_code == 500
            assert answer.json()["error"]["code"] == "internal_error"
            assert "a bug" not in answer.text
            assert_browser_headers(answer)
        assert client.get(f"{API}/broken").headers["cache-control"] == "no-store"
