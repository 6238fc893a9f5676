"""The pages work under their Content-Security-Policy: a walk through every main page in
Chromium, with the scripts running (HTMX swaps, the card preview, Swagger UI at /docs),
meets no violation of the policy and no script error."""

from __future__ import annotations

import json
import urllib.request
import uuid
from pathlib import Path

import pytest
from playwright.sync_api import ConsoleMessage, Error, Page, expect

from tests.browser.conftest import Service, requires_chromium, screenshot, sign_in
from tests.support.processes import run_cli
from ticketmate.dev.teams_sink import TeamsSink
from ticketmate.jira.signature import body_signature

pytestmark = [pytest.mark.browser, requires_chromium]

PAYLOAD = (
    Path(__file__).resolve().parents[1]
    / "fixtures"
    / "jira-payloads"
    / "mattermost_mattermost-plugin-jira__issue-created.json"
)
A = "/w/acme/admin/integrations"
T = f"{A}/teams"

# Runs in every document before the page's own scripts; Playwright injects it past the policy.
RECORD_VIOLATIONS = """
window.__violations = [];
document.addEventListener("securitypolicyviolation", function (e) {
  window.__violations.push(e.violatedDirective + " blocked " + (e.blockedURI || "inline"));
});
"""


class Watch:
    """What a page reported: policy violations, and console and script errors."""

    def __init__(self, page: Page) -> None:
        self.page = page
        self.console: list[str] = []
        self.errors: list[str] = []
        self.seen: list[str] = []
        page.add_init_script(RECORD_VIOLATIONS)
        page.on("console", self._console)
        page.on("pageerror", self._error)

    def _console(self, message: ConsoleMessage) -> None:
        if message.type == "error":
            self.console.append(f"{self.page.url}: {message.text}")

    def _error(self, error: Error) -> None:
        self.errors.append(f"{self.page.url}: {error}")

    def violations(self) -> list[str]:
        """This document's violations (each new page starts a list of its own)."""
        found: list[str] = self.page.evaluate("window.__violations || []")
        return [f"{self.page.url}: {v}" for v in found]

    def collect(self) -> None:
        """Keep this page's violations before the next navigation loses them."""
        self.seen.extend(v for v in self.violations() if v not in self.seen)

    def assert_clean(self) -> None:
        self.collect()
        assert self.seen == []
        assert [m for m in self.console if "Content Security Policy" in m] == []
        assert self.errors == []


@pytest.fixture
def watch(page: Page) -> Watch:
    return Watch(page)


@pytest.fixture(scope="module")
def delivered(service: Service, sink: TeamsSink) -> None:
    """A channel that takes Issue Created, and one event delivered to it."""

    def cli(*args: str) -> None:
        done = run_cli(list(args), service.env, service.folder)
        assert done.returncode == 0, done.stdout + done.stderr

    who = ("--workspace", service.slug, "--as", service.admin_email)
    cli("teams", "webhook", "add", *who, "--channel-name", "#csp", "--url", sink.url("/csp"))
    cli("teams", "subscription", "add", *who, "--event-type", "issue_created", "--webhook", "#csp")
    raw = PAYLOAD.read_bytes()
    request = urllib.request.Request(
        f"{service.url}/api/webhooks/jira?workspace={service.slug}",
        data=raw,
        method="POST",
        headers={
            "Content-Type": "application/json",
            "X-Hub-Signature": body_signature(service.jira_secret, raw),
            "X-Atlassian-Webhook-Identifier": str(uuid.uuid4()),
        },
    )
    with urllib.request.urlopen(request, timeout=10) as answer:
        assert json.loads(answer.read())["deliveries"] == 1


def visit(page: Page, watch: Watch, path: str) -> None:
    watch.collect()
    answer = page.goto(path)
    assert answer is not None
    assert answer.status == 200, path
    page.wait_for_load_state("networkidle")
    watch.collect()


@pytest.mark.usefixtures("delivered")
def test_the_main_pages_meet_no_policy_violation(page: Page, watch: Watch) -> None:
    page.on("dialog", lambda dialog: dialog.dismiss())
    visit(page, watch, "/login")
    sign_in(page, "admin@acme.test")
    for path in (
        "/",
        T,
        f"{T}/webhooks",
        f"{T}/webhooks/new",
        f"{T}/subscriptions",
        f"{T}/subscriptions/new",
        f"{T}/events",
        "/w/acme/security/audit-log",
    ):
        visit(page, watch, path)
    # HTMX at work: Reveal swaps the secret into the Jira card.
    visit(page, watch, A)
    page.locator("#jira dd", has=page.locator("#jira-secret")).get_by_role(
        "button", name="Reveal"
    ).click()
    expect(page.locator("#jira-secret-value")).to_be_visible()
    # The Delivery Log, and a delivery's card drawn by the Adaptive Cards renderer.
    visit(page, watch, f"{T}/deliveries")
    page.locator("table.deliveries tbody tr").first.get_by_role("link").first.click()
    preview = page.locator("#card-preview")
    expect(preview).to_have_attribute("data-rendered", "true")
    expect(preview.locator(".ac-adaptiveCard")).to_be_visible()
    watch.assert_clean()


def test_the_api_docs_render_under_the_policy(page: Page, watch: Watch) -> None:
    visit(page, watch, "/docs")
    expect(page.locator(".swagger-ui .info .title")).to_contain_text("Ticket MATE")
    expect(page.locator(".opblock").first).to_be_visible()
    page.locator(".opblock-summary", has_text="/api/v1/me").first.click()
    expect(page.locator(".responses-table").first).to_be_visible()
    screenshot(page, "csp-api-docs")
    watch.assert_clean()


def test_the_policy_is_enforced_and_its_violations_are_seen(page: Page, watch: Watch) -> None:
    """The control for the two tests above: an inline script is refused, and reported."""
    visit(page, watch, "/login")
    page.evaluate(
        "() => { const s = document.createElement('script');"
        " s.textContent = 'window.ranInline = true'; document.head.appendChild(s); }"
    )
    assert page.evaluate("window.ranInline") is None
    # The violation event is dispatched asynchronously.
    page.wait_for_function("window.__violations.length > 0")
    assert any("script-src" in v for v in watch.violations())
