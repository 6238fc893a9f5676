"""Grouping in the admin UI: combining updates and digests on Add/Edit Subscription and in the
Subscriptions list, storm control in the Webhooks list, and the Delivery Log's words for
combined cards, digests and held deliveries."""

from __future__ import annotations

import html
import json
import re
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import select

from tests.support.teams import (
    deliveries,
    drain,
    event,
    make_subscription,
    make_webhook,
    store_and_route,
)
from tests.web.conftest import Browser, People, flash_of, htmx, post_form
from ticketmate.dev.teams_sink import TeamsSink
from ticketmate.models import IntegrationDelivery, TeamsSubscription, TeamsWebhook
from ticketmate.state import Services
from ticketmate.teams import api as teams_api
from ticketmate.teams.digest_schedule import COMBINE_WINDOWS, parse_schedule
from ticketmate.teams.subscriptions import SubscriptionView
from ticketmate.timeutil import rfc3339
from ticketmate.web import teams_views

T = "/w/acme/admin/integrations/teams"
HOOK_URL = "http://127.0.0.1:9/workflows/eng"
BERLIN = "daily@09:00/Europe/Berlin"


def subscriptions(svc: Services) -> list[TeamsSubscription]:
    with svc.db.transaction() as session:
        return list(session.scalars(select(TeamsSubscription).order_by(TeamsSubscription.id)))


def grouping_of(svc: Services) -> list[tuple[int | None, str | None]]:
    return [(s.combine_seconds, s.digest) for s in subscriptions(svc)]


def new_form(webhook_id: str, **fields: str) -> dict[str, str]:
    return {"event_type": "issue_updated", "webhook_id": webhook_id, "enabled": "on", **fields}


def selected_combine(page: str) -> list[str]:
    found = re.search(r'<select id="combine" name="combine"[^>]*>(.*?)</select>', page, re.S)
    assert found, "no combining select"
    return re.findall(r'<option value="([^"]+)" selected>', found.group(1))


def checked_digest(page: str) -> list[str]:
    return re.findall(r'name="digest_choice" value="(\w+)"[^>]*? checked', page)


def input_tag(page: str, name: str) -> str:
    found = re.search(rf'<input id="{name}"[^>]*>', page)
    assert found, f"no input {name}"
    return found.group(0)


def error_of(page: str, name: str) -> str:
    """The error message of field `name`; the field itself is marked invalid and names it."""
    assert f'aria-invalid="true" aria-describedby="{name}-error"' in page, name
    found = re.search(rf'<small class="field-error" id="{name}-error">([^<]*)</small>', page)
    assert found, f"no error for {name}"
    return html.unescape(found.group(1))


# -- Add/Edit Subscription ------------------------------------------------------------------


def test_the_form_offers_combining_and_digests_both_off(
    admin: Browser, svc: Services, people: People
) -> None:
    make_webhook(svc, people.acme.id, "#eng", HOOK_URL)
    form = admin.client.get(f"{T}/subscriptions/new").text
    assert '<label for="combine">Combine updates to the same issue within</label>' in form
    options = re.search(r'<select id="combine".*?</select>', form, re.S)
    assert options
    assert re.findall(r">([^<]+)</option>", options.group(0)) == [
        "Off",
        "10 s",
        "30 s",
        "1 min",
        "5 min",
    ]
    assert selected_combine(form) == ["off"]
    assert "<legend>Send as a digest</legend>" in form
    assert checked_digest(form) == ["off"]
    assert 'value="hourly"' in form
    assert 'value="daily"' in form
    assert 'type="time" value="09:00"' in input_tag(form, "digest_time")
    zone = input_tag(form, "digest_zone")
    assert 'value="UTC"' in zone
    assert 'list="time-zones"' in zone
    assert '<option value="Europe/Berlin">' in form
    assert '<option value="America/New_York">' in form


def test_every_window_is_offered_and_every_suggested_zone_is_known() -> None:
    assert list(teams_views.COMBINE_LABELS) == ["off", *COMBINE_WINDOWS]
    for zone in teams_views.COMMON_TIME_ZONES:
        assert parse_schedule(f"daily@09:00/{zone}").zone == zone


def test_saving_stores_the_window_and_the_digest_and_edit_shows_them(
    admin: Browser, svc: Services, people: People
) -> None:
    hook = make_webhook(svc, people.acme.id, "#eng", HOOK_URL)
    combined = post_form(admin, f"{T}/subscriptions", **new_form(hook, combine="30s"))
    assert "Subscription saved" in flash_of(admin, combined)
    before = datetime.now(UTC)
    daily = post_form(
        admin,
        f"{T}/subscriptions",
        **new_form(
            hook,
            event_type="issue_created",
            digest_choice="daily",
            digest_time="09:00",
            digest_zone=" Europe/Berlin ",
        ),
    )
    assert daily.status_code == 303, daily.text
    assert grouping_of(svc) == [(30, None), (None, BERLIN)]
    first, second = subscriptions(svc)
    assert second.next_digest_at is not None
    due = second.next_digest_at.replace(tzinfo=UTC)
    assert due == parse_schedule(BERLIN).next_after(before)
    # The service (and so the API) reads back what the form saved.
    views = [SubscriptionView.of(s, "#eng") for s in (first, second)]
    assert [(v.combine, v.digest) for v in views] == [("30s", "off"), ("off", BERLIN)]

    edit = admin.client.get(f"{T}/subscriptions/{first.id}/edit").text
    assert selected_combine(edit) == ["30s"]
    assert checked_digest(edit) == ["off"]
    edit = admin.client.get(f"{T}/subscriptions/{second.id}/edit").text
    assert selected_combine(edit) == ["off"]
    assert checked_digest(edit) == ["daily"]
    assert 'value="09:00"' in input_tag(edit, "digest_time")
    assert 'value="Europe/Berlin"' in input_tag(edit, "digest_zone")

    # Edit: hourly instead, then off; the combining window of the other one changes too.
    saved = post_form(
        admin,
        f"{T}/subscriptions/{second.id}",
        **new_form(hook, event_type="issue_created", digest_choice="hourly"),
    )
    assert saved.status_code == 303, saved.text
    saved = post_form(admin, f"{T}/subscriptions/{first.id}", **new_form(hook, combine="5m"))
    assert saved.status_code == 303, saved.text
    assert grouping_of(svc) == [(300, None), (None, "hourly")]
    saved = post_form(
        admin,
        f"{T}/subscriptions/{second.id}",
        **new_form(hook, event_type="issue_created", digest_choice="off", digest_time=""),
    )
    assert saved.status_code == 303, saved.text
    assert grouping_of(svc) == [(300, None), (None, None)]
    assert subscriptions(svc)[1].next_digest_at is None
    # An emptied time zone field is the default one, UTC.
    saved = post_form(
        admin,
        f"{T}/subscriptions/{second.id}",
        **new_form(
            hook,
            event_type="issue_created",
            digest_choice="daily",
            digest_time="09:00",
            digest_zone=" ",
        ),
    )
    assert saved.status_code == 303, saved.text
    assert grouping_of(svc) == [(300, None), (None, "daily@09:00/UTC")]


@pytest.mark.parametrize(
    ("fields", "field", "words"),
    [
        ({"digest_choice": "daily", "digest_zone": "Mars/Olympus"}, "digest_zone", "Mars/Olympus"),
        ({"digest_choice": "daily", "digest_zone": "Europe/New York"}, "digest_zone", "IANA"),
        ({"digest_choice": "daily", "digest_time": ""}, "digest_time", "HH:MM"),
        ({"digest_choice": "daily", "digest_time": "25:00"}, "digest_time", "HH:MM"),
        ({"digest_choice": "daily", "digest_time": "noon"}, "digest_time", "HH:MM"),
        ({"digest_choice": "weekly"}, "digest", "Hourly or Daily"),
        ({"combine": "2m"}, "combine", "1 min"),
        ({"combine": "30s", "digest_choice": "hourly"}, "digest", "either combining or a digest"),
    ],
)
def test_bad_grouping_comes_back_in_the_form_and_saves_nothing(
    admin: Browser,
    svc: Services,
    people: People,
    fields: dict[str, str],
    field: str,
    words: str,
) -> None:
    hook = make_webhook(svc, people.acme.id, "#eng", HOOK_URL)
    refused = post_form(admin, f"{T}/subscriptions", **new_form(hook, **fields))
    assert refused.status_code == 422
    assert words in error_of(refused.text, field)
    assert "<h2>Add Subscription</h2>" in refused.text
    for name in ("digest_time", "digest_zone"):
        if name in fields:  # what was typed stays
            assert f'value="{html.escape(fields[name])}"' in input_tag(refused.text, name)
    if "digest_choice" in fields and fields["digest_choice"] in ("hourly", "daily"):
        assert checked_digest(refused.text) == [fields["digest_choice"]]
    assert subscriptions(svc) == []
    # Preview says the same, as the form, and previews nothing.
    previewed = post_form(admin, f"{T}/subscriptions/preview", **new_form(hook, **fields))
    assert previewed.status_code == 422
    assert words in error_of(previewed.text, field)
    assert 'id="subscription-preview"' not in previewed.text


def test_a_bad_zone_on_edit_keeps_the_saved_digest(
    admin: Browser, svc: Services, people: People
) -> None:
    hook = make_webhook(svc, people.acme.id, "#eng", HOOK_URL)
    sub = make_subscription(svc, people.acme.id, hook, "issue_updated", digest=BERLIN)
    bad = {"digest_choice": "daily", "digest_time": "10:30", "digest_zone": "Europe/Berlinn"}
    refused = post_form(admin, f"{T}/subscriptions/{sub}", **new_form(hook, **bad))
    assert refused.status_code == 422
    assert "Europe/Berlinn" in error_of(refused.text, "digest_zone")
    assert "<h2>Edit subscription</h2>" in refused.text
    assert 'value="10:30"' in input_tag(refused.text, "digest_time")
    # With HTMX (Preview's swap) the same form comes back, not an error page.
    swapped = htmx(admin, "POST", f"{T}/subscriptions/{sub}/preview", **new_form(hook, **bad))
    assert swapped.status_code == 422
    assert "Europe/Berlinn" in error_of(swapped.text, "digest_zone")
    assert grouping_of(svc) == [(None, BERLIN)]


def test_preview_passes_the_window_and_the_digest(
    admin: Browser, svc: Services, people: People, monkeypatch: pytest.MonkeyPatch
) -> None:
    hook = make_webhook(svc, people.acme.id, "#eng", HOOK_URL)
    store_and_route(svc, people.acme.id, event(["issue_updated"]))
    seen: list[Any] = []
    original = teams_api.run_subscription_preview

    def spy(body: Any, *args: Any) -> Any:
        seen.append(body)
        return original(body, *args)

    monkeypatch.setattr(teams_api, "run_subscription_preview", spy)
    shown = htmx(admin, "POST", f"{T}/subscriptions/preview", **new_form(hook, combine="1m"))
    assert shown.status_code == 200, shown.text
    assert 'id="subscription-preview"' in shown.text
    assert selected_combine(shown.text) == ["1m"]  # the form keeps the choice
    daily = {"digest_choice": "daily", "digest_time": "7:45", "digest_zone": "Asia/Tokyo"}
    shown = post_form(admin, f"{T}/subscriptions/preview", **new_form(hook, **daily))
    assert shown.status_code == 200, shown.text
    assert checked_digest(shown.text) == ["daily"]
    assert [(b.combine, b.digest) for b in seen] == [
        ("1m", "off"),
        ("off", "daily@07:45/Asia/Tokyo"),
    ]
    assert subscriptions(svc) == []


# -- lists ----------------------------------------------------------------------------------


def test_the_list_says_how_each_subscription_groups_its_cards(
    admin: Browser, svc: Services, people: People
) -> None:
    hook = make_webhook(svc, people.acme.id, "#eng", HOOK_URL)
    plain = make_subscription(svc, people.acme.id, hook, "issue_created")
    combining = make_subscription(svc, people.acme.id, hook, "issue_updated", combine="30s")
    daily = make_subscription(svc, people.acme.id, hook, "status_changed", digest=BERLIN)
    hourly = make_subscription(svc, people.acme.id, hook, "comment_created", digest="hourly")
    tab = admin.client.get(f"{T}/subscriptions").text
    rows = {
        sid: re.search(rf'<tr id="subscription-{sid}">(.*?)</tr>', tab, re.S)
        for sid in (plain, combining, daily, hourly)
    }
    text = {sid: found.group(1) if found else "" for sid, found in rows.items()}
    assert "Combines updates within 30 s" in text[combining]
    assert "digest" not in text[combining].lower()
    assert "Daily digest at 09:00 (Europe/Berlin)" in text[daily]
    [due] = [s.next_digest_at for s in subscriptions(svc) if s.id == daily]
    assert f'· next <time datetime="{rfc3339(due)}"' in text[daily]
    assert "Hourly digest, on the hour" in text[hourly]
    assert "Combines" not in text[plain]
    assert "digest" not in text[plain].lower()


def test_the_webhooks_list_shows_storm_control_when_on(
    admin: Browser, svc: Services, people: People
) -> None:
    storm = make_webhook(svc, people.acme.id, "#eng", HOOK_URL)
    calm = make_webhook(svc, people.acme.id, "#ops", "http://127.0.0.1:9/workflows/ops")
    with svc.db.transaction() as session:
        webhook = session.get(TeamsWebhook, storm)
        assert webhook is not None
        webhook.storm_threshold = 40
    tab = admin.client.get(f"{T}/webhooks").text
    row = {w: re.search(rf'<tr id="webhook-{w}">(.*?)</tr>', tab, re.S) for w in (storm, calm)}
    assert row[storm]
    assert "Combines when more than 40 wait" in row[storm].group(1)
    assert row[calm]
    assert "Combines when" not in row[calm].group(1)


# -- Delivery Log ---------------------------------------------------------------------------


def status_cell(log: str, delivery_id: str) -> str:
    found = re.search(rf'<tr id="delivery-{delivery_id}".*?</tr>', log, re.S)
    assert found, f"delivery {delivery_id} is not in the log"
    return found.group(0)


def test_a_combined_card_and_the_updates_it_carries(
    admin: Browser, svc: Services, people: People, sink: TeamsSink
) -> None:
    hook = make_webhook(svc, people.acme.id, "#eng", sink.url("/workflows/eng"))
    make_subscription(svc, people.acme.id, hook, "issue_updated", combine="5m")
    for summary in ("First", "Second", "Third"):
        store_and_route(svc, people.acme.id, event(["issue_updated"], summary=summary))
    head, *members = deliveries(svc, people.acme.id)
    assert (head.card_kind, head.status) == ("combined", "pending")
    assert [(m.status, m.folded_into) for m in members] == [("folded", head.id)] * 2

    log = admin.client.get(f"{T}/deliveries").text
    cell = status_cell(log, head.id)
    assert "Combined card · 3 updates" in cell
    assert "waiting for more updates until <time" in cell
    for m in members:
        cell = status_cell(log, m.id)
        assert f'into <a href="{T}/deliveries/{head.id}">its combined card</a>' in cell
        assert '<span class="badge badge-folded">Folded</span>' in cell
        assert "summary" not in cell
    waiting = admin.client.get(f"{T}/deliveries/{head.id}").text
    assert "Combining: waiting for more updates until" in waiting

    # The window closes: the worker draws the combined card and sends it.
    past = datetime.now(UTC) - timedelta(seconds=1)
    with svc.db.transaction() as session:
        row = session.get(IntegrationDelivery, head.id)
        assert row is not None
        row.combine_until = row.next_attempt_at = past
    drain(svc)
    assert len(sink.received("/workflows/eng")) == 1
    assert [d.status for d in deliveries(svc, people.acme.id)] == ["delivered", *["folded"] * 2]

    log = admin.client.get(f"{T}/deliveries").text
    cell = status_cell(log, head.id)
    assert "Combined card · 3 updates" in cell
    assert "waiting" not in cell
    page = admin.client.get(f"{T}/deliveries/{head.id}").text
    assert "<strong>Combined card · 3 updates</strong>" in page
    carried = re.search(r'<ol class="carried" id="carried">(.*?)</ol>', page, re.S)
    assert carried
    assert re.findall(r'<a href="[^"]+/deliveries/(\w+)">', carried.group(1)) == [
        m.id for m in members
    ]
    assert "Combining: waiting" not in page
    card = re.search(r'<script type="application/json" id="card-json">(.*?)</script>', page, re.S)
    assert card
    assert "DEMO-1 · 3 updates" in json.dumps(json.loads(card.group(1)), ensure_ascii=False)
    one = admin.client.get(f"{T}/deliveries/{members[0].id}").text
    assert f'<a href="{T}/deliveries/{head.id}">delivery {head.id}</a>, its combined card' in one
    assert "Storm control" not in one


def test_held_deliveries_and_their_digest(
    admin: Browser, svc: Services, people: People, sink: TeamsSink
) -> None:
    hook = make_webhook(svc, people.acme.id, "#eng", sink.url("/workflows/eng"))
    sub = make_subscription(svc, people.acme.id, hook, "issue_created", digest="hourly")
    for key in ("DEMO-1", "DEMO-2"):
        store_and_route(svc, people.acme.id, event(["issue_created"], key=key))
    first, second = deliveries(svc, people.acme.id)
    assert (first.status, second.status) == ("held", "held")
    [due] = [s.next_digest_at for s in subscriptions(svc)]

    log = admin.client.get(f"{T}/deliveries?status=held").text
    assert '<option value="held" selected>Held for the digest</option>' in log
    cell = status_cell(log, first.id)
    assert "Held for the digest</span>" in cell
    assert f'next digest <time datetime="{rfc3339(due)}"' in cell
    assert "No deliveries match" not in log
    pending = admin.client.get(f"{T}/deliveries?status=pending").text
    assert f'id="delivery-{first.id}"' not in pending
    page = admin.client.get(f"{T}/deliveries/{first.id}").text
    assert (
        "Held for the digest: it goes out with the next digest of "
        f'<a href="{T}/subscriptions/{sub}/edit">its subscription</a>'
    ) in page

    # Its time comes: the older held delivery becomes the digest and carries the other.
    with svc.db.transaction() as session:
        row = session.get(TeamsSubscription, sub)
        assert row is not None
        row.next_digest_at = datetime.now(UTC) - timedelta(seconds=1)
    drain(svc)
    assert len(sink.received("/workflows/eng")) == 1
    log = admin.client.get(f"{T}/deliveries").text
    assert "Digest · 2 updates" in status_cell(log, first.id)
    assert f'into <a href="{T}/deliveries/{first.id}">its digest</a>' in status_cell(log, second.id)
    page = admin.client.get(f"{T}/deliveries/{first.id}").text
    assert "<strong>Digest · 2 updates</strong>" in page
    assert f'<a href="{T}/deliveries/{second.id}">{second.id}</a> <strong>DEMO-2</strong>' in page
    one = admin.client.get(f"{T}/deliveries/{second.id}").text
    assert f'<a href="{T}/deliveries/{first.id}">delivery {first.id}</a>, its digest' in one
