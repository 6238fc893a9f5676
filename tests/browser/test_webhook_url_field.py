"""The webhook URL field in a real browser: masked as it is typed, revealed only on request,
and still masked when a failed Test or Save brings the form back, with JavaScript on or off."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from playwright.sync_api import Browser, Page, expect

from tests.browser.conftest import Service, requires_chromium, screenshot, sign_in
from ticketmate.dev.teams_sink import Answer, TeamsSink

pytestmark = [pytest.mark.browser, requires_chromium]

T = "/w/acme/admin/integrations/teams"
PATH = "/workflows/Pr1vatePath0fTheFlow/triggers/manual/paths/invoke"
SIG = "S1gnatureN0tForTheEyes"


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


def refusing_url(sink: TeamsSink) -> str:
    """A channel that refuses the card and quotes its URL back in the answer."""
    url = sink.url(f"{PATH}?api-version=1&sig={SIG}")
    sink.set_default(PATH, Answer(401, f"Unauthorized: {url}"))
    return url


def assert_not_shown(page: Page) -> None:
    shown = page.locator("body").inner_text()
    assert PATH not in shown
    assert SIG not in shown


def test_the_url_is_masked_and_its_owner_can_reveal_it(
    page: Page, service: Service, sink: TeamsSink
) -> None:
    url = refusing_url(sink)
    sign_in(page, service.admin_email)
    page.goto(f"{T}/webhooks/new")
    field = page.get_by_label("Webhook URL")
    expect(field).to_have_attribute("type", "password")
    page.get_by_label("Channel Name").fill("#masked")
    field.fill(url)
    assert_not_shown(page)

    show = page.get_by_role("button", name="Show the URL")
    expect(show).to_have_text("Show")
    show.click()
    expect(field).to_have_attribute("type", "text")
    expect(field).to_have_value(url)
    expect(page.get_by_role("button", name="Hide the URL")).to_have_text("Hide")
    screenshot(page, "17-webhook-url-revealed")
    page.get_by_role("button", name="Hide the URL").click()
    expect(field).to_have_attribute("type", "password")

    # Test Connection (HTMX) fails: the answer shows, the URL does not.
    page.get_by_role("button", name="Test Connection").click()
    expect(page.locator(".test-result.fail")).to_contain_text("Connection failed.")
    expect(field).to_have_attribute("type", "password")
    assert_not_shown(page)

    # Revealed, then Save fails (no channel name): the form comes back masked.
    page.get_by_role("button", name="Show the URL").click()
    page.get_by_label("Channel Name").fill("")
    page.get_by_role("button", name="Save").click()
    expect(page.locator("#channel_name-error")).to_be_visible()
    field = page.get_by_label("Webhook URL")
    expect(field).to_have_attribute("type", "password")
    expect(field).to_have_value(url)
    assert_not_shown(page)
    page.get_by_role("button", name="Show the URL").click()
    expect(field).to_have_attribute("type", "text")
    expect(field).to_have_value(url)


def test_the_replacement_url_on_the_edit_form_is_masked_too(
    page: Page, service: Service, sink: TeamsSink
) -> None:
    url = refusing_url(sink)
    sign_in(page, service.admin_email)
    page.goto(f"{T}/webhooks/new")
    page.get_by_label("Channel Name").fill("#edited")
    page.get_by_label("Webhook URL").fill(sink.url("/workflows/edited"))
    page.get_by_role("button", name="Save").click()
    expect(page.locator(".flash-ok")).to_contain_text("saved")
    page.locator("tr", has_text="#edited").get_by_role("button", name="Edit").click()
    field = page.get_by_label("Replace URL")
    expect(field).to_have_attribute("type", "password")
    field.fill(url)
    page.get_by_role("button", name="Show the URL").click()
    expect(field).to_have_attribute("type", "text")
    page.get_by_role("button", name="Test Connection").click()
    expect(page.locator(".test-result.fail")).to_contain_text("Connection failed.")
    assert "Pr1vatePath0fTheFlow" not in page.locator("#test-result").inner_text()


def test_without_javascript_a_failed_test_brings_the_url_back_masked(
    no_js_page: Page, service: Service, sink: TeamsSink
) -> None:
    page = no_js_page
    url = refusing_url(sink)
    sign_in(page, service.admin_email)
    page.goto(f"{T}/webhooks/new")
    page.get_by_label("Channel Name").fill("#no-js-masked")
    page.get_by_label("Webhook URL").fill(url)
    page.get_by_role("button", name="Test Connection").click()
    expect(page.locator(".test-result.fail")).to_contain_text("Connection failed.")
    field = page.get_by_label("Webhook URL")
    expect(field).to_have_attribute("type", "password")
    expect(field).to_have_value(url)
    # Nothing could reveal it without JavaScript, so the button stays hidden.
    expect(page.locator("button[data-reveal]")).to_be_hidden()
    assert_not_shown(page)
    screenshot(page, "18-webhook-url-masked-without-javascript")

    # Save with the channel name emptied: refused, and the URL is still only in the field.
    page.get_by_label("Channel Name").fill("")
    page.get_by_role("button", name="Save").click()
    expect(page.locator("#channel_name-error")).to_be_visible()
    expect(page.get_by_label("Webhook URL")).to_have_attribute("type", "password")
    expect(page.get_by_label("Webhook URL")).to_have_value(url)
    assert_not_shown(page)
