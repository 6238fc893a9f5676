"""Security levels in the admin UI: the subscription form's choice, the list's badge, the event's
page (its level, how it is known, and each subscription's reason) and the Jira card's rule for
comments whose issue's level is not known."""

from __future__ import annotations

import copy
import html
import re
from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy import select

from tests.jira.support import payload, post_signed
from tests.support.teams import make_subscription, make_webhook
from tests.web.conftest import Browser, People, flash_of, htmx, post_form
from ticketmate.models import AuditEntry, JiraEventRecord, TeamsSubscription, Workspace
from ticketmate.state import Services

T = "/w/acme/admin/integrations/teams"
A = "/w/acme/admin/integrations"
HOOK_URL = "http://127.0.0.1:9/workflows/eng"
ISSUE_CREATED = "mattermost_mattermost-plugin-jira__issue-created.json"  # TES-41, id 10040
COMMENT_CREATED = "mattermost_mattermost-plugin-jira__cloud-comment-created.json"  # TES-41
STAFF_ONLY = {"id": "10100", "name": "Staff only", "description": "Staff and contractors"}
NOT_RESTRICTED = "the subscription does not include restricted issues"
WARNING = "The channel's members will see these issues' summaries"


def stored(svc: Services) -> list[TeamsSubscription]:
    with svc.db.transaction() as session:
        return list(session.scalars(select(TeamsSubscription).order_by(TeamsSubscription.id)))


def audit_details(svc: Services, action: str) -> list[dict[str, Any]]:
    with svc.db.transaction() as session:
        rows = session.scalars(
            select(AuditEntry.details).where(AuditEntry.action == action).order_by(AuditEntry.seq)
        )
        return [dict(d or {}) for d in rows]


def checked_choice(page: str) -> str:
    found = re.findall(r'name="security_choice" value="(\w+)"[^>]*? checked', page)
    assert len(found) == 1, found
    return found[0]


def levels_value(page: str) -> str:
    tag = re.search(r'<input id="security_levels" name="security_levels"[^>]*>', page)
    assert tag, "no security_levels input"
    value = re.search(r' value="([^"]*)"', tag.group(0))
    assert value
    return html.unescape(value.group(1))


def add(admin: Browser, hook: str, **fields: str) -> Any:
    return post_form(
        admin,
        f"{T}/subscriptions",
        event_type="issue_created",
        webhook_id=hook,
        enabled="on",
        **fields,
    )


# -- the form ----------------------------------------------------------------------------------


def test_the_form_offers_none_by_default_with_the_warning_near_the_field(
    admin: Browser, svc: Services, people: People
) -> None:
    make_webhook(svc, people.acme.id, "#eng", HOOK_URL)
    form = admin.client.get(f"{T}/subscriptions/new").text
    assert "<legend>Security levels" in form
    assert "None (restricted issues are never posted)</label>" in form
    assert "These levels:</label>" in form
    assert "Any level</label>" in form
    assert checked_choice(form) == "none"
    # After the other filters, before the Enabled switch.
    assert form.index("<legend>Filters") < form.index("<legend>Security levels")
    assert form.index("<legend>Security levels") < form.index('name="enabled"')
    # In the page itself, not added by a script: shown without JavaScript.
    section = form[form.index("<legend>Security levels") : form.index('name="enabled"')]
    assert WARNING in section


def test_the_warning_is_hidden_only_while_none_is_chosen(admin: Browser) -> None:
    css = admin.client.get("/static/app.css").text
    assert (
        ".security-levels:has(input[name=security_choice][value=none]:checked) "
        ".security-warning { display: none; }"
    ) in css


def test_named_levels_round_trip_through_the_form_and_the_list(
    admin: Browser, svc: Services, people: People
) -> None:
    hook = make_webhook(svc, people.acme.id, "#eng", HOOK_URL)
    saved = add(admin, hook, security_choice="levels", security_levels="Staff only,\nDevelopers ")
    assert "Subscription saved" in flash_of(admin, saved)
    [subscription] = stored(svc)
    assert subscription.filters["security_levels"] == ["Staff only", "Developers"]
    [created] = audit_details(svc, "teams.subscription.created")
    assert created["security_levels"] == ["Staff only", "Developers"]

    listed = admin.client.get(f"{T}/subscriptions").text
    assert "Restricted: Staff only, Developers</span>" in listed

    form = admin.client.get(f"{T}/subscriptions/{subscription.id}/edit").text
    assert checked_choice(form) == "levels"
    assert levels_value(form) == "Staff only, Developers"

    # Edited to any level, then back to none: each change is in the audit log on its own.
    any_level = post_form(
        admin,
        f"{T}/subscriptions/{subscription.id}",
        event_type="issue_created",
        webhook_id=hook,
        enabled="on",
        security_choice="any",
        security_levels="",
    )
    assert any_level.status_code == 303
    assert stored(svc)[0].filters["security_levels"] == ["*"]
    assert "Restricted: any level</span>" in admin.client.get(f"{T}/subscriptions").text
    form = admin.client.get(f"{T}/subscriptions/{subscription.id}/edit").text
    assert checked_choice(form) == "any"
    assert levels_value(form) == ""

    none = post_form(
        admin,
        f"{T}/subscriptions/{subscription.id}",
        event_type="issue_created",
        webhook_id=hook,
        enabled="on",
        security_choice="none",
    )
    assert none.status_code == 303
    assert "security_levels" not in stored(svc)[0].filters
    assert "Restricted:" not in admin.client.get(f"{T}/subscriptions").text
    assert [d["security_levels"] for d in audit_details(svc, "teams.subscription.updated")] == [
        {"from": ["Staff only", "Developers"], "to": "any"},
        {"from": "any", "to": []},
    ]


def test_a_form_without_the_field_posts_no_restricted_issue(
    admin: Browser, svc: Services, people: People
) -> None:
    hook = make_webhook(svc, people.acme.id, "#eng", HOOK_URL)
    assert add(admin, hook).status_code == 303
    [subscription] = stored(svc)
    assert "security_levels" not in subscription.filters
    assert "Restricted:" not in admin.client.get(f"{T}/subscriptions").text


def test_choice_errors_appear_next_to_the_field_and_keep_what_was_typed(
    admin: Browser, svc: Services, people: People
) -> None:
    hook = make_webhook(svc, people.acme.id, "#eng", HOOK_URL)
    empty = add(admin, hook, security_choice="levels", security_levels=" , ")
    assert empty.status_code == 422
    assert (
        'id="security_levels-error">Enter the names of the security levels to post, '
        "or choose None.</small>"
    ) in empty.text
    assert 'aria-invalid="true" aria-describedby="security_levels-error"' in empty.text
    assert checked_choice(empty.text) == "levels"

    # Names typed with None still chosen are not an opt-in: refused, not silently dropped.
    forgot = add(admin, hook, security_choice="none", security_levels="Staff only")
    assert forgot.status_code == 422
    assert 'id="security_levels-error">To post issues of these levels, choose These levels' in (
        forgot.text
    )
    assert levels_value(forgot.text) == "Staff only"

    star = add(admin, hook, security_choice="levels", security_levels="*")
    assert star.status_code == 422
    assert re.search(
        r'id="security_levels-error">[^<]*is not a level name', html.unescape(star.text)
    )

    too_long = add(admin, hook, security_choice="levels", security_levels="x" * 300)
    assert too_long.status_code == 422
    assert 'id="security_levels-error">Each value must be at most 255 characters.' in (
        too_long.text
    )
    assert levels_value(too_long.text) == "x" * 300

    made_up = add(admin, hook, security_choice="some")
    assert made_up.status_code == 422
    assert 'id="security_levels-error">Choose None, These levels or Any level.</small>' in (
        made_up.text
    )
    # Another field's error and this one's are shown together.
    both = post_form(
        admin, f"{T}/subscriptions", event_type="", webhook_id=hook, security_choice="levels"
    )
    assert 'id="event_type-error">Select an event type.</small>' in both.text
    assert 'id="security_levels-error">' in both.text
    assert stored(svc) == []


def test_a_refused_edit_keeps_the_saved_levels(
    admin: Browser, svc: Services, people: People
) -> None:
    hook = make_webhook(svc, people.acme.id, "#eng", HOOK_URL)
    sub = make_subscription(svc, people.acme.id, hook, "issue_created")
    with svc.db.transaction() as session:
        row = session.get(TeamsSubscription, sub)
        assert row is not None
        row.filters = {**row.filters, "security_levels": ["Staff only"]}
    refused = post_form(
        admin,
        f"{T}/subscriptions/{sub}",
        event_type="issue_created",
        webhook_id=hook,
        security_choice="levels",
        security_levels="",
    )
    assert refused.status_code == 422
    assert stored(svc)[0].filters["security_levels"] == ["Staff only"]


# -- the event's page --------------------------------------------------------------------------


def restricted_issue_created(level: dict[str, str] | None = STAFF_ONLY) -> dict[str, Any]:
    """The captured issue-created payload with `fields.security` set (made here, not captured)."""
    body = copy.deepcopy(payload(ISSUE_CREATED))
    body["issue"]["fields"]["security"] = level
    return body


def latest_event(svc: Services) -> str:
    with svc.db.transaction() as session:
        found = session.scalar(
            select(JiraEventRecord.id).order_by(JiraEventRecord.received_at.desc()).limit(1)
        )
        assert found
        return found


def event_page(admin: Browser, svc: Services) -> str:
    """The event's page as its text reads (tags dropped, spaces folded)."""
    answer = admin.client.get(f"{T}/events/{latest_event(svc)}")
    assert answer.status_code == 200
    return " ".join(html.unescape(re.sub(r"<[^>]+>", " ", answer.text)).split())


def test_the_event_page_shows_the_level_and_why_it_was_withheld(
    admin: Browser, client: TestClient, svc: Services, people: People
) -> None:
    hook = make_webhook(svc, people.acme.id, "#eng", HOOK_URL)
    make_subscription(svc, people.acme.id, hook, "issue_created")
    allowed = make_subscription(svc, people.acme.id, hook, "issue_created")
    with svc.db.transaction() as session:
        row = session.get(TeamsSubscription, allowed)
        assert row is not None
        row.filters = {**row.filters, "security_levels": ["Developers"]}
    assert post_signed(client, people.acme, restricted_issue_created()).status_code == 202
    shown = event_page(admin, svc)
    assert "Security level: Staff only — from the event's payload." in shown
    assert f"issue TES-41 has the security level 'Staff only'; {NOT_RESTRICTED}" in shown
    assert (
        "issue TES-41 has the security level 'Staff only'; the subscription includes only "
        "[Developers]"
    ) in shown
    assert "0 subscriptions took this event when it arrived; 2 did not." in shown


def test_an_unrestricted_issue_says_so(
    admin: Browser, client: TestClient, svc: Services, people: People
) -> None:
    assert post_signed(client, people.acme, restricted_issue_created(None)).status_code == 202
    shown = event_page(admin, svc)
    assert "Security level: none — the issue is not restricted, from the event's payload." in shown


def test_a_comment_takes_the_level_an_earlier_event_showed(
    admin: Browser, client: TestClient, svc: Services, people: People
) -> None:
    hook = make_webhook(svc, people.acme.id, "#eng", HOOK_URL)
    make_subscription(svc, people.acme.id, hook, "comment_created")
    assert post_signed(client, people.acme, restricted_issue_created()).status_code == 202
    assert post_signed(client, people.acme, payload(COMMENT_CREATED)).status_code == 202
    shown = event_page(admin, svc)
    assert (
        "Security level: Staff only — remembered from an earlier event of the issue "
        "(Jira sent none with this one)."
    ) in shown
    assert NOT_RESTRICTED in shown


def test_an_unknown_level_shows_the_workspaces_rule(
    admin: Browser, client: TestClient, svc: Services, people: People
) -> None:
    hook = make_webhook(svc, people.acme.id, "#eng", HOOK_URL)
    make_subscription(svc, people.acme.id, hook, "comment_created")
    assert post_signed(client, people.acme, payload(COMMENT_CREATED)).status_code == 202
    shown = event_page(admin, svc)
    assert "Security level: not known — Jira sent none with this event" in shown
    assert "This workspace posts such comments as if the issue were unrestricted." in shown
    assert "Change this rule" in shown
    page = admin.client.get(f"{T}/events/{latest_event(svc)}").text
    assert f'<a href="{A}#jira">Change this rule</a>' in page
    assert "✔ Would match" in shown

    assert post_form(admin, f"{A}/jira/security", withhold_unknown_levels="on").status_code == 303
    shown = event_page(admin, svc)
    assert "This workspace withholds such comments: only subscriptions that allow any level" in (
        shown
    )
    assert "the security level of issue TES-41 is not known" in shown
    assert "the workspace withholds such comments" in shown


# -- the Jira card -----------------------------------------------------------------------------


def withholds(svc: Services, people: People) -> bool:
    with svc.db.transaction() as session:
        return bool(
            session.scalar(
                select(Workspace.withhold_unknown_security).where(Workspace.id == people.acme.id)
            )
        )


SWITCH = 'name="withhold_unknown_levels" value="on"'


def test_the_jira_card_saves_the_rule_with_an_audit_entry(
    admin: Browser, svc: Services, people: People
) -> None:
    card = admin.client.get(A).text
    assert "Withhold comments on issues whose security level is unknown</label>" in card
    assert 'id="withhold_unknown_levels-help">Jira Cloud sends comments without' in card
    assert re.search(SWITCH + r' aria-describedby="withhold_unknown_levels-help">', card)
    assert f'action="{A}/jira/security#jira"' in card

    on = post_form(admin, f"{A}/jira/security", withhold_unknown_levels="on")
    assert "Saved: comments on issues whose security level is unknown are withheld." in (
        flash_of(admin, on)
    )
    assert withholds(svc, people)
    assert re.search(SWITCH + r"[^>]* checked>", admin.client.get(A).text)

    # The switch off: the browser sends no field at all.
    off = post_form(admin, f"{A}/jira/security")
    assert "are posted." in flash_of(admin, off)
    assert not withholds(svc, people)
    assert not re.search(SWITCH + r"[^>]* checked>", admin.client.get(A).text)
    # Saving the same value again changes nothing and logs nothing.
    post_form(admin, f"{A}/jira/security")
    assert audit_details(svc, "jira.security.updated") == [
        {"withhold_unknown_levels": {"from": False, "to": True}},
        {"withhold_unknown_levels": {"from": True, "to": False}},
    ]
    with svc.db.transaction() as session:
        emails = session.scalars(
            select(AuditEntry.actor_email).where(AuditEntry.action == "jira.security.updated")
        ).all()
    assert set(emails) == {people.admin.email}
    audit_page = admin.client.get("/w/acme/security/audit-log").text
    assert "Rule for unknown security levels changed" in audit_page


def test_the_jira_card_swaps_in_place_with_htmx(
    admin: Browser, svc: Services, people: People
) -> None:
    card = htmx(admin, "POST", f"{A}/jira/security", withhold_unknown_levels="on")
    assert card.status_code == 200
    assert card.text.lstrip().startswith('<article class="integration" id="jira">')
    assert "<html" not in card.text
    assert re.search(SWITCH + r"[^>]* checked>", card.text)
    assert withholds(svc, people)


def test_the_rule_needs_the_csrf_token_and_an_administrator(
    admin: Browser, svc: Services, people: People
) -> None:
    forged = admin.client.post(
        f"{A}/jira/security", data={"withhold_unknown_levels": "on"}, follow_redirects=False
    )
    assert forged.status_code == 403
    assert not withholds(svc, people)
    # globex is a workspace where the same person is only a member.
    other = post_form(
        admin, "/w/globex/admin/integrations/jira/security", withhold_unknown_levels="on"
    )
    assert other.status_code == 403
    assert audit_details(svc, "jira.security.updated") == []
