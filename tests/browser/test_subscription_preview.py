"""Preview in a real browser: the admin fills Add Subscription, clicks Preview and sees what
the settings would have sent — the card count, the event's title and a reason — in place
(HTMX), with nothing saved.

Two signed Jira events reach the real service first: an issue created, and the same issue
with a security level (Staff only), which a subscription without levels would not post.
"""

from __future__ import annotations

import pytest
from playwright.sync_api import Page, expect

from tests.browser.conftest import Service, requires_chromium, screenshot, sign_in
from tests.browser.test_security_levels import (
    ISSUE_CREATED,
    PAYLOADS,
    REASON,
    cli,
    post_jira_event,
    restricted_event,
)
from ticketmate.dev.teams_sink import TeamsSink

pytestmark = [pytest.mark.browser, requires_chromium]

T = "/w/acme/admin/integrations/teams"


def test_preview_shows_the_card_count_and_the_reasons_before_saving(
    page: Page, service: Service, sink: TeamsSink
) -> None:
    who = ("--workspace", service.slug, "--as", service.admin_email)
    cli(service, "teams", "webhook", "add", *who, "--channel-name", "#eng",
        "--url", sink.url("/eng"))  # fmt: skip
    post_jira_event(service, (PAYLOADS / ISSUE_CREATED).read_bytes())
    post_jira_event(service, restricted_event())

    sign_in(page, service.admin_email)
    page.goto(f"{T}/subscriptions/new")
    page.get_by_label("Event Type").select_option(label="Issue Created")
    page.get_by_label("Webhook").select_option(label="#eng")
    page.get_by_role("button", name="Preview").click()

    preview = page.locator("#subscription-preview")
    expect(preview).to_contain_text(
        "These settings would have sent 1 card in the last 7 days (of 2 events)."
    )
    expect(preview.locator(".preview-events li")).to_have_count(1)
    expect(preview.locator(".preview-events li")).to_contain_text("TES-41")
    expect(preview.locator(".preview-reasons")).to_contain_text(f"{REASON}: 1 event")
    # Swapped in place: still the Add Subscription page, the choices kept.
    assert page.url.endswith(f"{T}/subscriptions/new")
    expect(page.get_by_label("Event Type")).to_have_value("issue_created")
    screenshot(page, "subscription-preview")

    # Allow the level and preview again: both would be sent now.
    page.get_by_label("Any level").check()
    page.get_by_role("button", name="Preview").click()
    expect(preview).to_contain_text(
        "These settings would have sent 2 cards in the last 7 days (of 2 events)."
    )
    expect(preview.locator(".preview-reasons")).to_have_count(0)

    # Nothing was saved.
    page.goto(f"{T}/subscriptions")
    expect(page.locator("tbody tr", has_text="#eng")).to_have_count(0)
    assert sink.received("/eng") == []
