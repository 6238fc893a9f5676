"""The Webhooks tab: Add Webhook with Test Connection, the masked URL, edit, switch, delete."""

from __future__ import annotations

import re

from sqlalchemy import select

from tests.support.teams import make_subscription, make_webhook
from tests.web.conftest import Browser, People, flash_of, htmx, post_form
from ticketmate.dev.teams_sink import Answer, TeamsSink
from ticketmate.models import AuditEntry, TeamsSubscription, TeamsWebhook
from ticketmate.state import Services

T = "/w/acme/admin/integrations/teams"
SECRET_QUERY = "api-version=1&sp=%2Ftriggers&sv=1.0&sig=Zm9vYmFyYmF6cXV4"


def field_error(page: str, name: str) -> str:
    """The error shown right after the field `name` (aria-invalid, then the message)."""
    found = re.search(
        rf'<input id="{name}"[^>]*aria-invalid="true"[^>]*>\s*'
        rf'<small class="field-error" id="{name}-error">([^<]*)</small>',
        page,
    )
    assert found, f"no error next to {name}"
    return found.group(1)


def webhooks(svc: Services) -> list[TeamsWebhook]:
    with svc.db.transaction() as session:
        return list(session.scalars(select(TeamsWebhook).order_by(TeamsWebhook.id)))


def actions(svc: Services) -> list[str]:
    with svc.db.transaction() as session:
        return list(session.scalars(select(AuditEntry.action).order_by(AuditEntry.id)))


def test_add_webhook_form_has_the_guide_fields_and_help(admin: Browser) -> None:
    tab = admin.client.get(f"{T}/webhooks").text
    assert f'<a href="{T}/webhooks/new" role="button">Add Webhook</a>' in tab
    for label in ("Webhooks", "Subscriptions", "Delivery Log"):
        assert f">{label}</a>" in tab
    form = admin.client.get(f"{T}/webhooks/new").text
    assert '<label for="channel_name">Channel Name</label>' in form
    assert '<label for="url">Webhook URL</label>' in form
    assert 'role="switch" name="enabled" value="on" checked> Enabled' in form
    assert ">Test Connection</button>" in form
    assert ">Save</button>" in form
    assert "Post to a channel when a webhook request is received" in form
    assert "<strong>legacy</strong>" in form
    assert "may stop working" in form


def test_save_shows_only_the_masked_url(
    admin: Browser, svc: Services, people: People, sink: TeamsSink
) -> None:
    url = sink.url("/workflows/eng?" + SECRET_QUERY)
    saved = post_form(
        admin, f"{T}/webhooks", channel_name="#engineering-alerts", url=url, enabled="on"
    )
    assert saved.status_code == 303
    assert saved.headers["location"] == f"{T}/webhooks"
    assert "Webhook “#engineering-alerts” saved." in flash_of(admin, saved)
    [webhook] = webhooks(svc)
    assert webhook.enabled
    for path in (f"{T}/webhooks", f"{T}/webhooks/{webhook.id}/edit", f"{T}/subscriptions/new"):
        page = admin.client.get(path).text
        assert "Zm9vYmFyYmF6cXV4" not in page, path
        assert "/workflows/eng" not in page, path
    table = admin.client.get(f"{T}/webhooks").text
    assert f'<code class="masked">{webhook.url_masked}</code>' in table
    assert webhook.url_masked.startswith("http://127.0.0.1:")
    assert "<td>Workflows</td>" in table
    # The message is shown once.
    assert "saved." not in admin.client.get(f"{T}/webhooks").text


def test_unticked_enabled_saves_a_disabled_webhook(
    admin: Browser, svc: Services, sink: TeamsSink
) -> None:
    post_form(admin, f"{T}/webhooks", channel_name="#quiet", url=sink.url("/workflows/q"))
    assert [w.enabled for w in webhooks(svc)] == [False]


def test_errors_appear_next_to_their_fields_and_the_form_keeps_its_values(
    admin: Browser, svc: Services, people: People, sink: TeamsSink
) -> None:
    empty = post_form(admin, f"{T}/webhooks", channel_name="  ", url="", enabled="on")
    assert empty.status_code == 422
    assert field_error(empty.text, "channel_name") == "Must be 1 to 100 characters."
    assert field_error(empty.text, "url")

    bad_url = post_form(admin, f"{T}/webhooks", channel_name="#eng", url="https://example.com/x")
    assert bad_url.status_code == 422
    assert "Teams" in field_error(bad_url.text, "url")
    assert 'value="#eng"' in bad_url.text

    make_webhook(svc, people.acme.id, "#eng", sink.url("/workflows/first"))
    taken = post_form(admin, f"{T}/webhooks", channel_name="#ENG", url=sink.url("/workflows/b"))
    assert taken.status_code == 409
    assert "already exists" in field_error(taken.text, "channel_name")
    assert len(webhooks(svc)) == 1


def test_test_connection_with_htmx_shows_a_green_or_red_result_inline(
    admin: Browser, svc: Services, sink: TeamsSink
) -> None:
    ok = htmx(
        admin, "POST", f"{T}/webhooks/test", channel_name="#eng", url=sink.url("/workflows/t")
    )
    assert ok.status_code == 200
    assert '<p class="test-result ok" role="status">' in ok.text
    assert "Connection works." in ok.text
    assert "(HTTP 202," in ok.text
    assert sink.received("/workflows/t")[0].json()["type"] == "message"

    sink.set_default("/workflows/gone", Answer(404, ""))
    failed = htmx(admin, "POST", f"{T}/webhooks/test", url=sink.url("/workflows/gone"))
    assert '<p class="test-result fail" role="status">' in failed.text
    assert "Connection failed." in failed.text

    invalid = htmx(admin, "POST", f"{T}/webhooks/test", url="ftp://example.com/x")
    assert '<p class="test-result fail"' in invalid.text
    empty = htmx(admin, "POST", f"{T}/webhooks/test", url="")
    assert "Enter the Webhook URL first" in empty.text
    # The API's own test code ran: each real test is audit-logged, nothing was saved.
    assert actions(svc).count("teams.webhook.tested") == 2
    assert webhooks(svc) == []


def test_test_connection_without_javascript_returns_the_form_with_the_result(
    admin: Browser, sink: TeamsSink
) -> None:
    url = sink.url("/workflows/t")
    page = post_form(admin, f"{T}/webhooks/test", channel_name="#eng", url=url, enabled="on")
    assert page.status_code == 200
    assert "Connection works." in page.text
    assert 'value="#eng"' in page.text
    assert "<h2>Add Webhook</h2>" in page.text


def test_edit_form_has_an_empty_replace_url_field(
    admin: Browser, svc: Services, people: People, sink: TeamsSink
) -> None:
    hook = make_webhook(svc, people.acme.id, "#eng", sink.url("/workflows/old?" + SECRET_QUERY))
    [before] = webhooks(svc)
    form = admin.client.get(f"{T}/webhooks/{hook}/edit").text
    assert '<label for="replace_url">Replace URL</label>' in form
    assert re.search(r'<input id="replace_url" name="replace_url" type="password" value=""', form)
    assert before.url_masked in form

    kept = post_form(admin, f"{T}/webhooks/{hook}", channel_name="#eng-renamed", enabled="on")
    assert kept.status_code == 303
    [after] = webhooks(svc)
    assert after.channel_name == "#eng-renamed"
    assert after.url_digest == before.url_digest

    replaced = post_form(
        admin,
        f"{T}/webhooks/{hook}",
        channel_name="#eng-renamed",
        replace_url=sink.url("/workflows/new"),
    )
    assert replaced.status_code == 303
    [after] = webhooks(svc)
    assert after.url_digest != before.url_digest
    assert after.enabled is False  # the switch was left off

    wrong = post_form(admin, f"{T}/webhooks/{hook}", channel_name="#x", replace_url="nonsense")
    assert wrong.status_code == 422
    assert field_error(wrong.text, "replace_url")


def test_test_connection_of_a_saved_webhook(
    admin: Browser, svc: Services, people: People, sink: TeamsSink
) -> None:
    hook = make_webhook(svc, people.acme.id, "#eng", sink.url("/workflows/saved"))
    inline = htmx(admin, "POST", f"{T}/webhooks/{hook}/test")
    assert "Connection works." in inline.text
    sink.set_default("/workflows/saved", Answer(410, "Gone"))
    from_list = post_form(admin, f"{T}/webhooks/{hook}/test", origin="list")
    message = flash_of(admin, from_list)
    assert message.startswith("Test of “#eng”:")
    table = admin.client.get(f"{T}/webhooks").text
    assert "Last error: <time" in table
    assert len(sink.received("/workflows/saved")) == 2


def test_enabled_switch_saves_on_change(
    admin: Browser, svc: Services, people: People, sink: TeamsSink
) -> None:
    hook = make_webhook(svc, people.acme.id, "#eng", sink.url("/workflows/x"))
    off = htmx(admin, "POST", f"{T}/webhooks/{hook}/enabled")
    assert off.status_code == 200
    assert "checked" not in off.text
    assert [w.enabled for w in webhooks(svc)] == [False]
    on = post_form(admin, f"{T}/webhooks/{hook}/enabled", enabled="on")
    assert "Webhook “#eng” enabled." in flash_of(admin, on)
    assert [w.enabled for w in webhooks(svc)] == [True]


def test_delete_confirmation_names_the_subscriptions_that_go_too(
    admin: Browser, svc: Services, people: People, sink: TeamsSink
) -> None:
    hook = make_webhook(svc, people.acme.id, "#eng", sink.url("/workflows/x"))
    make_subscription(svc, people.acme.id, hook, "issue_created", projects=["DEMO"])
    make_subscription(svc, people.acme.id, hook, "status_changed", statuses=["Done"])
    table = admin.client.get(f"{T}/webhooks").text
    assert f'href="{T}/webhooks/{hook}/delete"' in table
    confirm = admin.client.get(f"{T}/webhooks/{hook}/delete").text
    assert "Delete the webhook “#eng”?" in confirm
    assert "These 2 subscriptions use it and will be deleted with it:" in confirm
    assert "<li>Issue Created · Project: DEMO</li>" in confirm
    assert "<li>Status Changed · Status: Done</li>" in confirm
    assert "Delete webhook and 2 subscriptions" in confirm

    done = post_form(admin, f"{T}/webhooks/{hook}/delete")
    assert "Webhook “#eng” deleted with its 2 subscription(s)." in flash_of(admin, done)
    assert webhooks(svc) == []
    with svc.db.transaction() as session:
        assert session.scalars(select(TeamsSubscription)).all() == []
    assert actions(svc)[-1] == "teams.webhook.deleted"


def test_another_workspaces_webhook_is_not_found(
    admin: Browser, svc: Services, people: People, sink: TeamsSink
) -> None:
    theirs = make_webhook(svc, people.globex.id, "#theirs", sink.url("/workflows/g"))
    assert admin.client.get(f"{T}/webhooks/{theirs}/edit").status_code == 404
    assert admin.client.get(f"{T}/webhooks/{theirs}/delete").status_code == 404
    assert post_form(admin, f"{T}/webhooks/{theirs}/delete").status_code == 404
    assert len(webhooks(svc)) == 1
