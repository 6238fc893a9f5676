"""Retired and retiring URL families in the admin pages: the family on each webhook, the
warnings on the Teams page and the Integrations card, and Replace URL's Test-then-Save with
"Save anyway" (without JavaScript: forms post and come back)."""

from __future__ import annotations

import html

from sqlalchemy import select, update

from tests.security import webhook_urls as U
from tests.support.teams import ADMIN, make_webhook
from tests.web.conftest import Browser, People, flash_of, post_form
from ticketmate.dev.teams_sink import Answer, TeamsSink
from ticketmate.models import AuditEntry, TeamsWebhook
from ticketmate.state import Services
from ticketmate.teams import webhooks as service

T = "/w/acme/admin/integrations/teams"
ADVICE = "Create a Workflows webhook in the channel and replace the URL here."
PATH = "/workflows/Repl4cementSecretPath/triggers/manual/paths/invoke"
SIG = "Repl4cementSig"


def add(svc: Services, workspace_id: str, channel_name: str, url: str) -> str:
    with svc.db.transaction() as session:
        return service.create_webhook(
            session,
            svc.keyring,
            workspace_id,
            service.WebhookCreate(channel_name=channel_name, url=url),
            allow_loopback=True,
            actor=ADMIN,
        ).id


def stored(svc: Services, webhook_id: str) -> TeamsWebhook:
    with svc.db.transaction() as session:
        found = session.get(TeamsWebhook, webhook_id)
        assert found is not None
        return found


def text_of(page: str) -> str:
    return html.unescape(page)


def test_each_webhook_shows_its_family_and_the_tab_warns_about_retired_ones(
    admin: Browser, svc: Services, people: People, sink: TeamsSink
) -> None:
    add(svc, people.acme.id, "#current", U.POWER_PLATFORM)
    add(svc, people.acme.id, "#local", sink.url("/workflows/local"))
    clean = text_of(admin.client.get(f"{T}/webhooks").text)
    assert "Workflows (powerplatform.com)" in clean
    assert "Local stand-in (loopback)" in clean
    assert 'id="url-warnings"' not in clean
    assert "30 November 2025" not in clean

    retired = add(svc, people.acme.id, "#retired", U.LOGIC_APPS)
    add(svc, people.acme.id, "#connector", U.CONNECTOR)
    add(svc, people.acme.id, "#outlook", U.OUTLOOK_CONNECTOR)
    tab = text_of(admin.client.get(f"{T}/webhooks").text)
    assert 'id="url-warnings"' in tab
    assert "Some webhooks use URLs that Microsoft has retired or is retiring." in tab
    assert "1 webhook: Workflows on logic.azure.com (retired)." in tab
    assert "2 webhooks: Office 365 connector (retiring)." in tab
    assert "Microsoft stopped honouring Workflows URLs on logic.azure.com on 30 November" in tab
    assert "Microsoft is retiring Office 365 connectors during 2026" in tab
    assert ADVICE in tab
    # The retired webhook's row names its family and links to its edit form.
    row = tab.split(f'<tr id="webhook-{retired}">')[1].split("</tr>")[0]
    assert "Workflows on logic.azure.com (retired)" in row
    assert f'href="{T}/webhooks/{retired}/edit">replace it</a>' in row
    assert "Retired URL" in row


def test_the_edit_form_shows_the_family_and_the_warning(
    admin: Browser, svc: Services, people: People, sink: TeamsSink
) -> None:
    retired = add(svc, people.acme.id, "#retired", U.LOGIC_APPS)
    form = text_of(admin.client.get(f"{T}/webhooks/{retired}/edit").text)
    assert "URL family: Workflows on logic.azure.com (retired)" in form
    assert '<p class="url-warning" role="note" id="url-warning">' in form
    assert "30 November 2025" in form
    assert ADVICE in form
    assert "Save anyway" not in form  # offered only after a failed test

    current = add(svc, people.acme.id, "#current", sink.url("/workflows/current"))
    calm = text_of(admin.client.get(f"{T}/webhooks/{current}/edit").text)
    assert "URL family: Local stand-in (loopback)" in calm
    assert 'id="url-warning"' not in calm


def test_the_integrations_card_warns_with_the_count(
    admin: Browser, svc: Services, people: People
) -> None:
    add(svc, people.acme.id, "#current", U.POWER_PLATFORM)
    card = text_of(admin.client.get(admin.base).text)
    assert 'id="teams-url-warning"' not in card
    add(svc, people.acme.id, "#retired", U.LOGIC_APPS)
    add(svc, people.acme.id, "#connector", U.CONNECTOR_V2)
    # Another workspace's webhooks do not count here.
    add(svc, people.globex.id, "#elsewhere", U.LOGIC_APPS)
    card = text_of(admin.client.get(admin.base).text)
    assert 'id="teams-url-warning"' in card
    assert "2 webhooks use URLs that Microsoft has retired or is retiring" in card
    assert "1 Office 365 connector (retiring), 1 Workflows on logic.azure.com (retired)" in card
    assert ADVICE.removesuffix(".") in card


def test_replace_url_is_tested_then_saved(
    admin: Browser, svc: Services, people: People, sink: TeamsSink
) -> None:
    retired = add(svc, people.acme.id, "#retired", U.LOGIC_APPS)
    url = sink.url(f"{PATH}?sig={SIG}")
    saved = post_form(
        admin, f"{T}/webhooks/{retired}", channel_name="#retired", replace_url=url, enabled="on"
    )
    assert "Teams accepted the sample card at the new URL." in flash_of(admin, saved)
    assert len(sink.received(PATH)) == 1
    assert stored(svc, retired).url_family == "loopback"
    tab = text_of(admin.client.get(f"{T}/webhooks").text)
    assert 'id="url-warnings"' not in tab


def test_a_failed_test_keeps_the_saved_url_and_offers_save_anyway(
    admin: Browser, svc: Services, people: People, sink: TeamsSink
) -> None:
    retired = add(svc, people.acme.id, "#retired", U.LOGIC_APPS)
    before = stored(svc, retired)
    url = sink.url(f"{PATH}?sig={SIG}")
    sink.set_default(PATH, Answer(404, "No flow at $url", echo=True))
    refused = post_form(
        admin, f"{T}/webhooks/{retired}", channel_name="#retired", replace_url=url, enabled="on"
    )
    assert refused.status_code == 422
    page = text_of(refused.text)
    assert '<p class="test-result fail" role="status">' in page
    assert "Connection failed." in page
    assert "Teams answered 404" in page
    assert "so the saved URL was kept" in page
    assert 'name="save_untested" value="1">Save anyway</button>' in page
    # The typed URL comes back only in the (password) field, never as text.
    assert page.count(PATH) == 1
    assert f'type="password" value="{url}"' in page
    assert stored(svc, retired).url_digest == before.url_digest

    anyway = post_form(
        admin,
        f"{T}/webhooks/{retired}",
        channel_name="#retired",
        replace_url=url,
        enabled="on",
        save_untested="1",
    )
    assert "saved without a test" in flash_of(admin, anyway)
    assert len(sink.received(PATH)) == 1  # no second card
    after = stored(svc, retired)
    assert after.url_digest != before.url_digest
    assert after.url_family == "loopback"
    with svc.db.transaction() as session:
        details = list(
            session.scalars(
                select(AuditEntry.details).where(AuditEntry.action == "teams.webhook.updated")
            )
        )
    assert details == [
        {
            "url_changed": True,
            "url_family": {"from": "logic_apps", "to": "loopback"},
            "url_tested": False,
        }
    ]


def test_a_family_set_in_the_database_is_what_the_pages_show(
    admin: Browser, svc: Services, people: People, sink: TeamsSink
) -> None:
    # As migration 0007 leaves rows: the family column decides, not the URL.
    hook = make_webhook(svc, people.acme.id, "#eng", sink.url("/workflows/eng"))
    with svc.db.transaction() as session:
        session.execute(
            update(TeamsWebhook).where(TeamsWebhook.id == hook).values(url_family="connector")
        )
    tab = text_of(admin.client.get(f"{T}/webhooks").text)
    assert "1 webhook: Office 365 connector (retiring)." in tab
