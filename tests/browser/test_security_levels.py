"""A restricted issue in a real browser: withheld with its reason shown, then allowed.

A channel subscribes to Issue Created with no security levels. A signed Jira event of an issue
with `fields.security` = Staff only (the captured payload with the level added here) reaches
the intake of the real service: its page says the level, how it is known, and why the
subscription did not post it, and nothing reaches the Teams stand-in. The subscription is then
edited in the browser to allow Staff only, with the form's warning shown once the choice is
made, and the next such event is delivered.
"""

from __future__ import annotations

import json
import urllib.request
import uuid
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Page, expect

from tests.browser.conftest import Service, requires_chromium, screenshot, sign_in
from tests.support.processes import run_cli
from ticketmate.dev.teams_sink import TeamsSink
from ticketmate.jira.signature import body_signature

pytestmark = [pytest.mark.browser, requires_chromium]

PAYLOADS = Path(__file__).resolve().parents[1] / "fixtures" / "jira-payloads"
ISSUE_CREATED = "mattermost_mattermost-plugin-jira__issue-created.json"  # TES-41
STAFF_ONLY = {"id": "10100", "name": "Staff only", "description": "Staff and contractors only"}
T = "/w/acme/admin/integrations/teams"
SINK_PATH = "/staff"
REASON = (
    "issue TES-41 has the security level 'Staff only'; "
    "the subscription does not include restricted issues"
)
WARNING = "The channel's members will see these issues' summaries"


def restricted_event() -> bytes:
    body: dict[str, Any] = json.loads((PAYLOADS / ISSUE_CREATED).read_text())
    body["issue"]["fields"]["security"] = STAFF_ONLY
    return json.dumps(body).encode()


def post_jira_event(service: Service, raw: bytes) -> None:
    """POST a Jira payload as Jira Cloud does: signed with the workspace's secret."""
    request = urllib.request.Request(
        f"{service.url}/api/webhooks/jira?workspace={service.slug}",
        data=raw,
        method="POST",
        headers={
            "Content-Type": "application/json",
            "X-Hub-Signature": body_signature(service.jira_secret, raw),
            "X-Atlassian-Webhook-Identifier": str(uuid.uuid4()),
            "User-Agent": "Atlassian Webhook HTTP Client",
        },
    )
    with urllib.request.urlopen(request, timeout=10) as answer:
        assert answer.status == 202


def cli(service: Service, *args: str) -> None:
    done = run_cli(list(args), service.env, service.folder)
    assert done.returncode == 0, done.stdout + done.stderr


def test_a_restricted_issue_is_withheld_then_allowed(
    page: Page, service: Service, sink: TeamsSink
) -> None:
    who = ("--workspace", service.slug, "--as", service.admin_email)
    cli(service, "teams", "webhook", "add", *who, "--channel-name", "#staff",
        "--url", sink.url(SINK_PATH))  # fmt: skip
    cli(service, "teams", "subscription", "add", *who, "--event-type", "issue_created",
        "--webhook", "#staff")  # fmt: skip
    post_jira_event(service, restricted_event())

    sign_in(page, service.admin_email)
    page.goto(f"{T}/events")
    row = page.locator("table.events tbody tr", has_text="TES-41")
    expect(row).to_contain_text("Not matched: 1 other subscription")
    row.get_by_role("link", name="Why not?").click()
    security = page.locator("#event-security")
    expect(security).to_contain_text("Security level: Staff only — from the event's payload.")
    explanation = page.locator("table.explanations tbody tr")
    expect(explanation).to_have_count(1)
    expect(explanation).to_contain_text("Issue Created → “#staff”")
    expect(explanation).to_contain_text("✘ Not matched")
    expect(explanation).to_contain_text(REASON)
    screenshot(page, "security-levels-withheld")
    assert sink.received(SINK_PATH) == []
    event_url = page.url

    # Allow Staff only: the warning appears once the choice is made.
    page.goto(f"{T}/subscriptions")
    page.locator("tbody tr", has_text="#staff").get_by_role("button", name="Edit").click()
    warning = page.locator("#security-warning")
    expect(page.get_by_label("None (restricted issues are never posted)")).to_be_checked()
    expect(warning).to_be_hidden()
    page.get_by_label("These levels:").check()
    expect(warning).to_be_visible()
    expect(warning).to_contain_text(WARNING)
    page.get_by_label("Any level").check()
    expect(warning).to_be_visible()
    page.get_by_label("These levels:").check()
    page.get_by_label("Level names").fill("Staff only")
    screenshot(page, "security-levels-form-warning")
    page.get_by_role("button", name="Save").click()
    expect(page.locator(".flash")).to_contain_text("Subscription saved.")
    expect(page.locator("tbody tr", has_text="#staff")).to_contain_text("Restricted: Staff only")

    # The stored event would now be taken; the next one of the issue is posted.
    page.goto(event_url)
    expect(page.locator("table.explanations tbody tr")).to_contain_text("✔ Would match")
    post_jira_event(service, restricted_event())
    [card] = sink.wait_for(1, SINK_PATH, timeout=20)
    assert "TES-41" in card.body.decode()
