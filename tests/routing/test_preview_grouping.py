"""Preview with combining and digests: cards are counted as they would have been sent.

Events are stored (with the received times the tests choose) and routed as the intake does,
then previewed through `preview_subscription` with a fixed `now`, or through the API. The
matching events stay listed one by one; only the card count gathers them.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta
from types import SimpleNamespace
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from fastapi.testclient import TestClient

from tests.support.factories import MadeUser, MadeWorkspace, bearer, make_user
from tests.support.teams import event, make_webhook, store_and_route
from ticketmate.jira.events import JiraEvent
from ticketmate.routing import preview as preview_module
from ticketmate.routing.combine import COMBINE_AT_MOST
from ticketmate.routing.preview import Preview
from ticketmate.state import Services
from ticketmate.teams import api as teams_api
from ticketmate.teams.digest_schedule import parse_schedule
from ticketmate.teams.subscriptions import (
    SubscriptionCreate,
    SubscriptionFilters,
    preview_subscription,
)
from ticketmate.timeutil import utcnow
from ticketmate.web.templating import templates

PREVIEW = "/api/v1/workspaces/acme/teams/subscriptions/preview"
BERLIN = ZoneInfo("Europe/Berlin")


@dataclass
class Setup:
    svc: Services
    workspace: MadeWorkspace
    hook: str
    # Every preview looks back from here; events are stored a few days before.
    now: datetime

    def store(
        self, key: str | None, at: datetime, project: str = "DEMO", kind: str = "issue_updated"
    ) -> str:
        envelope = event([kind], key, project) if key else no_issue()
        event_id, _ = store_and_route(self.svc, self.workspace.id, envelope, now=at)
        return event_id

    def preview(
        self, combine: str = "off", digest: str = "off", projects: list[str] | None = None
    ) -> Preview:
        data = SubscriptionCreate(
            event_type="issue_updated",
            webhook_id=self.hook,
            filters=SubscriptionFilters(projects=projects),
            combine=combine,  # type: ignore[arg-type]  # validated by the model
            digest=digest,
        )
        with self.svc.db.transaction() as session:
            return preview_subscription(
                session, self.workspace.id, data, now=self.now, retention_days=30
            )


def no_issue() -> JiraEvent:
    """An update the router matches that names no issue: it is never combined."""
    return JiraEvent.model_validate(
        {
            "event_types": ["issue_updated"],
            "jira_event": "jira:issue_updated",
            "actor": {"display_name": "Alice"},
        }
    )


@pytest.fixture
def setup(svc: Services, workspace: MadeWorkspace) -> Setup:
    hook = make_webhook(svc, workspace.id, "#demo", "http://127.0.0.1:9/workflows/demo")
    return Setup(svc, workspace, hook, now=utcnow())


def on_the_hour(setup: Setup, days_ago: int = 3) -> datetime:
    """An hour boundary (UTC) a few days before the preview's `now`."""
    moment = setup.now - timedelta(days=days_ago)
    return moment.replace(minute=0, second=0, microsecond=0)


def nine_in_berlin(setup: Setup, days_ago: int = 4) -> datetime:
    """09:00 Europe/Berlin on a day a few days before the preview's `now`, in UTC."""
    day = (setup.now - timedelta(days=days_ago)).astimezone(BERLIN).date()
    return datetime.combine(day, time(9, 0), tzinfo=BERLIN).astimezone(UTC)


# -- combining --------------------------------------------------------------------------------


def test_combining_makes_one_card_per_issue_and_window_from_its_first_event(
    setup: Setup,
) -> None:
    start = on_the_hour(setup) + timedelta(minutes=7)
    s = timedelta(seconds=1)
    ids = [
        setup.store("DEMO-1", start),  # opens DEMO-1's window: [start, start + 30 s)
        setup.store("DEMO-1", start + 10 * s),  # joins it
        setup.store("DEMO-2", start + 12 * s),  # another issue: its own window
        setup.store("DEMO-1", start + 29 * s),  # still within 30 s of the window's first event
        setup.store("DEMO-1", start + 30 * s),  # the window has closed: a new one, to + 60 s
        setup.store("DEMO-1", start + 55 * s),  # within the new window (not the first one's)
        setup.store("DEMO-2", start + 50 * s),  # DEMO-2's window (to + 42 s) closed: new card
        setup.store(None, start + 11 * s),  # no issue: a card of its own
        setup.store(None, start + 13 * s),  # and another
    ]
    setup.store("DEMO-1", start + 14 * s, kind="issue_created")  # another event type

    shown = setup.preview(combine="30s")
    # DEMO-1: 2 windows, DEMO-2: 2 windows, 2 events without an issue.
    assert (shown.cards, shown.events_matched) == (6, 9)
    assert shown.grouping == "combining updates within 30 s"
    assert "30 s" in shown.note
    assert "not applied" not in shown.note
    # The events are still listed one by one, newest first, and the reasons as before.
    assert [m.event_id for m in shown.matching] == ids[::-1]
    assert [r.events for r in shown.reasons] == [1]
    assert shown.reasons[0].reason.startswith("listens for issue_updated")
    assert shown.considered == 10

    # A longer window takes in what the 30 s one split; a shorter one splits more.
    longer = setup.preview(combine="1m")
    assert (longer.cards, longer.grouping) == (4, "combining updates within 1 min")
    shorter = setup.preview(combine="10s")
    # DEMO-1 at 0/10/29/30/55 s: windows from 0, 10, 29, 55 (30 joins 29's); DEMO-2: 2.
    assert shorter.cards == 4 + 2 + 2


def test_events_are_replayed_in_the_order_they_were_received(setup: Setup) -> None:
    # Stored later but received earlier: the window opens at 5 s, so 40 s is past it.
    start = on_the_hour(setup)
    setup.store("DEMO-3", start + timedelta(seconds=40))
    setup.store("DEMO-3", start + timedelta(seconds=5))
    assert setup.preview(combine="30s").cards == 2
    assert setup.preview(combine="1m").cards == 1


def test_a_combined_card_carries_at_most_combine_at_most_events(setup: Setup) -> None:
    start = on_the_hour(setup) + timedelta(minutes=20)
    count = COMBINE_AT_MOST + 3
    for n in range(count):  # all within one 5-minute window
        setup.store("DEMO-7", start + timedelta(seconds=n))
    shown = setup.preview(combine="5m")
    assert (shown.cards, shown.events_matched) == (2, count)
    assert shown.grouping == "combining updates within 5 min"
    assert len(shown.matching) == preview_module.MATCHING_SHOWN


# -- digests ----------------------------------------------------------------------------------


def test_an_hourly_digest_counts_the_hours_with_a_matching_event(setup: Setup) -> None:
    hour = on_the_hour(setup)
    m = timedelta(minutes=1)
    setup.store("DEMO-1", hour - 30 * m)  # the digest at `hour`
    setup.store("DEMO-2", hour - m)  # the same one
    setup.store("DEMO-1", hour)  # on the hour: the next one (hour + 1 h), alone in it
    # hour + 1 h .. hour + 2 h: nothing; an empty period sends nothing.
    setup.store("DEMO-1", hour + 2 * 60 * m + m)  # the digest at hour + 3 h
    setup.store("OPS-1", hour + 4 * 60 * m, project="OPS")  # not matched: no period of its own
    # The newest, in the period still open at `now`.
    setup.store("DEMO-4", setup.now - timedelta(seconds=5))

    shown = setup.preview(digest="hourly", projects=["DEMO"])
    assert (shown.cards, shown.events_matched) == (4, 5)
    assert shown.grouping == "as an hourly digest, on the hour (UTC)"
    assert "not applied" not in shown.note
    assert len(shown.matching) == 5
    assert [r.events for r in shown.reasons] == [1]


def test_a_daily_digest_counts_the_days_in_its_zone(setup: Setup) -> None:
    nine = nine_in_berlin(setup, days_ago=4)  # 07:00 or 08:00 UTC, as the season has it
    h = timedelta(hours=1)
    setup.store("DEMO-1", nine - 2 * h)  # before nine: the digest at `nine`
    setup.store("DEMO-2", nine - h)
    # 08:30 UTC is after nine in Berlin in summer (07:00 UTC) and in winter (08:00 UTC):
    # the next day's digest, although it is still before 09:00 UTC.
    setup.store("DEMO-1", nine.replace(hour=8, minute=30))
    setup.store("DEMO-3", nine + 20 * h)  # still before the next day's nine
    # The day after: nothing; the day after that, one event.
    setup.store("DEMO-1", nine + 2 * 24 * h + h)

    shown = setup.preview(digest="daily@09:00/Europe/Berlin")
    assert (shown.cards, shown.events_matched) == (3, 5)
    assert shown.grouping == "as a daily digest at 09:00 (Europe/Berlin)"
    assert "not applied" not in shown.note


def test_the_zone_decides_where_a_day_ends(setup: Setup) -> None:
    # 23:30 and 00:30 UTC: one day in UTC, two in Tokyo (no summer time: 09:00 there is
    # 00:00 UTC).
    midnight = on_the_hour(setup).replace(hour=0)
    setup.store("DEMO-1", midnight - timedelta(minutes=30))
    setup.store("DEMO-1", midnight + timedelta(minutes=30))
    assert setup.preview(digest="daily@09:00/UTC").cards == 1
    tokyo = setup.preview(digest="daily@09:00/Asia/Tokyo")
    assert (tokyo.cards, tokyo.grouping) == (2, "as a daily digest at 09:00 (Asia/Tokyo)")
    assert setup.preview(digest="hourly").cards == 2


def test_digest_periods_are_the_schedules_times_after_the_events(setup: Setup) -> None:
    # Events over five days at odd times: the cards are the distinct digest times after them.
    first = nine_in_berlin(setup, days_ago=6) + timedelta(minutes=17)
    offsets = [0, 1, 5, 26, 27, 50, 95, 96, 97]  # hours
    for n, hours in enumerate(offsets):
        setup.store(f"DEMO-{n}", first + timedelta(hours=hours))
    for text in ("daily@09:00/Europe/Berlin", "daily@23:30/America/New_York"):
        schedule = parse_schedule(text)
        expected = {schedule.next_after(first + timedelta(hours=h)) for h in offsets}
        shown = setup.preview(digest=text)
        assert shown.cards == len(expected) < len(offsets), text
        assert shown.events_matched == len(offsets)
    assert setup.preview(digest="hourly").cards == len(offsets)  # each in an hour of its own


# -- neither ----------------------------------------------------------------------------------


def test_without_grouping_each_matching_event_is_a_card(setup: Setup) -> None:
    start = on_the_hour(setup)
    for n in range(4):
        setup.store("DEMO-1", start + timedelta(seconds=n))
    setup.store(None, start + timedelta(seconds=5))
    shown = setup.preview()
    assert (shown.cards, shown.events_matched, shown.grouping) == (5, 5, None)
    assert shown.note == preview_module.NOTE
    assert "not applied" in shown.note
    # The same events combined are two cards; the grouping is what made the difference.
    assert setup.preview(combine="10s").cards == 2


# -- the API and the page ---------------------------------------------------------------------


@pytest.fixture
def admin(svc: Services, workspace: MadeWorkspace) -> MadeUser:
    return make_user(svc, "admin@acme.test", {workspace.slug: "admin"})


def test_the_api_answers_cards_after_grouping_with_the_events_and_the_phrase(
    setup: Setup, client: TestClient, admin: MadeUser
) -> None:
    now = utcnow()
    for n in range(3):
        setup.store("DEMO-1", now - timedelta(seconds=20 - n))
    setup.store("DEMO-2", now - timedelta(seconds=10))
    body: dict[str, Any] = {"event_type": "issue_updated", "webhook_id": setup.hook}

    def shown(**settings: str) -> dict[str, Any]:
        answer = client.post(PREVIEW, json={**body, **settings}, headers=bearer(admin))
        assert answer.status_code == 200, answer.text
        result: dict[str, Any] = answer.json()
        return result

    plain = shown()
    # Without grouping the answer is as it was: no new fields, one card per event.
    assert set(plain).isdisjoint({"events_matched", "grouping"})
    assert plain["cards"] == 4 == len(plain["matching"])
    assert "not applied" in plain["note"]

    combined = shown(combine="1m")
    assert (combined["cards"], combined["events_matched"]) == (2, 4)
    assert combined["grouping"] == "combining updates within 1 min"
    assert len(combined["matching"]) == 4
    assert "1 min" in combined["note"]

    digest = shown(digest="daily@09:00/Europe/Berlin")
    assert digest["events_matched"] == 4
    assert digest["grouping"] == "as a daily digest at 09:00 (Europe/Berlin)"
    # Four events within 20 seconds: one digest, or two if 09:00 Berlin fell between them.
    assert digest["cards"] in (1, 2)

    refused = client.post(
        PREVIEW, json={**body, "combine": "30s", "digest": "hourly"}, headers=bearer(admin)
    )
    assert refused.status_code == 422


def render(preview: Preview) -> str:
    out = teams_api.SubscriptionPreviewOut.of(preview)
    page = templates.get_template("teams/_subscription_preview.html").render(
        preview=out, preview_days=7, admin=SimpleNamespace(teams_url="/t")
    )
    return " ".join(page.split())


def test_the_page_says_the_cards_the_events_and_how_they_were_gathered(setup: Setup) -> None:
    start = on_the_hour(setup)
    for n in range(25):
        setup.store(f"DEMO-{n % 3}", start + timedelta(seconds=n))
    setup.store("OPS-1", start, project="OPS")
    words = render(setup.preview(combine="30s", projects=["DEMO"]))
    assert (
        "These settings would have sent 3 cards (25 events, combining updates within 30 s) "
        "in the last 7 days</strong> (of 26 events)." in words
    )
    # The list is of the events: the newest 20 of 25, although there are only 3 cards.
    assert "Events that would have been sent (the newest 20)" in words
    assert words.count("<li><a href=") == 20
    assert "and 5 more." in words
    assert "30 s of the first" in words  # the note

    plain = render(setup.preview(projects=["DEMO"]))
    assert "would have sent 25 cards in the last 7 days</strong> (of 26 events)." in plain
    assert "not applied" in plain

    digest = render(setup.preview(digest="hourly", projects=["DEMO"]))
    assert "sent 1 card (25 events, as an hourly digest, on the hour (UTC)) in the" in digest
    assert "The event that would" not in digest
