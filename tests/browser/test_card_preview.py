"""The card preview on a delivery's page shows what Teams shows, also for hostile Jira text.

The card builder backslash-escapes Markdown in everything that comes from Jira, and Teams shows
such text as written. The preview must read those escapes the same way: no link, emphasis or
HTML may appear in the admin UI that Teams would not show, and the characters must be visible.
The issue's summary, description and a comment go through the real service (signed Jira
webhook, routing, the worker, the Teams stand-in) before the page draws the card.
"""

from __future__ import annotations

import json
import urllib.request
import uuid
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Locator, Page, Route, expect

from tests.browser.conftest import Service, requires_chromium, screenshot, sign_in
from tests.support.processes import run_cli
from ticketmate.dev.teams_sink import TeamsSink
from ticketmate.jira.signature import body_signature

pytestmark = [pytest.mark.browser, requires_chromium]

PAYLOADS = Path(__file__).resolve().parents[1] / "fixtures" / "jira-payloads"
ISSUE_CREATED = "mattermost_mattermost-plugin-jira__issue-created.json"  # TES-41
COMMENT_CREATED = "mattermost_mattermost-plugin-jira__cloud-comment-created.json"  # TES-41
SITE = "https://some-instance-test.atlassian.net"
T = "/w/acme/admin/integrations/teams"

SUMMARY = "Look [ok](https://x.test/summary) **bold** _em_ <img src=x onerror=window.pwned=1>"
# Each line becomes a paragraph of the card; each must read exactly so in the preview.
DESCRIPTION = [
    "[ok](https://x.test/description)",
    "[ok](javascript:window.pwned=1)",
    "[[inner](https://x.test/inner)](https://x.test/outer)",
    r"\[ok\](https://x.test/backslash)",
    r"trailing \ backslash and \\ two",
    "**bold** and __strong__ and _em_ and *one*",
    "- not a list",
    "1. not a list",
    "# not a heading",
    "<b>raw</b> <img src=x onerror=window.pwned=1> <a href=https://x.test/html>html</a>",
]
COMMENT = [
    "[ok](https://x.test/comment)",
    "[`code`](https://x.test/code) ~~gone~~ [x]: https://x.test/reference",
    "**[both](https://x.test/both)**",
]
AUTHOR = "[Mallory](https://x.test/author)"
HOSTILE_HREFS = [
    "https://x.test/summary",
    "https://x.test/description",
    "javascript:window.pwned=1",
    "https://x.test/inner",
    "https://x.test/outer",
    "https://x.test/backslash",
    "https://x.test/html",
    "https://x.test/comment",
    "https://x.test/code",
    "https://x.test/reference",
    "https://x.test/both",
    "https://x.test/author",
]


def hostile(name: str) -> bytes:
    payload: dict[str, Any] = json.loads((PAYLOADS / name).read_text())
    fields = payload["issue"]["fields"]
    fields["summary"] = SUMMARY
    if "comment" in payload:
        payload["comment"]["body"] = "\n".join(COMMENT)
        payload["comment"]["author"]["displayName"] = AUTHOR
        payload["comment"]["updateAuthor"]["displayName"] = AUTHOR
    else:
        fields["description"] = "\n".join(DESCRIPTION)
    return json.dumps(payload).encode()


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


@pytest.fixture(scope="module")
def hostile_deliveries(service: Service, sink: TeamsSink) -> None:
    """A channel that takes Issue Created and Comment Added, and one hostile event of each."""

    def cli(*args: str) -> None:
        done = run_cli(list(args), service.env, service.folder)
        assert done.returncode == 0, done.stdout + done.stderr

    who = ("--workspace", service.slug, "--as", service.admin_email)
    cli("teams", "webhook", "add", *who, "--channel-name", "#preview", "--url", sink.url("/p"))
    for event in ("issue_created", "comment_created"):
        cli("teams", "subscription", "add", *who, "--event-type", event, "--webhook", "#preview")
    post_jira_event(service, hostile(ISSUE_CREATED))
    # Intake routes the events as it stores them: the deliveries exist when it has answered.
    post_jira_event(service, hostile(COMMENT_CREATED))


def open_delivery(page: Page, event_label: str) -> Locator:
    """The delivery of `event_label` from the Delivery Log, its card drawn."""
    sign_in(page, "admin@acme.test")
    page.goto(f"{T}/deliveries")
    row = page.locator("table.deliveries tbody tr", has_text=event_label)
    row.get_by_role("link").first.click()
    expect(page.get_by_role("heading", name="The card sent")).to_be_visible()
    preview = page.locator("#card-preview")
    expect(preview).to_have_attribute("data-rendered", "true")
    return preview


def shown_text(preview: Locator) -> str:
    return " ".join(preview.inner_text().split())


def assert_nothing_became_markup(page: Page, preview: Locator) -> None:
    for href in HOSTILE_HREFS:
        expect(preview.locator(f'a[href="{href}"]')).to_have_count(0)
    # The card makes no Markdown links of its own: "Open in Jira" is an action, not an <a>.
    expect(preview.locator("a")).to_have_count(0)
    expect(preview.locator("strong, em, b, i, img, code, del, s, ul, ol, li, h1")).to_have_count(0)
    assert page.evaluate("window.pwned") is None


@pytest.mark.usefixtures("hostile_deliveries")
def test_hostile_summary_and_description_show_as_written(page: Page) -> None:
    preview = open_delivery(page, "Issue Created")
    assert_nothing_became_markup(page, preview)
    text = shown_text(preview)
    assert f"TES-41: {SUMMARY}" in text
    for line in DESCRIPTION:
        assert " ".join(line.split()) in text, line
    # Teams drops the escaping backslashes: none of the card's own may show.
    assert r"\[" not in text.replace(r"\[ok\](https://x.test/backslash)", "")
    preview.scroll_into_view_if_needed()
    screenshot(page, "16-hostile-card-preview")


@pytest.mark.usefixtures("hostile_deliveries")
def test_hostile_comment_and_author_show_as_written(page: Page) -> None:
    preview = open_delivery(page, "Comment Added")
    assert_nothing_became_markup(page, preview)
    text = shown_text(preview)
    assert f"{AUTHOR} commented on TES-41" in text
    assert f"TES-41: {SUMMARY}" in text
    for line in COMMENT:
        assert line in text, line


@pytest.mark.usefixtures("hostile_deliveries")
def test_open_in_jira_still_opens_the_issue(page: Page) -> None:
    opened: list[str] = []

    def jira(route: Route) -> None:
        opened.append(route.request.url)
        route.fulfill(status=200, content_type="text/html", body="<title>TES-41</title>")

    page.context.route(f"{SITE}/**", jira)
    preview = open_delivery(page, "Issue Created")
    # The renderer draws Action.OpenUrl as a button with the role of a link.
    button = preview.get_by_role("link", name="Open in Jira")
    expect(button).to_be_visible()
    with page.expect_popup() as popup:
        button.click()
    popup.value.wait_for_load_state()
    assert popup.value.url == f"{SITE}/browse/TES-41"
    assert opened == [f"{SITE}/browse/TES-41"]


# Markdown as the card builder would write it itself (not from Jira): Teams shows the link and
# the emphasis, so the preview must too, while escapes still read as plain characters.
OWN_MARKDOWN = (
    "See [the guide](https://docs.example.test/guide?a=1&b=2) and **this** and _that_, "
    r"not \[this\](https://x.test/escaped) nor \*\*that\*\* nor [that](javascript:alert(1))."
)


@pytest.mark.usefixtures("hostile_deliveries")
def test_the_cards_own_markdown_still_renders(page: Page) -> None:
    open_delivery(page, "Issue Created")
    card = {
        "type": "AdaptiveCard",
        "version": "1.4",
        "body": [{"type": "TextBlock", "text": OWN_MARKDOWN, "wrap": True}],
    }
    # A second card on the same page, drawn by the page's own code as HTMX-loaded content is.
    page.evaluate(
        """card => {
            const json = document.createElement("script");
            json.type = "application/json";
            json.id = "own-card-json";
            json.textContent = JSON.stringify(card);
            const box = document.createElement("div");
            box.id = "own-card";
            box.setAttribute("data-adaptive-card", "own-card-json");
            const piece = document.createElement("section");
            piece.append(json, box);
            document.body.append(piece);
            const loaded = {bubbles: true, detail: {elt: piece}};
            piece.dispatchEvent(new CustomEvent("htmx:load", loaded));
        }""",
        card,
    )
    own = page.locator("#own-card")
    expect(own).to_have_attribute("data-rendered", "true")
    link = own.get_by_role("link", name="the guide")
    expect(link).to_have_attribute("href", "https://docs.example.test/guide?a=1&b=2")
    expect(link).to_have_attribute("rel", "noopener noreferrer")
    expect(own.locator("strong")).to_have_text("this")
    expect(own.locator("em")).to_have_text("that")
    expect(own.locator("a")).to_have_count(1)
    expect(own.locator("strong")).to_have_count(1)
    assert (
        "not [this](https://x.test/escaped) nor **that** nor [that](javascript:alert(1))."
        in shown_text(own)
    )
