"""The spec's Setup Guide, click by click, in a real browser against the real service.

One person's session through the whole flow: connect a Teams channel (steps 2 and 3 of the
guide), see a Jira event delivered and its card drawn, watch a failing channel retry and give
up, retry by hand, and find every step in Security > Audit Log.
"""

from __future__ import annotations

import re
import urllib.request
import uuid
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

from tests.browser.conftest import Service, requires_chromium, screenshot, sign_in
from ticketmate.dev.teams_sink import Answer, TeamsSink
from ticketmate.jira.signature import body_signature

pytestmark = [pytest.mark.browser, requires_chromium]

PAYLOADS = Path(__file__).resolve().parents[1] / "fixtures" / "jira-payloads"
ISSUE_CREATED = "mattermost_mattermost-plugin-jira__issue-created.json"  # TES-41, project TES
OTHER_PROJECT = "mattermost_mattermost-plugin-jira__cloud-issue-created-many-fields.json"  # KT-22
CHANNEL_PATH = "/workflows/engineering-alerts/triggers/manual/paths/invoke"


def post_jira_event(service: Service, name: str) -> None:
    """POST a captured Jira payload as Jira Cloud does: signed with the workspace's secret."""
    raw = (PAYLOADS / name).read_bytes()
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


def open_teams_page(page: Page) -> None:
    """Admin > Integrations, the Microsoft Teams card, Manage."""
    page.get_by_role("link", name="Admin > Integrations").first.click()
    expect(page.get_by_role("heading", name="Integrations", exact=True)).to_be_visible()
    teams_card = page.locator("article", has=page.get_by_role("heading", name="Microsoft Teams"))
    teams_card.get_by_role("button", name="Manage").click()
    expect(page.get_by_role("heading", name="Microsoft Teams", exact=True)).to_be_visible()


def delivery_row(page: Page, issue_key: str, status: str) -> None:
    """Wait (the Delivery Log refreshes itself every 5 s) until the newest delivery shows
    `status`; the generous timeout covers the retry delay on a busy machine."""
    newest = page.locator("table.deliveries tbody tr").first
    expect(newest).to_contain_text(issue_key)
    expect(newest.locator(".badge")).to_have_text(status, timeout=40_000)


def test_setup_guide_click_by_click(page: Page, service: Service, sink: TeamsSink) -> None:
    page.on("dialog", lambda dialog: dialog.accept())
    sign_in(page, service.admin_email)

    # Step 2: Admin > Integrations, Microsoft Teams card, Manage.
    page.get_by_role("link", name="Admin > Integrations").click()
    screenshot(page, "01-admin-integrations")
    open_teams_page(page)
    expect(page.get_by_role("link", name="Webhooks")).to_have_attribute("aria-current", "page")

    # In the Webhooks tab, click Add Webhook; fill in Channel Name, Webhook URL, Enabled.
    page.get_by_role("button", name="Add Webhook").click()
    expect(page.get_by_text("Post to a channel when a webhook request is received")).to_be_visible()
    page.get_by_label("Channel Name").fill("#engineering-alerts")
    url = sink.url(CHANNEL_PATH + "?api-version=1&sig=s3cr3t-signature")
    page.get_by_label("Webhook URL").fill(url)
    expect(page.get_by_role("switch", name="Enabled")).to_be_checked()

    # Click Test Connection: the sample card goes to the channel; the answer shows inline.
    page.get_by_role("button", name="Test Connection").click()
    result = page.locator("#test-result .test-result")
    expect(result).to_have_class(re.compile(r"\bok\b"))
    expect(result).to_contain_text("Connection works.")
    assert sink.wait_for(1, CHANNEL_PATH)[0].json()["type"] == "message"
    screenshot(page, "02-add-webhook-test-connection")

    # If the test is successful, click Save: the table shows the URL masked, never in full.
    page.get_by_role("button", name="Save").click()
    expect(page.locator(".flash-ok")).to_contain_text("saved")
    row = page.locator("tr", has_text="#engineering-alerts")
    expect(row.locator("code.masked")).to_have_text(re.compile(r"^http://127\.0\.0\.1:\d+/…"))
    assert "s3cr3t-signature" not in page.content()
    assert "engineering-alerts/triggers" not in page.content()
    expect(row).to_contain_text("Workflows")
    screenshot(page, "03-webhooks-tab")

    # Step 3: the Subscriptions tab, Add Subscription, Event Type, Webhook, Project filter, Save.
    page.get_by_role("link", name="Subscriptions").click()
    page.get_by_role("button", name="Add Subscription").click()
    page.get_by_label("Event Type").select_option(label="Issue Created")
    page.get_by_label("Webhook", exact=True).select_option(label="#engineering-alerts")
    page.get_by_label("Project").fill("TES")
    page.get_by_label("Project").press("Enter")  # becomes a value chip
    expect(page.locator(".chip", has_text="TES")).to_be_visible()
    screenshot(page, "04-add-subscription")
    page.get_by_role("button", name="Save").click()
    expect(page.locator(".flash-ok")).to_contain_text("Issue Created events go to")
    subscription = page.locator("tbody tr").first
    expect(subscription).to_contain_text("Issue Created")
    expect(subscription).to_contain_text("Project: TES")
    screenshot(page, "05-subscriptions-tab")

    # Jira reports a new issue in project TES, and one in project KT (which no filter takes).
    post_jira_event(service, ISSUE_CREATED)
    post_jira_event(service, OTHER_PROJECT)
    page.get_by_role("link", name="Delivery Log").click()
    delivery_row(page, "TES-41", "Delivered")
    expect(page.locator(".queue .depth")).to_contain_text("0")
    screenshot(page, "06-delivery-log")

    # The delivery's detail: the attempt, the JSON, and the card drawn as Teams would show it.
    page.locator("table.deliveries tbody tr").first.get_by_role("link").first.click()
    preview = page.locator("#card-preview")
    expect(preview).to_have_attribute("data-rendered", "true")
    expect(preview.locator(".ac-adaptiveCard")).to_be_visible()
    expect(preview).to_contain_text("TES-41")
    expect(page.locator("#message-json")).to_contain_text('"type": "AdaptiveCard"')
    expect(page.locator("table.attempts tbody tr")).to_have_count(1)
    page.evaluate(
        "document.querySelector('.card-and-json')"
        ".scrollIntoView({block: 'center', behavior: 'instant'})"
    )
    screenshot(page, "07-delivery-detail-card")

    # Recent Jira events say why the KT issue went nowhere.
    page.goto(f"/w/{service.slug}/admin/integrations/teams/events")
    kt = page.locator("tr", has_text="KT-22")
    expect(kt).to_contain_text("Not matched")
    expect(kt).to_contain_text("KT")
    expect(page.locator("tr", has_text="TES-41").first).to_contain_text("Matched")
    screenshot(page, "08-recent-jira-events")
    # Why not? works the reasons out when asked, as the subscriptions are now.
    kt.get_by_role("link", name="Why not?").click()
    expect(page.locator("table.explanations")).to_contain_text("project KT not in [TES]")
    page.go_back()

    # The channel fails: a 500 is retried later, then a 400 makes it a dead letter.
    sink.script(CHANNEL_PATH, Answer(500, "Internal Server Error"))
    sink.set_default(CHANNEL_PATH, Answer(400, '{"error":{"code":"TriggerInputSchemaMismatch"}}'))
    post_jira_event(service, ISSUE_CREATED)
    page.goto(f"/w/{service.slug}/admin/integrations/teams/deliveries")
    newest = page.locator("table.deliveries tbody tr").first
    # Failed once, waiting ~15 s for the next attempt: "Pending", with the time of the next try.
    expect(newest.locator(".badge")).to_have_text("Pending", timeout=20_000)
    expect(newest.locator(".retrying")).to_contain_text("next attempt", timeout=20_000)
    expect(newest.locator("td.num")).to_have_text("1")
    expect(newest.locator(".last-error")).to_contain_text("500")
    screenshot(page, "09-delivery-log-retrying")
    delivery_row(page, "TES-41", "Dead letter")
    expect(newest.locator("td.num")).to_have_text("2")
    screenshot(page, "10-delivery-log-dead-letter")

    # Teams works again: Retry now puts the dead letter back, and it is delivered.
    sink.set_default(CHANNEL_PATH, Answer(202, ""))
    newest.get_by_role("link").first.click()
    expect(page.locator(".detail-head .badge")).to_have_text("Dead letter")
    expect(page.locator("table.attempts tbody tr")).to_have_count(2)
    page.get_by_role("button", name="Retry now").click()
    expect(page.locator(".detail-head .badge")).to_have_text("Delivered", timeout=30_000)
    expect(page.locator("table.attempts tbody tr")).to_have_count(3)
    screenshot(page, "11-delivery-detail-retried")

    # Security > Audit Log lists each action; Verify integrity says the chain holds.
    page.get_by_role("link", name="Security > Audit Log").click()
    table = page.locator("table.audit")
    for shown in (
        "Signed in · auth.signin.succeeded",
        "Test Connection · teams.webhook.tested",
        "Webhook created · teams.webhook.created",
        "Subscription created · teams.subscription.created",
        "Delivery retried · teams.delivery.retried",
    ):
        expect(table.get_by_text(shown, exact=True).first).to_be_visible()
    page.get_by_role("button", name="Verify integrity").click()
    expect(page.locator("#verify-result")).to_contain_text("Integrity OK.")
    screenshot(page, "12-audit-log")
