"""Grouping in a real browser: a digest set on Add Subscription and shown in the list, Preview
with a combining window, and a combined card in the Delivery Log.

For the combined card three signed Jira updates of one issue (TES-41: labels, priority,
status) reach the real service's intake for a subscription that combines updates within
5 min; the Delivery Log shows the waiting card carrying them. The test then closes the window
in the database rather than wait five minutes, and the service's own worker sends the card.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import pytest
from playwright.sync_api import Page, expect
from sqlalchemy import select
from sqlalchemy.orm import Session

from tests.browser.conftest import Service, requires_chromium, screenshot, sign_in
from tests.browser.test_security_levels import PAYLOADS, cli, post_jira_event
from ticketmate.db import make_engine
from ticketmate.dev.teams_sink import TeamsSink
from ticketmate.models import IntegrationDelivery

pytestmark = [pytest.mark.browser, requires_chromium]

T = "/w/acme/admin/integrations/teams"
UPDATES = (
    "mattermost_mattermost-plugin-jira__issue-updated-labels.json",
    "mattermost_mattermost-plugin-jira__issue-updated-priority-raised.json",
    "mattermost_mattermost-plugin-jira__issue-updated-status-todo-to-inprogress.json",
)


def add_webhook(service: Service, sink: TeamsSink, channel: str, path: str) -> None:
    who = ("--workspace", service.slug, "--as", service.admin_email)
    cli(service, "teams", "webhook", "add", *who, "--channel-name", channel,
        "--url", sink.url(path))  # fmt: skip


def test_a_daily_digest_is_set_in_the_form_and_shown_in_the_list(
    page: Page, service: Service, sink: TeamsSink
) -> None:
    add_webhook(service, sink, "#digest", "/digest")
    sign_in(page, service.admin_email)
    page.goto(f"{T}/subscriptions/new")
    page.get_by_label("Event Type").select_option(label="Issue Created")
    page.get_by_label("Webhook").select_option(label="#digest")
    expect(page.get_by_label("Combine updates to the same issue within")).to_have_value("off")
    page.get_by_label("Daily", exact=True).check()
    page.get_by_label("Daily digest time (HH:MM)").fill("08:30")
    zone = page.get_by_label("Daily digest time zone")
    expect(zone).to_have_value("UTC")
    zone.fill("Europe/Nowhere")
    page.get_by_role("button", name="Save", exact=True).click()

    # Refused in the form, as typed, with the error by the field.
    expect(page.locator("#digest_zone-error")).to_contain_text("is not a time zone")
    expect(zone).to_have_attribute("aria-invalid", "true")
    expect(zone).to_have_value("Europe/Nowhere")
    expect(page.get_by_label("Daily", exact=True)).to_be_checked()
    expect(page.get_by_label("Daily digest time (HH:MM)")).to_have_value("08:30")

    zone.fill("Europe/Berlin")
    page.get_by_role("button", name="Save", exact=True).click()
    page.wait_for_url(f"**{T}/subscriptions")
    row = page.locator("tbody tr", has_text="#digest")
    expect(row).to_contain_text("Daily digest at 08:30 (Europe/Berlin)")
    expect(row.locator(".next-digest time")).to_have_count(1)
    screenshot(page, "subscription-digest")

    # Edit shows it as saved.
    row.get_by_role("button", name="Edit").click()
    expect(page.get_by_label("Daily", exact=True)).to_be_checked()
    expect(page.get_by_label("Daily digest time zone")).to_have_value("Europe/Berlin")


def test_preview_with_a_combining_window(page: Page, service: Service, sink: TeamsSink) -> None:
    add_webhook(service, sink, "#preview", "/preview")
    post_jira_event(service, (PAYLOADS / UPDATES[0]).read_bytes())
    sign_in(page, service.admin_email)
    page.goto(f"{T}/subscriptions/new")
    page.get_by_label("Event Type").select_option(label="Issue Updated")
    page.get_by_label("Webhook").select_option(label="#preview")
    page.get_by_label("Combine updates to the same issue within").select_option(label="30 s")
    page.get_by_role("button", name="Preview").click()

    preview = page.locator("#subscription-preview")
    expect(preview).to_contain_text("would have sent")
    expect(preview).to_contain_text("TES-41")
    # Swapped in place, the window kept; nothing saved.
    assert page.url.endswith(f"{T}/subscriptions/new")
    expect(page.get_by_label("Combine updates to the same issue within")).to_have_value("30s")
    screenshot(page, "subscription-preview-combining")

    # A window and a digest together: the form says why, the preview does not run.
    page.get_by_label("Hourly, on the hour").check()
    page.get_by_role("button", name="Preview").click()
    expect(page.locator("#digest-error")).to_contain_text("either combining or a digest")
    expect(page.locator("#subscription-preview")).to_have_count(0)
    page.goto(f"{T}/subscriptions")
    expect(page.locator("tbody tr", has_text="#preview")).to_have_count(0)


def close_the_window(service: Service, channel: str) -> str:
    """Move the waiting combined card's window into the past; returns the card's id."""
    engine = make_engine(f"sqlite:///{service.folder / 'ticketmate.db'}")
    try:
        with Session(engine) as session, session.begin():
            head = session.scalars(
                select(IntegrationDelivery).where(
                    IntegrationDelivery.channel_name == channel,
                    IntegrationDelivery.card_kind == "combined",
                    IntegrationDelivery.status == "pending",
                )
            ).one()
            past = datetime.now(UTC) - timedelta(seconds=1)
            head.combine_until = head.next_attempt_at = past
            return head.id
    finally:
        engine.dispose()


def test_a_combined_card_in_the_delivery_log(page: Page, service: Service, sink: TeamsSink) -> None:
    add_webhook(service, sink, "#combined", "/combined")
    sign_in(page, service.admin_email)
    page.goto(f"{T}/subscriptions/new")
    page.get_by_label("Event Type").select_option(label="Issue Updated")
    page.get_by_label("Webhook").select_option(label="#combined")
    page.get_by_label("Combine updates to the same issue within").select_option(label="5 min")
    page.get_by_role("button", name="Save", exact=True).click()
    page.wait_for_url(f"**{T}/subscriptions")
    expect(page.locator("tbody tr", has_text="#combined")).to_contain_text(
        "Combines updates within 5 min"
    )
    for name in UPDATES:
        post_jira_event(service, (PAYLOADS / name).read_bytes())

    page.goto(f"{T}/deliveries")
    rows = page.locator("tbody tr", has_text="#combined")
    expect(rows).to_have_count(3)
    head = rows.filter(has=page.locator(".grouped-card"))
    expect(head).to_contain_text("Combined card · 3 updates")
    expect(head).to_contain_text("waiting for more updates until")
    expect(rows.filter(has_text="into its combined card")).to_have_count(2)
    assert sink.received("/combined") == []

    head_id = close_the_window(service, "#combined")
    sink.wait_for(1, "/combined", timeout=20)
    # The log refreshes itself: the card is delivered and waits no more.
    delivered = page.locator(f"#delivery-{head_id}")
    expect(delivered).to_have_attribute("data-status", "delivered", timeout=15_000)
    expect(delivered).to_contain_text("Combined card · 3 updates")
    expect(delivered).not_to_contain_text("waiting")
    screenshot(page, "delivery-log-combined")

    delivered.get_by_role("link", name=re.compile("TES-41")).click()
    expect(page.locator("#folded-here")).to_contain_text("Combined card · 3 updates")
    expect(page.locator("#carried li")).to_have_count(2)
    # The page draws the combined card as Teams shows it.
    card = page.locator("#card-preview")
    expect(card).to_contain_text("TES-41 · 3 updates")
    screenshot(page, "delivery-combined-card")

    # A carried update links back to its card.
    page.locator("#carried li a").first.click()
    expect(page.locator("#folded-into")).to_contain_text("its combined card")
    page.locator("#folded-into a").click()
    expect(page.locator("#folded-here")).to_be_visible()
    assert len(sink.received("/combined")) == 1
