"""A webhook on a retired URL in a real browser: its warning on the Integrations card, the
Teams page and the edit form, and its URL replaced through Test-then-Save (a refused test
keeps the saved URL and offers "Save anyway"; an accepted one saves)."""

from __future__ import annotations

import json

import pytest
from playwright.sync_api import Page, expect

from tests.browser.conftest import Service, requires_chromium, screenshot, sign_in
from tests.security import webhook_urls as U
from tests.support.processes import run_cli
from ticketmate.dev.teams_sink import Answer, TeamsSink

pytestmark = [pytest.mark.browser, requires_chromium]

T = "/w/acme/admin/integrations/teams"
GONE = "/workflows/N0tThere/triggers/manual/paths/invoke"
NEW = "/workflows/Fr3shFlow/triggers/manual/paths/invoke"


def add_retired_webhook(service: Service) -> str:
    """Through the CLI, as an administrator would have years ago: a logic.azure.com URL."""
    done = run_cli(
        [
            "teams",
            "webhook",
            "add",
            "--workspace",
            "acme",
            "--as",
            service.admin_email,
            "--channel-name",
            "#ops-retired",
            "--url-stdin",
            "--json",
        ],
        service.env,
        service.folder,
        U.LOGIC_APPS + "\n",
    )
    assert done.returncode == 0, done.stdout + done.stderr
    made = json.loads(done.stdout)
    assert made["url_family"] == "logic_apps"
    assert "30 November 2025" in made["url_warning"]
    return str(made["id"])


def test_a_retired_url_warns_and_is_replaced_through_test_then_save(
    page: Page, service: Service, sink: TeamsSink
) -> None:
    webhook_id = add_retired_webhook(service)
    sink.set_default(GONE, Answer(404, ""))
    sign_in(page, service.admin_email)

    # Admin > Integrations: the Teams card warns.
    page.goto("/w/acme/admin/integrations")
    card_warning = page.locator("#teams-url-warning")
    expect(card_warning).to_contain_text("1 webhook uses a URL that Microsoft has retired")
    expect(card_warning).to_contain_text("Workflows on logic.azure.com (retired)")
    screenshot(page, "30-retired-url-integrations-card")

    # Manage: the Webhooks tab warns, and the row names the family.
    page.locator("#teams").get_by_role("button", name="Manage").click()
    warnings = page.locator("#url-warnings")
    expect(warnings).to_contain_text("30 November 2025")
    expect(warnings).to_contain_text(
        "Create a Workflows webhook in the channel and replace the URL here."
    )
    row = page.locator(f"#webhook-{webhook_id}")
    expect(row).to_contain_text("Workflows on logic.azure.com (retired)")
    screenshot(page, "31-retired-url-webhooks-tab")

    # Its edit form, from the row's "replace it".
    row.get_by_role("link", name="replace it").click()
    expect(page.locator("#url-warning")).to_contain_text("Microsoft stopped honouring")
    expect(page.get_by_role("button", name="Save anyway")).to_have_count(0)

    # A URL whose flow is gone: the test is refused, nothing is saved, "Save anyway" appears.
    field = page.get_by_label("Replace URL")
    field.fill(sink.url(GONE + "?sig=abc"))
    page.get_by_role("button", name="Save", exact=True).click()
    expect(page.locator(".test-result.fail")).to_contain_text("Connection failed.")
    expect(page.locator(".test-result.fail")).to_contain_text("Teams answered 404")
    expect(page.locator("#replace_url-error")).to_contain_text("the saved URL was kept")
    expect(page.get_by_role("button", name="Save anyway")).to_be_visible()
    expect(page.get_by_label("Replace URL")).to_have_attribute("type", "password")
    expect(page.locator("#url-warning")).to_be_visible()  # still the retired URL
    assert "N0tThere" not in page.locator("body").inner_text()
    screenshot(page, "32-retired-url-test-refused")
    assert len(sink.received(GONE)) == 1

    # A working Workflows URL: tested, accepted, saved.
    page.get_by_label("Replace URL").fill(sink.url(NEW + "?sig=abc"))
    page.get_by_role("button", name="Save", exact=True).click()
    expect(page.locator(".flash-ok")).to_contain_text(
        "Teams accepted the sample card at the new URL."
    )
    [card] = sink.received(NEW)
    assert "Ticket MATE test message" in card.body.decode()
    expect(page.locator("#url-warnings")).to_have_count(0)
    expect(page.locator(f"#webhook-{webhook_id}")).to_contain_text("Local stand-in (loopback)")
    screenshot(page, "33-retired-url-replaced")

    page.goto("/w/acme/admin/integrations")
    expect(page.locator("#teams-url-warning")).to_have_count(0)
