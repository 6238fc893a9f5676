"""The Jira card's base URL form: what Open in Jira links are pinned to, with and without JS."""

from __future__ import annotations

import html

from sqlalchemy import select

from tests.jira.support import payload, post_signed
from tests.web.conftest import Browser, People, flash_of, htmx, post_form
from ticketmate.models import AuditEntry, Workspace
from ticketmate.state import Services

A = "/w/acme/admin/integrations"
SITE = "https://some-instance-test.atlassian.net"  # the fixture payload's own site
CREATED = "mattermost_mattermost-plugin-jira__issue-created.json"
FIELD = 'name="jira_base_url"'


def pinned(svc: Services, people: People) -> str | None:
    with svc.db.transaction() as session:
        return session.scalar(select(Workspace.jira_base_url).where(Workspace.id == people.acme.id))


def site_actions(svc: Services) -> list[tuple[str, str | None]]:
    with svc.db.transaction() as session:
        rows = session.execute(
            select(AuditEntry.action, AuditEntry.actor_email)
            .where(AuditEntry.action.like("jira.base_url.%"))
            .order_by(AuditEntry.seq)
        )
        return [(action, email) for action, email in rows]


def field_value(page: str) -> str:
    start = page.index(FIELD)
    tag = page[page.rindex("<input", 0, start) : page.index(">", start)]
    return html.unescape(tag.split(' value="', 1)[1].split('"', 1)[0])


def test_the_card_says_the_site_is_not_known_until_a_signed_event_teaches_it(
    admin: Browser, svc: Services, people: People
) -> None:
    page = admin.client.get(A).text
    assert FIELD in page
    assert field_value(page) == ""
    assert "Not known yet: the first event signed with the secret sets it." in page
    assert f'action="{A}/jira/base-url#jira"' in page

    response = post_signed(admin.client, people.acme, payload(CREATED))
    assert response.status_code == 202, response.text
    page = admin.client.get(A).text
    assert field_value(page) == SITE
    assert f"Open in Jira links go only to {SITE};" in page


def test_saving_without_javascript_sets_changes_and_clears_it(
    admin: Browser, svc: Services, people: People
) -> None:
    done = post_form(admin, f"{A}/jira/base-url", jira_base_url=" https://Jira.Acme.test/jira/ ")
    assert "Open in Jira links go only to https://jira.acme.test/jira." in flash_of(admin, done)
    assert done.headers["location"] == f"{A}#jira"
    assert pinned(svc, people) == "https://jira.acme.test/jira"
    assert field_value(admin.client.get(A).text) == "https://jira.acme.test/jira"

    post_form(admin, f"{A}/jira/base-url", jira_base_url=SITE)
    assert pinned(svc, people) == SITE
    cleared = post_form(admin, f"{A}/jira/base-url", jira_base_url="")
    assert "the next event signed with the secret sets it again" in flash_of(admin, cleared)
    assert pinned(svc, people) is None
    assert site_actions(svc) == [
        ("jira.base_url.set", people.admin.email),
        ("jira.base_url.set", people.admin.email),
        ("jira.base_url.cleared", people.admin.email),
    ]


def test_a_base_url_that_is_not_a_site_is_shown_back_with_the_reason(
    admin: Browser, svc: Services, people: People
) -> None:
    typed = 'https://evil.test"><img src=x onerror=alert(1)>'
    refused = post_form(admin, f"{A}/jira/base-url", jira_base_url=typed)
    assert refused.status_code == 422
    page = refused.text
    assert '<img src=x onerror=alert(1)>"' not in page  # escaped where it is shown back
    assert field_value(page) == typed
    assert 'aria-invalid="true"' in page
    assert "may not hold spaces, quotes, angle brackets" in page
    assert '<article class="integration" id="teams">' in page  # the whole page, not a piece

    refused = post_form(admin, f"{A}/jira/base-url", jira_base_url="https://admin@jira.acme.test")
    assert refused.status_code == 422
    assert "must not carry a user name or password" in refused.text
    assert pinned(svc, people) is None
    assert site_actions(svc) == []


def test_htmx_swaps_the_card_in_place(admin: Browser, svc: Services, people: People) -> None:
    page = admin.client.get(A).text
    assert f'hx-post="{A}/jira/base-url" hx-target="#jira" hx-swap="outerHTML"' in page
    card = htmx(admin, "POST", f"{A}/jira/base-url", jira_base_url=SITE)
    assert card.status_code == 200
    assert card.headers["cache-control"] == "no-store"
    assert card.text.lstrip().startswith('<article class="integration" id="jira">')
    assert "<html" not in card.text
    assert f"Jira base URL saved: Open in Jira links go only to {SITE}." in card.text
    assert field_value(card.text) == SITE
    assert pinned(svc, people) == SITE

    refused = htmx(admin, "POST", f"{A}/jira/base-url", jira_base_url="ftp://jira.acme.test")
    assert refused.status_code == 422
    assert "<html" not in refused.text
    assert "must start with https://" in refused.text
    assert field_value(refused.text) == "ftp://jira.acme.test"
    assert pinned(svc, people) == SITE


def test_saving_needs_the_csrf_token_and_an_administrator(
    admin: Browser, svc: Services, people: People
) -> None:
    forged = admin.client.post(
        f"{A}/jira/base-url", data={"jira_base_url": SITE}, follow_redirects=False
    )
    assert forged.status_code == 403
    assert pinned(svc, people) is None
    # globex is a workspace where the same person is only a member.
    other = post_form(admin, "/w/globex/admin/integrations/jira/base-url", jira_base_url=SITE)
    assert other.status_code == 403
    with svc.db.transaction() as session:
        assert (
            session.scalar(select(Workspace.jira_base_url).where(Workspace.id == people.globex.id))
            is None
        )
