"""The Teams stand-in's page in Chromium: each card drawn by the Adaptive Cards renderer, and a
card that arrives while the page is open appears without a reload."""

from __future__ import annotations

import json
import urllib.request
from collections.abc import Iterator

import pytest
from playwright.sync_api import Browser, Page, expect

from tests.browser.conftest import requires_chromium, screenshot
from ticketmate.dev.teams_sink import TeamsSink

pytestmark = [pytest.mark.browser, requires_chromium]


def send_card(sink: TeamsSink, title: str, text: str) -> None:
    card = {
        "type": "AdaptiveCard",
        "version": "1.4",
        "body": [
            {"type": "TextBlock", "text": title, "weight": "Bolder", "wrap": True},
            {"type": "TextBlock", "text": text, "wrap": True},
            {"type": "FactSet", "facts": [{"title": "Status", "value": "In Progress"}]},
        ],
    }
    message = {
        "type": "message",
        "attachments": [
            {"contentType": "application/vnd.microsoft.card.adaptive", "content": card}
        ],
    }
    request = urllib.request.Request(
        sink.url("/workflows/eng?sig=TOPSECRET"),
        data=json.dumps(message).encode(),
        method="POST",
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=5) as answer:
        assert answer.status == 202


@pytest.fixture
def sink_page(browser: Browser) -> Iterator[tuple[TeamsSink, Page]]:
    with TeamsSink() as sink:
        context = browser.new_context(viewport={"width": 1000, "height": 800})
        context.set_default_timeout(15_000)
        try:
            yield sink, context.new_page()
        finally:
            context.close()


def test_cards_are_drawn_and_new_ones_appear(sink_page: tuple[TeamsSink, Page]) -> None:
    sink, page = sink_page
    # Escaped Markdown, as the card builder writes Jira text: shown as the characters.
    send_card(sink, "Issue Created", r"TES-41: \*\*not bold\*\* \[not a link\](https://x.test)")
    page.goto(sink.url("/"))

    drawn = page.locator('[data-adaptive-card][data-rendered="true"]')
    expect(drawn).to_have_count(1)
    first = drawn.first
    expect(first).to_contain_text("Issue Created")
    expect(first).to_contain_text("TES-41: **not bold** [not a link](https://x.test)")
    expect(first).to_contain_text("In Progress")
    expect(first.locator("a, strong")).to_have_count(0)
    expect(page.locator("li.received .status").first).to_have_text("answered 202")

    send_card(sink, "Status Changed", "TES-41 moved to Done")
    expect(drawn).to_have_count(2)  # polled in, not reloaded
    expect(drawn.first).to_contain_text("Status Changed")  # newest first
    # Only what was posted is listed: not the page's own requests (scripts, the icon).
    expect(page.locator("li.received")).to_have_count(2)
    assert "TOPSECRET" not in page.content()
    screenshot(page, "teams-stand-in")
