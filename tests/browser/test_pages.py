"""The admin pages' behaviour in a real browser: the member's 403 page, the Jira card's
Reveal / Copy / Regenerate, times in the browser's zone, and the flows with JavaScript off."""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest
from playwright.sync_api import Browser, Page, expect

from tests.browser.conftest import Service, requires_chromium, screenshot, sign_in
from ticketmate.dev.teams_sink import TeamsSink

pytestmark = [pytest.mark.browser, requires_chromium]


@pytest.fixture
def no_js_page(browser: Browser, service: Service) -> Iterator[Page]:
    context = browser.new_context(
        viewport={"width": 1280, "height": 800}, base_url=service.url, java_script_enabled=False
    )
    context.set_default_timeout(15_000)
    try:
        yield context.new_page()
    finally:
        context.close()


def test_a_member_gets_the_admin_required_page(page: Page, service: Service) -> None:
    sign_in(page, service.member_email)
    expect(
        page.get_by_text("only workspace administrators can manage integrations")
    ).to_be_visible()
    for path in (
        "/w/acme/admin/integrations",
        "/w/acme/admin/integrations/teams/webhooks/new",
        "/w/acme/security/audit-log",
    ):
        answer = page.goto(path)
        assert answer is not None
        assert answer.status == 403
        expect(
            page.get_by_role("heading", name="You need to be a workspace administrator")
        ).to_be_visible()
    screenshot(page, "13-member-forbidden")


def test_jira_card_reveal_copy_and_regenerate(page: Page, service: Service) -> None:
    page.context.grant_permissions(["clipboard-read", "clipboard-write"])
    sign_in(page, service.admin_email)
    page.goto("/w/acme/admin/integrations")
    card = page.locator("#jira")
    expect(card.locator("#jira-url")).to_have_text(
        f"{service.url}/api/webhooks/jira?workspace=acme"
    )
    assert service.jira_secret not in page.content()

    secret_row = card.locator("dd", has=page.locator("#jira-secret"))
    secret_row.get_by_role("button", name="Reveal").click()
    expect(card.locator("#jira-secret-value")).to_have_text(service.jira_secret)
    secret_row.get_by_role("button", name="Copy").click()
    expect(secret_row.get_by_role("button", name="Copied")).to_be_visible()
    assert page.evaluate("navigator.clipboard.readText()") == service.jira_secret

    # Regenerate asks first; dismissing keeps the secret, accepting replaces it.
    page.once("dialog", lambda dialog: dialog.dismiss())
    secret_row.get_by_role("button", name="Regenerate").click()
    expect(card.locator("#jira-secret-value")).to_have_text(service.jira_secret)
    questions: list[str] = []

    def accept(dialog: object) -> None:
        questions.append(dialog.message)  # type: ignore[attr-defined]
        dialog.accept()  # type: ignore[attr-defined]

    page.once("dialog", accept)
    page.locator("#jira dd", has=page.locator("#jira-secret")).get_by_role(
        "button", name="Regenerate"
    ).click()
    expect(page.locator("#jira .flash-ok")).to_contain_text("New secret created")
    new_secret = page.locator("#jira-secret-value").text_content()
    assert new_secret
    assert new_secret != service.jira_secret
    assert questions[0].startswith("Regenerate the secret?")
    screenshot(page, "14-jira-card-regenerated")


def test_times_are_shown_in_the_browsers_time_zone(browser: Browser, service: Service) -> None:
    context = browser.new_context(base_url=service.url, timezone_id="Asia/Tokyo", locale="en-GB")
    try:
        page = context.new_page()
        sign_in(page, service.admin_email)
        page.goto("/w/acme/security/audit-log")
        first = page.locator("table.audit time").first
        expect(first).to_have_text(re.compile(r"GMT\+9"))
        title = first.get_attribute("title")
        utc = first.get_attribute("datetime")
        assert (title or "").endswith(" UTC")
        assert (utc or "").endswith("Z")
    finally:
        context.close()


def test_basic_flows_work_with_javascript_off(
    no_js_page: Page, service: Service, sink: TeamsSink
) -> None:
    page = no_js_page
    sign_in(page, service.admin_email)
    page.goto("/w/acme/admin/integrations/teams/webhooks/new")
    page.get_by_label("Channel Name").fill("#no-js")
    page.get_by_label("Webhook URL").fill(sink.url("/workflows/no-js"))
    page.get_by_label("Enabled").check()
    page.get_by_role("button", name="Test Connection").click()
    expect(page.locator(".test-result.ok")).to_contain_text("Connection works.")
    expect(page.get_by_label("Channel Name")).to_have_value("#no-js")
    page.get_by_role("button", name="Save").click()
    expect(page.locator(".flash-ok")).to_contain_text("Webhook “#no-js” saved.")
    expect(page.locator("tr", has_text="#no-js").locator("code.masked")).to_contain_text("/…")

    page.goto("/w/acme/admin/integrations/teams/subscriptions/new")
    page.get_by_label("Event Type").select_option(label="Status Changed")
    page.get_by_label("Webhook", exact=True).select_option(label="#no-js")
    page.get_by_label("Project").fill("TES, KT")
    page.get_by_label("Status").fill("Done")
    page.get_by_label("Enabled").check()
    page.get_by_role("button", name="Save").click()
    row = page.locator("tbody tr", has_text="Status Changed")
    expect(row).to_contain_text("Project: TES, KT")
    expect(row).to_contain_text("Status: Done")

    # Deleting asks on a page of its own when no script can ask.
    row.get_by_role("button", name="Delete").click()
    expect(page.get_by_role("heading", name="Delete this subscription?")).to_be_visible()
    page.get_by_role("button", name="Delete subscription").click()
    expect(page.locator(".flash-ok")).to_contain_text("Subscription deleted")

    page.goto("/w/acme/admin/integrations/teams/webhooks")
    page.locator("tr", has_text="#no-js").get_by_role("button", name="Delete").click()
    expect(page.get_by_role("heading", name="Delete the webhook “#no-js”?")).to_be_visible()
    page.get_by_role("button", name="Delete webhook").click()
    expect(page.locator(".flash-ok")).to_contain_text("Webhook “#no-js” deleted.")


def test_webhook_row_actions_test_switch_and_delete(
    page: Page, service: Service, sink: TeamsSink
) -> None:
    page.on("dialog", lambda dialog: dialog.accept())
    sign_in(page, service.admin_email)
    page.goto("/w/acme/admin/integrations/teams/webhooks/new")
    page.get_by_label("Channel Name").fill("#ops")
    page.get_by_label("Webhook URL").fill(sink.url("/workflows/ops"))
    page.get_by_role("button", name="Save").click()
    page.goto("/w/acme/admin/integrations/teams/subscriptions/new")
    page.get_by_label("Event Type").select_option(label="Comment Added")
    page.get_by_label("Webhook", exact=True).select_option(label="#ops")
    page.get_by_role("button", name="Save").click()
    expect(page.locator("tbody tr", has_text="Comment Added")).to_contain_text("Any")

    page.goto("/w/acme/admin/integrations/teams/webhooks")
    row = page.locator("tr", has_text="#ops")
    # Test: the sample card goes out and the answer shows in the row.
    row.get_by_role("button", name="Test").click()
    expect(row.locator(".test-result.ok")).to_contain_text("Connection works.")
    # The Enabled switch saves as it is flipped.
    switch = row.get_by_role("switch", name="Enabled: #ops")
    switch.uncheck()
    expect(row.get_by_role("switch", name="Enabled: #ops")).not_to_be_checked()
    page.reload()
    expect(page.locator("tr", has_text="#ops").get_by_role("switch")).not_to_be_checked()
    page.locator("tr", has_text="#ops").get_by_role("button", name="Delete").click()
    expect(page.locator(".going li")).to_have_text(["Comment Added"])
    screenshot(page, "15-delete-webhook-confirmation")
    page.get_by_role("button", name=re.compile("Delete webhook and 1 subscription")).click()
    expect(page.locator(".flash-ok")).to_contain_text("with its 1 subscription(s)")
    page.get_by_role("link", name="Subscriptions").click()
    expect(page.locator("tbody tr", has_text="Comment Added")).to_have_count(0)
