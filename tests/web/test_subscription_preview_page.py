"""Preview on Add/Edit Subscription: the form as typed, with what it would have sent below it.

Through the real app, signed in, with the session's CSRF token; with HTMX (the form and its
preview swapped in place) and without (a normal submit of the Preview button). Nothing is saved.
"""

from __future__ import annotations

import html
import re

from sqlalchemy import func, select

from tests.support.teams import event, make_subscription, make_webhook, store_and_route
from tests.web.conftest import Browser, People, htmx, post_form
from ticketmate.models import AuditEntry, TeamsSubscription
from ticketmate.state import Services

T = "/w/acme/admin/integrations/teams"
HOOK_URL = "http://127.0.0.1:9/workflows/eng"


def stored_events(svc: Services, people: People) -> dict[str, str]:
    """Two DEMO issues and three OPS issues created; issue key → event id."""
    ids = {}
    for key, project in (
        ("OPS-1", "OPS"),
        ("DEMO-1", "DEMO"),
        ("OPS-2", "OPS"),
        ("DEMO-2", "DEMO"),
        ("OPS-3", "OPS"),
    ):
        ids[key], _ = store_and_route(svc, people.acme.id, event(["issue_created"], key, project))
    return ids


def counts(svc: Services) -> tuple[int, int]:
    with svc.db.transaction() as session:
        return (
            session.scalar(select(func.count()).select_from(TeamsSubscription)) or 0,
            session.scalar(select(func.count()).select_from(AuditEntry)) or 0,
        )


def text_of(page: str) -> str:
    return html.unescape(re.sub(r"\s+", " ", re.sub(r"<[^>]+>", "", page)))


FIELDS = {
    "event_type": "issue_created",
    "enabled": "on",
    "projects": "DEMO",
    "security_choice": "none",
}


def assert_shows_the_preview(page: str, ids: dict[str, str]) -> None:
    words = text_of(page)
    assert "These settings would have sent 2 cards in the last 7 days (of 5 events)." in words
    assert "Alice created bug DEMO-2" in words
    assert "Alice created bug DEMO-1" in words
    assert "OPS-1" not in words
    for key in ("DEMO-1", "DEMO-2"):
        assert f'<a href="{T}/events/{ids[key]}">' in page
    assert "Why the other events would not have been sent" in words
    assert "project OPS not in [DEMO]: 3 events" in words
    # Newest first.
    assert words.index("DEMO-2") < words.index("DEMO-1")


def test_preview_without_javascript_shows_the_counts_titles_and_reasons_and_saves_nothing(
    admin: Browser, svc: Services, people: People
) -> None:
    hook = make_webhook(svc, people.acme.id, "#eng", HOOK_URL)
    ids = stored_events(svc, people)
    before = counts(svc)
    form = admin.client.get(f"{T}/subscriptions/new").text
    assert 'name="preview" value="1"' in form
    assert f'formaction="{T}/subscriptions/preview"' in form
    assert f'hx-post="{T}/subscriptions/preview"' in form

    shown = post_form(admin, f"{T}/subscriptions/preview", webhook_id=hook, **FIELDS)
    assert shown.status_code == 200, shown.text
    assert_shows_the_preview(shown.text, ids)
    # The form comes back as typed, still adding (not saved).
    assert f'action="{T}/subscriptions"' in shown.text
    assert 'value="DEMO"' in shown.text
    # The Preview button's name on the Save action does the same.
    named = post_form(admin, f"{T}/subscriptions", webhook_id=hook, preview="1", **FIELDS)
    assert named.status_code == 200, named.text
    assert_shows_the_preview(named.text, ids)
    assert counts(svc) == before


def test_preview_through_htmx_answers_the_form_and_its_preview(
    admin: Browser, svc: Services, people: People
) -> None:
    hook = make_webhook(svc, people.acme.id, "#eng", HOOK_URL)
    ids = stored_events(svc, people)
    before = counts(svc)
    shown = htmx(admin, "POST", f"{T}/subscriptions/preview", webhook_id=hook, **FIELDS)
    assert shown.status_code == 200, shown.text
    assert '<div id="subscription-editor">' in shown.text  # what hx-select swaps in
    assert_shows_the_preview(shown.text, ids)
    assert counts(svc) == before


def test_preview_of_an_edit_uses_the_values_typed_not_the_saved_ones(
    admin: Browser, svc: Services, people: People
) -> None:
    hook = make_webhook(svc, people.acme.id, "#eng", HOOK_URL)
    ids = stored_events(svc, people)
    subscription = make_subscription(svc, people.acme.id, hook, "issue_created", projects=["OPS"])
    before = counts(svc)
    edit = admin.client.get(f"{T}/subscriptions/{subscription}/edit").text
    assert f'formaction="{T}/subscriptions/{subscription}/preview"' in edit
    for shown in (
        post_form(admin, f"{T}/subscriptions/{subscription}/preview", webhook_id=hook, **FIELDS),
        htmx(admin, "POST", f"{T}/subscriptions/{subscription}/preview", webhook_id=hook, **FIELDS),
        post_form(
            admin, f"{T}/subscriptions/{subscription}", webhook_id=hook, preview="1", **FIELDS
        ),
    ):
        assert shown.status_code == 200, shown.text
        assert_shows_the_preview(shown.text, ids)
        assert f'action="{T}/subscriptions/{subscription}"' in shown.text
    assert counts(svc) == before
    with svc.db.transaction() as session:
        saved = session.get(TeamsSubscription, subscription)
        assert saved is not None
        assert saved.filters["projects"] == ["OPS"]


def test_invalid_settings_show_their_errors_as_save_does_and_no_preview(
    admin: Browser, svc: Services, people: People
) -> None:
    hook = make_webhook(svc, people.acme.id, "#eng", HOOK_URL)
    stored_events(svc, people)
    for send in (
        lambda **f: post_form(admin, f"{T}/subscriptions/preview", **f),
        lambda **f: htmx(admin, "POST", f"{T}/subscriptions/preview", **f),
    ):
        shown = send(webhook_id=hook, **{**FIELDS, "event_type": ""})
        assert shown.status_code == 422
        assert "Select an event type." in shown.text
        assert "These settings would have sent" not in shown.text
        levels = send(webhook_id=hook, **{**FIELDS, "security_choice": "levels"})
        assert levels.status_code == 422
        assert "Enter the names of the security levels to post" in levels.text
    other = make_webhook(svc, people.globex.id, "#theirs", HOOK_URL + "x")
    foreign = post_form(admin, f"{T}/subscriptions/preview", webhook_id=other, **FIELDS)
    assert foreign.status_code == 422
    assert "there is no webhook with this id in this workspace" in foreign.text


def test_an_empty_period_says_there_is_nothing_to_preview(
    admin: Browser, svc: Services, people: People
) -> None:
    hook = make_webhook(svc, people.acme.id, "#eng", HOOK_URL)
    shown = post_form(admin, f"{T}/subscriptions/preview", webhook_id=hook, **FIELDS)
    assert shown.status_code == 200
    assert "No events were received in the last 7 days" in text_of(shown.text)


def test_preview_needs_the_csrf_token_and_an_administrator(
    admin: Browser, svc: Services, people: People
) -> None:
    hook = make_webhook(svc, people.acme.id, "#eng", HOOK_URL)
    refused = admin.client.post(
        f"{T}/subscriptions/preview", data={"webhook_id": hook, **FIELDS}, follow_redirects=False
    )
    assert refused.status_code == 403
