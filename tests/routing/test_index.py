"""SubscriptionIndex: chooses exactly what the plain filters choose, at the cost of what can match.

The reference is the router's old way, unindexed: the candidates (enabled subscriptions of the
event's types on enabled webhooks), in id order, then `mismatch` of routing/filters.py.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from typing import Any

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from tests.routing.oracle import old_routing
from tests.routing.support import (
    EVENT_TYPES,
    VOCABULARY,
    fixture_events,
    subscribed_workspace,
)
from tests.support.factories import MadeWorkspace, make_workspace
from tests.support.teams import event, make_subscription, make_webhook
from ticketmate.dev.teams_sink import TeamsSink
from ticketmate.jira.events import EventType, JiraEvent
from ticketmate.routing import index as index_module
from ticketmate.routing.filters import mismatch
from ticketmate.routing.index import IndexedSubscription, Match, SubscriptionIndex, load_index
from ticketmate.state import Services


def reference(
    subscriptions: Sequence[IndexedSubscription], event: JiraEvent, withhold_unknown: bool = False
) -> list[Match]:
    types = {t.value for t in event.event_types}
    return [
        Match(s.id, s.event_type, s.webhook_id, s.channel_name)
        for s in sorted(subscriptions, key=lambda s: s.id)
        if s.enabled
        and s.webhook_enabled
        and s.event_type in types
        and mismatch(event, s.event_type, s.filters or {}, withhold_unknown=withhold_unknown)
        is None
    ]


# -- random subscriptions and events ----------------------------------------------------------


def _values(name: str) -> st.SearchStrategy[list[str]]:
    # The vocabulary, with blanks and padding that stored filters may carry.
    words = st.sampled_from(VOCABULARY[name]) | st.sampled_from(["", "  ", " tes ", "DONE "])
    return st.lists(words, max_size=3)


# Security level names as stored: names, "*" for any level, blanks and case variants.
LEVELS = ["Staff only", "Developers", " staff ONLY ", "*", ""]


@st.composite
def filters(draw: st.DrawFn) -> dict[str, list[str]]:
    # Up to two filters each, so that subscriptions match often enough to tell apart.
    names = draw(st.lists(st.sampled_from(list(VOCABULARY)), max_size=2, unique=True))
    found = {name: draw(_values(name)) for name in names}
    if draw(st.booleans()):
        found["security_levels"] = draw(st.lists(st.sampled_from(LEVELS), max_size=2))
    return found


# Some event types more often than others, so that subscriptions and events meet.
TYPES = st.sampled_from(["status_changed", "issue_created", "issue_updated", *EVENT_TYPES])
WEBHOOKS = st.lists(st.booleans(), min_size=1, max_size=4)


@st.composite
def one_subscription(draw: st.DrawFn) -> IndexedSubscription:
    return IndexedSubscription(
        id="s1",
        event_type=draw(TYPES),
        enabled=draw(st.booleans()),
        filters=draw(st.none() | filters()),
        webhook_id="w1",
        channel_name="#ch1",
        webhook_enabled=draw(st.booleans()),
    )


@st.composite
def subscriptions(draw: st.DrawFn) -> list[IndexedSubscription]:
    webhook_enabled = draw(WEBHOOKS)
    count = draw(st.integers(min_value=0, max_value=25))
    found = []
    for n in range(count):
        hook = draw(st.integers(min_value=0, max_value=len(webhook_enabled) - 1))
        found.append(
            IndexedSubscription(
                id=f"s{draw(st.integers(0, 10_000)):05d}{n:02d}",
                event_type=draw(TYPES),
                enabled=draw(st.booleans()),
                filters=draw(st.none() | filters()),
                webhook_id=f"w{hook}",
                channel_name=f"#ch{hook}",
                webhook_enabled=webhook_enabled[hook],
            )
        )
    return found


def _maybe(values: Sequence[str]) -> st.SearchStrategy[str | None]:
    return st.none() | st.sampled_from([*values, "", " Done", "tes "])


@st.composite
def events(draw: st.DrawFn) -> JiraEvent:
    """A captured payload's envelope with some of its fields changed."""
    _name, base = draw(st.sampled_from(fixture_events()))
    data: dict[str, Any] = base.as_json()
    if draw(st.booleans()):
        data["event_types"] = draw(st.lists(TYPES, max_size=3))
    if draw(st.integers(0, 5)) == 0:
        data["issue"] = None
    elif data.get("issue") is not None or draw(st.booleans()):
        issue = dict(data.get("issue") or {})
        for name, field in (
            ("projects", "project_key"),
            ("issue_types", "issue_type"),
            ("statuses", "status"),
            ("priorities", "priority"),
        ):
            if draw(st.booleans()):
                issue[field] = draw(_maybe(VOCABULARY[name]))
        for name in ("labels", "components"):
            if draw(st.booleans()):
                issue[name] = draw(st.lists(st.sampled_from([*VOCABULARY[name], " "]), max_size=3))
        data["issue"] = issue
    if draw(st.booleans()):
        moved = {"field": "status", "from": "To Do", "to": draw(_maybe(VOCABULARY["statuses"]))}
        data["changes"] = [moved, *[c for c in data.get("changes", []) if c["field"] != "status"]]
    if draw(st.booleans()):
        name = draw(
            st.none() | st.sampled_from(["Staff only", "developers", "Secret", " Staff only"])
        )
        data["security"] = None if draw(st.integers(0, 3)) == 0 else {"id": "1", "name": name}
        data["security_source"] = draw(
            st.sampled_from(["payload", "changelog", "remembered", "unknown", None])
        )
    return JiraEvent.model_validate(data)


@settings(max_examples=500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    subs=subscriptions(),
    events=st.lists(events(), min_size=1, max_size=4),
    withhold_unknown=st.booleans(),
)
def test_the_index_matches_what_the_filters_match(
    subs: list[IndexedSubscription], events: list[JiraEvent], withhold_unknown: bool
) -> None:
    built = SubscriptionIndex("ws", 3, subs, withhold_unknown=withhold_unknown)
    assert built.total == len(subs)
    for one in events:
        assert built.match(one) == reference(subs, one, withhold_unknown)


def _sub(event_type: str, **filters: list[str]) -> IndexedSubscription:
    return IndexedSubscription("s1", event_type, True, filters, "w1", "#ch1", True)


MOVED_TO_DONE = event(["status_changed"], status="Done").model_copy(
    update={"issue": event(["issue_updated"]).issue}  # the issue still says To Do
)


@settings(max_examples=1000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(subscription=one_subscription(), one=events(), listens=st.booleans())
# For status_changed, Statuses means the status moved into, not the issue's.
@example(_sub("status_changed", statuses=["done"]), MOVED_TO_DONE, True)
@example(_sub("status_changed", statuses=["to do"]), MOVED_TO_DONE, True)
@example(_sub("issue_updated", statuses=["done"]), MOVED_TO_DONE, True)
# A filter of blank values only matches nothing.
@example(_sub("issue_created", projects=["  "]), event(["issue_created"]), True)
@example(_sub("issue_created", labels=[" "]), event(["issue_created"], labels=[" "]), True)
@example(_sub("issue_created", projects=[" demo "]), event(["issue_created"]), True)
@example(_sub("issue_created", projects=["DEMO"]), event(["issue_created"], project=""), True)
# Names compare trimmed and case-folded (not just lower-cased), on both sides.
@example(
    _sub("issue_created", components=["Straße"]),
    event(["issue_created"], components=["STRASSE"]),
    True,
)
@example(_sub("issue_created", projects=["TES"]), event(["issue_created"], project=" tes "), True)
@example(
    _sub("issue_created", issue_types=["bug "]), event(["issue_created"], issue_type=" BUG"), True
)
def test_one_subscription_matches_as_its_filters_say(
    subscription: IndexedSubscription, one: JiraEvent, listens: bool
) -> None:
    if listens:  # most often the event is of the subscription's type: its filters decide
        types = [*one.event_types, EventType(subscription.event_type)]
        one = one.model_copy(update={"event_types": types})
    assert SubscriptionIndex("ws", 0, [subscription]).match(one) == reference([subscription], one)


# -- against the database ---------------------------------------------------------------------


def test_a_loaded_index_matches_the_old_router_on_every_captured_payload(
    svc: Services, workspace: MadeWorkspace, sink: TeamsSink
) -> None:
    ids = subscribed_workspace(svc, workspace.id, sink.url(""), 80)
    # Another workspace's subscriptions that would all match: never this workspace's.
    other = make_workspace(svc, "globex")
    theirs = make_webhook(svc, other.id, "#theirs", sink.url("/workflows/theirs"))
    for event_type in EVENT_TYPES:
        make_subscription(svc, other.id, theirs, event_type)
    # A few that surely match the captured payloads (project TES), on every kind of event.
    hook = make_webhook(svc, workspace.id, "#all", sink.url("/workflows/all"))
    for event_type in EVENT_TYPES:
        make_subscription(svc, workspace.id, hook, event_type, projects=["tes"])
    with svc.db.transaction() as session:
        loaded = load_index(session, workspace.id)
        assert loaded.total == len(ids) + len(EVENT_TYPES)
        matched_any = 0
        for name, envelope in fixture_events():
            old = old_routing(session, workspace.id, envelope)["matched"]
            new = loaded.match(envelope)
            assert [_as_dict(m) for m in new] == old, name
            matched_any += bool(new)
    assert matched_any > len(fixture_events()) // 2  # the comparison is not only of empties


def _as_dict(match: Match) -> dict[str, str]:
    return {
        "subscription_id": match.subscription_id,
        "webhook_id": match.webhook_id,
        "channel_name": match.channel_name,
        "event_type": match.event_type,
    }


def test_an_event_is_checked_only_against_its_own_type_and_project(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """1,000 subscriptions, 5 of which can match: the event's filters are checked 5 times."""
    subs = [
        IndexedSubscription(
            id=f"s{n:04d}",
            event_type=EVENT_TYPES[n % len(EVENT_TYPES)],
            enabled=True,
            filters={"projects": [f"P{n}"]} if n >= 5 else {"projects": ["DEMO"]},
            webhook_id=f"w{n % 200}",
            channel_name=f"#ch{n % 200}",
            webhook_enabled=True,
        )
        for n in range(1000)
    ]
    for n in range(5):
        subs[n] = replace(subs[n], event_type="issue_created")
    built = SubscriptionIndex("ws", 0, subs)
    checked: list[str] = []
    passes = index_module._EventFacts.passes

    def counting(self: Any, compiled: Any) -> bool:
        checked.append(compiled.match.subscription_id)
        return passes(self, compiled)

    monkeypatch.setattr(index_module._EventFacts, "passes", counting)
    found = built.match(event(["issue_created"], project="demo"))
    assert [m.subscription_id for m in found] == [f"s{n:04d}" for n in range(5)]
    assert sorted(checked) == [f"s{n:04d}" for n in range(5)]
    assert built.total == 1000


def test_subscriptions_that_differ_on_a_one_value_filter_are_not_checked(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """1,000 subscriptions of the event's type and project that want another issue type,
    priority or status than the event's: only the 5 that can match are checked."""
    others = (
        {"issue_types": ["Epic"]},
        {"priorities": ["Lowest"]},
        {"statuses": ["Closed", "Won't Do"]},
        {"issue_types": ["Bug", "Task"], "priorities": ["Low"]},
    )
    subs = [
        IndexedSubscription(
            id=f"s{n:04d}",
            event_type="issue_created",
            enabled=True,
            filters=(
                {"projects": ["DEMO"], "priorities": ["high"]}
                if n < 5
                else {"projects": ["DEMO"], **others[n % len(others)]}
            ),
            webhook_id=f"w{n % 200}",
            channel_name=f"#ch{n % 200}",
            webhook_enabled=True,
        )
        for n in range(1000)
    ]
    built = SubscriptionIndex("ws", 0, subs)
    checked: list[str] = []
    passes = index_module._EventFacts.passes

    def counting(self: Any, compiled: Any) -> bool:
        checked.append(compiled.match.subscription_id)
        return passes(self, compiled)

    monkeypatch.setattr(index_module._EventFacts, "passes", counting)
    created = event(["issue_created"], project="demo", issue_type="Bug", priority="High ")
    found = built.match(created)
    assert [m.subscription_id for m in found] == [f"s{n:04d}" for n in range(5)]
    assert sorted(checked) == [f"s{n:04d}" for n in range(5)]
    assert found == reference(subs, created)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    subs=subscriptions(),
    events=st.lists(events(), min_size=1, max_size=4),
    paths=st.integers(min_value=1, max_value=4),
)
def test_subscriptions_past_the_path_limit_still_match_as_their_filters_say(
    subs: list[IndexedSubscription], events: list[JiraEvent], paths: int
) -> None:
    """A subscription with many values in several filters is filed under fewer paths and
    checked in full where it stops: the matches are the same."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(index_module, "MAX_PATHS_PER_SUBSCRIPTION", paths)
        built = SubscriptionIndex("ws", 0, subs)
        for one in events:
            assert built.match(one) == reference(subs, one)


def test_a_subscription_filed_short_of_its_project_level_still_needs_its_project(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Past the path limit at the Projects level a subscription is checked in full at the
    root, its Projects filter included: an event of another project does not take it."""
    monkeypatch.setattr(index_module, "MAX_PATHS_PER_SUBSCRIPTION", 1)
    sub = IndexedSubscription(
        id="s1",
        event_type="issue_created",
        enabled=True,
        filters={"projects": ["DEMO", "OPS"]},
        webhook_id="w1",
        channel_name="#ch1",
        webhook_enabled=True,
    )
    built = SubscriptionIndex("ws", 0, [sub])
    other = event(["issue_created"], project="ELSE")
    mine = event(["issue_created"], project="ops")
    assert built.match(other) == reference([sub], other) == []
    assert built.match(mine) == reference([sub], mine) != []
