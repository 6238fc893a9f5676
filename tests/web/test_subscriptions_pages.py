"""The Subscriptions tab: Add Subscription with the guide's fields, filters as comma lists."""

from __future__ import annotations

import re

from sqlalchemy import select

from tests.support.teams import event, make_subscription, make_webhook, store_and_route
from tests.web.conftest import Browser, People, flash_of, htmx, post_form
from ticketmate.models import TeamsSubscription
from ticketmate.state import Services

T = "/w/acme/admin/integrations/teams"
HOOK_URL = "http://127.0.0.1:9/workflows/eng"
LABELS = [
    "Issue Created",
    "Issue Updated",
    "Status Changed",
    "Issue Assigned",
    "Priority Changed",
    "Issue Deleted",
    "Comment Added",
    "Comment Updated",
    "Comment Deleted",
]
NO_FILTERS = {"projects": "", "issue_types": "", "statuses": "", "priorities": ""}


def subscriptions(svc: Services) -> list[TeamsSubscription]:
    with svc.db.transaction() as session:
        return list(session.scalars(select(TeamsSubscription).order_by(TeamsSubscription.id)))


def test_without_a_webhook_the_tab_points_to_the_webhooks_tab(admin: Browser) -> None:
    page = admin.client.get(f"{T}/subscriptions").text
    assert "Add a webhook in the" in page
    assert "Add Subscription</a>" not in page


def test_add_subscription_form_has_the_guide_fields(
    admin: Browser, svc: Services, people: People
) -> None:
    make_webhook(svc, people.acme.id, "#eng", HOOK_URL)
    tab = admin.client.get(f"{T}/subscriptions").text
    assert f'<a href="{T}/subscriptions/new" role="button">Add Subscription</a>' in tab
    form = admin.client.get(f"{T}/subscriptions/new").text
    assert '<label for="event_type">Event Type</label>' in form
    assert '<label for="webhook_id">Webhook</label>' in form
    assert "<legend>Filters" in form
    for name, label in (
        ("projects", "Project"),
        ("issue_types", "Issue Type"),
        ("statuses", "Status"),
        ("priorities", "Priority"),
        ("labels", "Labels"),
        ("components", "Components"),
    ):
        assert f'<label for="{name}">{label}</label>' in form
    options = re.findall(r'<option value="[a-z_]+"(?: selected)?>([^<]+)</option>', form)
    assert options[: len(LABELS)] == LABELS
    assert ">#eng</option>" in form
    assert 'role="switch" name="enabled" value="on" checked> Enabled' in form
    assert ">Save</button>" in form


def test_save_with_comma_separated_filters(admin: Browser, svc: Services, people: People) -> None:
    hook = make_webhook(svc, people.acme.id, "#eng", HOOK_URL)
    saved = post_form(
        admin,
        f"{T}/subscriptions",
        event_type="status_changed",
        webhook_id=hook,
        enabled="on",
        projects="DEMO, OPS,",
        issue_types="Bug",
        statuses=" Done ",
        priorities="",
        labels="customer, urgent",
        components="",
    )
    assert "Subscription saved: Status Changed events go to “#eng”." in flash_of(admin, saved)
    [subscription] = subscriptions(svc)
    assert subscription.enabled
    assert subscription.filters == {
        "projects": ["DEMO", "OPS"],
        "issue_types": ["Bug"],
        "statuses": ["Done"],
        "priorities": [],
        "labels": ["customer", "urgent"],
        "components": [],
    }
    row = admin.client.get(f"{T}/subscriptions").text
    assert "<td>Status Changed</td>" in row
    assert "<small>Project:</small> DEMO, OPS" in row
    assert "<small>Labels:</small> customer, urgent" in row


def test_errors_appear_next_to_the_fields(admin: Browser, svc: Services, people: People) -> None:
    make_webhook(svc, people.acme.id, "#eng", HOOK_URL)
    missing = post_form(admin, f"{T}/subscriptions", event_type="", webhook_id="nope", **NO_FILTERS)
    assert missing.status_code == 422
    assert 'id="event_type-error">Select an event type.</small>' in missing.text
    assert 'aria-invalid="true" aria-describedby="event_type-error"' in missing.text
    unknown_hook = post_form(
        admin, f"{T}/subscriptions", event_type="issue_created", webhook_id="nope", **NO_FILTERS
    )
    assert unknown_hook.status_code == 422
    assert re.search(r'id="webhook_id-error">[^<]*no webhook with this id', unknown_hook.text)
    too_long = post_form(
        admin,
        f"{T}/subscriptions",
        event_type="issue_created",
        webhook_id="nope",
        projects="x" * 300,
    )
    assert 'id="projects-error">' in too_long.text
    assert 'value="' + "x" * 300 + '"' in too_long.text  # the typed value stays
    assert subscriptions(svc) == []


def test_edit_is_prefilled_and_saves(admin: Browser, svc: Services, people: People) -> None:
    hook = make_webhook(svc, people.acme.id, "#eng", HOOK_URL)
    other = make_webhook(svc, people.acme.id, "#ops", "http://127.0.0.1:9/workflows/ops")
    sub = make_subscription(svc, people.acme.id, hook, "issue_created", projects=["DEMO", "OPS"])
    form = admin.client.get(f"{T}/subscriptions/{sub}/edit").text
    assert '<option value="issue_created" selected>Issue Created</option>' in form
    assert f'<option value="{hook}" selected>#eng</option>' in form
    assert 'value="DEMO, OPS"' in form
    saved = post_form(
        admin,
        f"{T}/subscriptions/{sub}",
        event_type="comment_created",
        webhook_id=other,
        projects="DEMO",
    )
    assert saved.status_code == 303
    [after] = subscriptions(svc)
    assert (after.event_type, after.webhook_id, after.enabled) == ("comment_created", other, False)
    assert after.filters["projects"] == ["DEMO"]


def test_enabled_switch_and_delete_with_confirmation(
    admin: Browser, svc: Services, people: People
) -> None:
    hook = make_webhook(svc, people.acme.id, "#eng", HOOK_URL)
    sub = make_subscription(svc, people.acme.id, hook, "issue_created")
    off = htmx(admin, "POST", f"{T}/subscriptions/{sub}/enabled")
    assert "checked" not in off.text
    assert [s.enabled for s in subscriptions(svc)] == [False]

    tab = admin.client.get(f"{T}/subscriptions").text
    assert 'data-confirm="Delete this subscription? Issue Created events' in tab
    # Without JavaScript no dialog ran: the server asks on a page instead of deleting.
    asked = post_form(admin, f"{T}/subscriptions/{sub}/delete")
    assert asked.status_code == 200
    assert "Delete this subscription?" in asked.text
    assert len(subscriptions(svc)) == 1
    done = post_form(admin, f"{T}/subscriptions/{sub}/delete", confirmed="1")
    assert "Subscription deleted" in flash_of(admin, done)
    assert subscriptions(svc) == []


def test_filter_suggestions_come_from_received_events(
    admin: Browser, svc: Services, people: People
) -> None:
    make_webhook(svc, people.acme.id, "#eng", HOOK_URL)
    store_and_route(svc, people.acme.id, event(["issue_created"], project="DEMO", labels=["vip"]))
    store_and_route(svc, people.acme.id, event(["issue_created"], project="OPS"))
    form = admin.client.get(f"{T}/subscriptions/new").text
    projects = re.search(r'<datalist id="suggest-projects">(.*?)</datalist>', form)
    assert projects
    assert projects.group(1) == '<option value="DEMO"><option value="OPS">'
    assert '<datalist id="suggest-labels"><option value="vip"></datalist>' in form
    assert 'list="suggest-projects"' in form
