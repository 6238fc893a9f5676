"""Storm control in the admin UI: the webhook form's setting, and the Delivery Log's links
between folded deliveries and their summary (and the API's JSON of both)."""

from __future__ import annotations

from fastapi.testclient import TestClient
from sqlalchemy import select

from tests.support.factories import bearer
from tests.support.teams import deliveries, drain, event, make_subscription, store_and_route
from tests.web.conftest import Browser, People, post_form
from tests.web.test_webhooks_pages import field_error
from ticketmate.dev.teams_sink import TeamsSink
from ticketmate.models import TeamsWebhook
from ticketmate.state import Services

T = "/w/acme/admin/integrations/teams"


def thresholds(svc: Services) -> list[int | None]:
    with svc.db.transaction() as session:
        return list(session.scalars(select(TeamsWebhook.storm_threshold).order_by(TeamsWebhook.id)))


def test_the_form_offers_40_off_and_saves_changes_and_turns_it_off(
    admin: Browser, svc: Services, sink: TeamsSink
) -> None:
    form = admin.client.get(f"{T}/webhooks/new").text
    assert 'name="storm" value="on"> When more than N cards are waiting, combine them' in form
    assert 'name="storm_threshold" type="number"' in form
    assert 'value="40"' in form
    url = sink.url("/workflows/eng")
    saved = post_form(admin, f"{T}/webhooks", channel_name="#eng", url=url, enabled="on")
    assert saved.status_code == 303
    assert thresholds(svc) == [None]  # the switch left off: off
    with svc.db.transaction() as session:
        webhook_id = session.scalars(select(TeamsWebhook.id)).one()
    edit = f"{T}/webhooks/{webhook_id}"
    on = post_form(admin, edit, channel_name="#eng", enabled="on", storm="on", storm_threshold="60")
    assert on.status_code == 303, on.text
    assert thresholds(svc) == [60]
    shown = admin.client.get(f"{edit}/edit").text
    assert 'name="storm" value="on" checked>' in shown
    assert 'value="60"' in shown
    for bad in ("4", "1001", "lots"):
        refused = post_form(
            admin, edit, channel_name="#eng", enabled="on", storm="on", storm_threshold=bad
        )
        assert refused.status_code == 422, bad
        assert field_error(refused.text, "storm_threshold"), bad
        assert f'value="{bad}"' in refused.text  # the form keeps what was typed
    assert thresholds(svc) == [60]
    off = post_form(admin, edit, channel_name="#eng", enabled="on", storm_threshold="60")
    assert off.status_code == 303
    assert thresholds(svc) == [None]


def test_a_new_webhook_can_be_saved_with_it_on(
    admin: Browser, svc: Services, sink: TeamsSink
) -> None:
    url = sink.url("/workflows/eng")
    refused = post_form(
        admin, f"{T}/webhooks", channel_name="#eng", url=url, storm="on", storm_threshold="2"
    )
    assert refused.status_code == 422
    assert field_error(refused.text, "storm_threshold")
    saved = post_form(
        admin, f"{T}/webhooks", channel_name="#eng", url=url, storm="on", storm_threshold="40"
    )
    assert saved.status_code == 303
    assert thresholds(svc) == [40]


def test_the_log_links_folded_deliveries_and_their_summary_both_ways(
    admin: Browser, client: TestClient, svc: Services, people: People, sink: TeamsSink
) -> None:
    url = sink.url("/workflows/eng")
    post_form(
        admin,
        f"{T}/webhooks",
        channel_name="#eng",
        url=url,
        enabled="on",
        storm="on",
        storm_threshold="5",
    )
    with svc.db.transaction() as session:
        webhook_id = session.scalars(select(TeamsWebhook.id)).one()
    make_subscription(svc, people.acme.id, webhook_id, "issue_created")
    for n in range(7):
        store_and_route(svc, people.acme.id, event(["issue_created"], key=f"DEMO-{n}"))
    svc.settings = svc.settings.model_copy(update={"channel_rate_per_second": 1000})
    drain(svc)
    rows = deliveries(svc, people.acme.id)
    summary, *folded = rows
    assert summary.status == "delivered"
    assert [d.status for d in folded] == ["folded"] * 6
    log = admin.client.get(f"{T}/deliveries").text
    assert log.count(f'into <a href="{T}/deliveries/{summary.id}">its summary</a>') == 6
    assert "summary of 7 events" in log
    assert "Folded into another card" in admin.client.get(f"{T}/deliveries?status=folded").text
    detail = admin.client.get(f"{T}/deliveries/{summary.id}").text
    for d in folded:
        assert f'<a href="{T}/deliveries/{d.id}">{d.id}</a>' in detail
    one = admin.client.get(f"{T}/deliveries/{folded[0].id}").text
    assert f'<a href="{T}/deliveries/{summary.id}">delivery {summary.id}</a>' in one

    api = "/api/v1/workspaces/acme/teams/deliveries"
    auth = bearer(people.admin)
    listed = {d["id"]: d for d in client.get(api, headers=auth).json()["items"]}
    assert listed[summary.id]["folded_into"] is None
    assert listed[summary.id]["folded_count"] == 6
    assert all(listed[d.id]["folded_into"] == summary.id for d in folded)
    shown = client.get(f"{api}/{summary.id}", headers=auth).json()
    assert shown["folded"] == [d.id for d in folded]
    only_folded = client.get(f"{api}?status=folded", headers=auth).json()["items"]
    assert sorted(d["id"] for d in only_folded) == sorted(d.id for d in folded)
