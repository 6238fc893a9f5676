"""Combined, digest and storm cards: valid 1.4 cards in Teams' envelope, under its 28 KB limit
whatever the events, cut with a note, in order, escaped, linking only to pinned Jira pages."""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.delivery.test_cards import assert_valid, card_of, envelopes
from tests.support.teams import event
from ticketmate.jira.events import EventType, JiraEvent
from ticketmate.jira.transform import browse_site
from ticketmate.teams import summary_cards
from ticketmate.teams.summary_cards import (
    MAX_SEARCH_URL_LENGTH,
    render_combined,
    render_digest,
    render_storm,
)

# Teams' limit, as its Workflows error states it: "max allowed size is 28672 bytes".
TEAMS_LIMIT_BYTES = 28_672
SITE = "https://example.atlassian.net"
HOSTILE = "**x** [a](http://evil)"

# A link the builders put into a line: " · [Open](url)" at its end.
OPEN_LINK = re.compile(r" · \[Open\]\((?P<url>[^)\s]+)\)$")
MARKDOWN = set("\\`*_[]~")


def make(
    key: str = "ADA-12",
    *,
    types: Sequence[str] = ("issue_updated",),
    summary: str = "Login fails",
    actor: str = "Ada",
    changes: Sequence[tuple[str, str | None, str | None]] = (),
    comment: str | None = None,
    visibility: str | None = None,
    browse_url: str | None = "pinned",
) -> JiraEvent:
    base = event(list(types), key=key, summary=summary).as_json()
    issue: Any = base["issue"]
    issue["browse_url"] = f"{SITE}/browse/{key}" if browse_url == "pinned" else browse_url
    return JiraEvent.model_validate(
        {
            **base,
            "actor": {"display_name": actor},
            "changes": [{"field": f, "from": a, "to": b} for f, a, b in changes],
            "comment": (
                {"id": "1", "author": actor, "body": comment, "visibility": visibility}
                if comment is not None or visibility is not None
                else None
            ),
        }
    )


def check(body: bytes, events: Sequence[JiraEvent]) -> dict[str, Any]:
    """The rules every summary card keeps; returns the card."""
    assert len(body) < TEAMS_LIMIT_BYTES
    card = card_of(body)
    assert_valid(card)
    pinned = {
        e.issue.browse_url
        for e in events
        if e.issue and e.issue.browse_url and browse_site(e.issue.browse_url)
    }
    for action in card.get("actions", []):
        assert action["type"] == "Action.OpenUrl"
        if action["title"] == "Open in Jira":
            assert action["url"] in pinned
        else:
            assert action["url"].startswith(f"{SITE}/issues/?jql=")
    for block in card["body"]:
        assert block["type"] == "TextBlock"
        text = block["text"]
        found = OPEN_LINK.search(text)
        if found:
            assert found["url"] in pinned
            text = text[: found.start()]
        assert unescaped_markup(text) == [], text
    return card


def unescaped_markup(text: str) -> list[str]:
    """Markdown characters not preceded by a backslash: what Teams would read as markup."""
    found, escaped = [], False
    for char in text:
        if escaped:
            escaped = False
        elif char == "\\":
            escaped = True
        elif char in MARKDOWN:
            found.append(char)
    return found


def texts(card: dict[str, Any]) -> list[str]:
    return [block["text"] for block in card["body"]]


def jql_keys(url: str) -> list[str]:
    [jql] = parse_qs(urlsplit(url).query)["jql"]
    found = re.fullmatch(r"key in \(([^)]*)\)", jql)
    assert found, jql
    return found[1].split(",")


def search_action(card: dict[str, Any]) -> dict[str, Any] | None:
    found = [a for a in card.get("actions", []) if "/issues/?jql=" in a["url"]]
    assert len(found) <= 1
    return found[0] if found else None


# -- The captured payloads ------------------------------------------------------------------


def test_every_payload_in_all_three_cards() -> None:
    found = [e for _, e in envelopes()]
    assert len(found) >= 25
    by_issue: dict[str | None, list[JiraEvent]] = {}
    for envelope in found:
        by_issue.setdefault(envelope.issue.key if envelope.issue else None, []).append(envelope)
    for key, group in by_issue.items():
        card = check(render_combined(group, EventType.ISSUE_UPDATED), group)
        if key:
            assert key in card["body"][1]["text"]
        urls = [e.issue.browse_url for e in group if e.issue and e.issue.browse_url]
        if urls and browse_site(urls[-1]):
            assert card["actions"] == [
                {"type": "Action.OpenUrl", "title": "Open in Jira", "url": urls[-1]}
            ]
    for start in range(0, len(found), 20):
        chunk = found[start : start + 20]
        card = check(render_storm(chunk, channel_name="eng-alerts"), chunk)
        assert card["body"][0]["text"] == f"{len(chunk)} updates while Teams was busy"
    card = check(
        render_digest(found, title="Daily digest", period_label="Today", jira_site=SITE), found
    )
    assert len(card["body"]) == 2 + 20 + 1  # title, period, 20 lines, "and N more"
    assert card["body"][-1]["text"] == f"and {len(found) - 20} more"


# -- Size: whatever the number and size of events -------------------------------------------

piece = st.lists(
    st.one_of(
        st.characters(codec="utf-8", exclude_categories=["Cs"]),
        st.sampled_from([*"*_[]()`~#>-\\<&\"'\n", "😀", "Привет", "<b>", "[a](http://evil)"]),
    ),
    max_size=12,
).map("".join)


@st.composite
def hostile_event(draw: st.DrawFn, key: str) -> JiraEvent:
    def big() -> str:
        return draw(piece) * draw(st.sampled_from([0, 1, 50, 3000]))

    return make(
        key,
        types=draw(st.lists(st.sampled_from([t.value for t in EventType]), min_size=1, max_size=3)),
        summary=big(),
        actor=big() or "Ada",
        changes=[(big() or "status", big(), big()) for _ in range(draw(st.integers(0, 12)))],
        comment=draw(st.one_of(st.none(), st.just(big()))),
        browse_url=draw(
            st.sampled_from(
                ["pinned", None, "https://evil.example/phish", "javascript:alert(1)", "pinned"]
            )
        ),
    )


@st.composite
def hostile_events(draw: st.DrawFn, max_size: int) -> list[JiraEvent]:
    # A few different events, repeated up to max_size: many events without drawing each.
    keys = st.sampled_from(["ADA-1", "B_2-30", "OPS-7", "x" * 500])
    kinds = draw(st.lists(keys.flatmap(hostile_event), min_size=1, max_size=6))
    count = draw(st.integers(1, max_size))
    return [kinds[n % len(kinds)] for n in range(count)]


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(events=hostile_events(300), event_type=st.sampled_from(list(EventType)))
def test_any_events_give_valid_cards_under_the_limit(
    events: list[JiraEvent], event_type: EventType
) -> None:
    check(render_combined(events, event_type), events)
    check(render_storm(events, channel_name=HOSTILE * 100), events)
    card = check(
        render_digest(events, title=HOSTILE * 100, period_label=HOSTILE, jira_site=SITE), events
    )
    action = search_action(card)
    if action is not None:
        assert len(action["url"]) <= MAX_SEARCH_URL_LENGTH


def test_huge_events_are_cut_with_a_note() -> None:
    huge = [
        make(
            f"ADA-{n}",
            types=["comment_created"],
            summary="😀" * 5000,
            actor="Привет" * 1000,
            comment="**" * 20_000,
        )
        for n in range(57)
    ]
    for body in (
        render_combined(huge, EventType.ISSUE_UPDATED),
        render_storm(huge, channel_name="eng"),
        render_digest(huge, title="Digest", period_label="Today", jira_site=SITE),
    ):
        card = check(body, huge)
        lines = [t for t in texts(card) if "Open" in t or "commented" in t]
        note = texts(card)[-1]
        hidden = int(re.search(r"(\d+) more", note)[1])  # type: ignore[index]
        assert 0 < len(lines) <= 20
        assert len(lines) + hidden == len(huge)
        assert note.startswith((f"… {hidden} more not shown", f"and {hidden} more"))


def test_text_is_shortened_before_lines_are_left_out() -> None:
    # A backslash takes 4 bytes as posted (escaped for Markdown, then for JSON); long keys
    # make long links.
    events = [make("K" * 300 + f"-{n}", summary="\\" * 1000) for n in range(20)]
    body = render_digest(events, title="\\" * 1000, period_label="\\" * 1000, jira_site=SITE)
    card = check(body, events)
    lines = texts(card)[2:]
    assert len(lines) == 20  # all of them, no "and N more"
    assert all(OPEN_LINK.sub("", line).endswith("…") for line in lines)


def test_lines_are_left_out_when_shorter_text_is_not_enough(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Only very long (pinned) links fill a real card past its shortest text; a lower limit
    shows how lines are then left out, and that the note and the search stay exact."""
    limit = 4000
    monkeypatch.setattr(summary_cards, "MAX_MESSAGE_BYTES", limit)
    events = [
        make(f"ADA-{n}", types=["comment_created"], summary="😀" * 1000, comment="😀" * 1000)
        for n in range(30)
    ]
    bodies = {
        "combined": render_combined(events, EventType.ISSUE_UPDATED),
        "storm": render_storm(events, channel_name="eng"),
        "digest": render_digest(events, title="D", period_label="P", jira_site=SITE),
    }
    for name, body in bodies.items():
        assert len(body) < limit
        card = card_of(body)
        assert_valid(card)
        lines = [t for t in texts(card) if t.startswith("Ada ")]
        hidden = int(re.search(r"(\d+) more", texts(card)[-1])[1])  # type: ignore[index]
        assert 0 < len(lines) < 20, name
        assert len(lines) + hidden == 30, name
    action = search_action(card_of(bodies["digest"]))
    assert action is not None
    assert jql_keys(action["url"]) == [f"ADA-{n}" for n in range(hidden - 1, -1, -1)]


def test_a_card_is_never_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    """Even when not one line fits, a short card says where to look instead."""
    monkeypatch.setattr(summary_cards, "MAX_MESSAGE_BYTES", 600)
    events = [make(f"ADA-{n}", summary="😀" * 1000) for n in range(30)]
    for body in (
        render_combined(events, EventType.ISSUE_UPDATED),
        render_storm(events, channel_name="eng"),
        render_digest(events, title="D", period_label="P", jira_site=SITE),
    ):
        assert len(body) < 600
        card = card_of(body)
        assert_valid(card)
        assert len(card["body"]) == 2
        assert texts(card)[1].endswith(("open Jira to see them.", "what changed.", "stands for."))


def test_what_fits_is_not_cut() -> None:
    events = [make(f"ADA-{n}", comment=f"note {n}") for n in range(20)]
    for body in (
        render_combined(events, EventType.COMMENT_CREATED),
        render_storm(events, channel_name="eng"),
        render_digest(events, title="Digest", period_label="Today", jira_site=SITE),
    ):
        card = check(body, events)
        assert not any("more" in t for t in texts(card)), texts(card)
        assert "actions" not in card or search_action(card) is None


def test_a_huge_title_key_and_channel_still_fit() -> None:
    key = "K" * 100_000 + "-1"
    events = [make(key, summary="s" * 100_000, browse_url=f"{SITE}/browse/{key}")]
    for body in (
        render_combined(events, EventType.ISSUE_UPDATED),
        render_storm(events, channel_name="c" * 100_000),
        render_digest(events, title="t" * 100_000, period_label="p" * 100_000, jira_site=SITE),
    ):
        card = check(body, events)
        assert "actions" not in card  # a 100 KB link alone would not fit


# -- Order ----------------------------------------------------------------------------------


def test_combined_lists_the_changes_oldest_first_and_sums_them_up() -> None:
    events = [
        make(changes=[("status", "To Do", "In Progress")], actor="Ada"),
        make(changes=[("status", "In Progress", "Done")], actor="Ada"),
        make(changes=[("assignee", "Ada", "Grace")], actor="Grace"),
        make(types=["comment_created"], comment="first comment", actor="Grace"),
        make(types=["comment_created"], comment="second comment", actor="Bo"),
    ]
    card = check(render_combined(events, EventType.ISSUE_UPDATED), events)
    shown = texts(card)
    assert shown[:5] == [
        "Issue Updated",
        "ADA-12 · 5 updates",
        "Login fails",
        "Status: To Do → In Progress → Done · Assignee: Ada → Grace · 2 comments",
        "By Ada, Grace, Bo",
    ]
    assert shown[5:] == [
        "Ada changed Status: To Do → In Progress",
        "Ada changed Status: In Progress → Done",
        "Grace changed Assignee: Ada → Grace",
        "Grace commented: “first comment”",
        "Bo commented: “second comment”",
    ]
    assert card["actions"] == [
        {"type": "Action.OpenUrl", "title": "Open in Jira", "url": f"{SITE}/browse/ADA-12"}
    ]


def test_combined_takes_the_issue_as_its_newest_event_shows_it() -> None:
    events = [make("ADA-12", summary="old"), make("OPS-3", summary="moved and renamed")]
    card = check(render_combined(events, EventType.ISSUE_UPDATED), events)
    assert texts(card)[1:3] == ["OPS-3 · 2 updates", "moved and renamed"]
    assert card["actions"][0]["url"] == f"{SITE}/browse/OPS-3"


def test_storm_keeps_the_order_and_digest_puts_the_newest_first() -> None:
    events = [make(f"ADA-{n}", summary=f"issue {n}") for n in range(1, 6)]
    storm = check(render_storm(events, channel_name="eng"), events)
    assert texts(storm)[2:] == [
        f"Ada updated ADA-{n} — issue {n} · [Open]({SITE}/browse/ADA-{n})" for n in range(1, 6)
    ]
    digest = check(
        render_digest(events, title="Digest", period_label="Today", jira_site=SITE), events
    )
    assert texts(digest)[:2] == ["Digest", "Today · 5 updates"]
    assert [re.search(r"ADA-\d", t)[0] for t in texts(digest)[2:]] == [  # type: ignore[index]
        f"ADA-{n}" for n in range(5, 0, -1)
    ]


# -- The digest's "and N more" search ----------------------------------------------------------


def test_and_n_more_searches_exactly_the_remaining_issues() -> None:
    oldest = [make("OLD-1"), make("OLD-2"), make("OLD-1"), make("GONE-9", types=["issue_deleted"])]
    not_a_key = make("x) OR project = SECRET", browse_url=None)
    events = [*oldest, not_a_key, *[make(f"NEW-{n}") for n in range(1, 21)]]
    card = check(render_digest(events, title="D", period_label="P", jira_site=SITE), events)
    assert texts(card)[-1] == "and 5 more"
    action = search_action(card)
    assert action is not None
    assert action["title"] == "Show them in Jira (2 issues)"
    # Newest first, each issue once; not the deleted one (Jira refuses a search with a key
    # that no longer exists), not a key that is no key.
    assert jql_keys(action["url"]) == ["OLD-1", "OLD-2"]
    assert action["url"] == f"{SITE}/issues/?jql=key%20in%20%28OLD-1%2COLD-2%29"


def test_no_search_link_without_a_jira_site() -> None:
    events = [make(f"ADA-{n}") for n in range(25)]
    for site in (None, "not a site", "https://example.atlassian.net/browse/X-1"):
        card = check(render_digest(events, title="D", period_label="P", jira_site=site), events)
        assert texts(card)[-1] == "and 5 more"
        assert search_action(card) is None
    card = check(render_digest(events, title="D", period_label="P", jira_site=SITE + "/"), events)
    action = search_action(card)
    assert action is not None
    assert action["url"].startswith(f"{SITE}/issues/?jql=")
    assert jql_keys(action["url"]) == [f"ADA-{n}" for n in range(4, -1, -1)]


def test_a_search_of_thousands_of_issues_says_how_many_it_holds() -> None:
    events = [make(f"PROJECT-{n}") for n in range(3000)]
    card = check(render_digest(events, title="D", period_label="P", jira_site=SITE), events)
    action = search_action(card)
    assert action is not None
    assert len(action["url"]) <= MAX_SEARCH_URL_LENGTH
    keys = jql_keys(action["url"])
    assert keys == [f"PROJECT-{n}" for n in range(2979, 2979 - len(keys), -1)]
    assert texts(card)[-1] == f"and 2980 more; the search shows {len(keys)} of their 2980 issues"
    assert action["title"] == f"Show them in Jira ({len(keys)} issues)"


def test_an_empty_digest_is_refused() -> None:
    with pytest.raises(ValueError, match="empty period sends nothing"):
        render_digest([], title="D", period_label="P", jira_site=SITE)
    with pytest.raises(ValueError, match="at least one event"):
        render_combined([], EventType.ISSUE_UPDATED)
    with pytest.raises(ValueError, match="at least one event"):
        render_storm([], channel_name="eng")


# -- Escaping and links -----------------------------------------------------------------------


def test_jira_text_cannot_add_links_or_emphasis() -> None:
    events = [
        make(
            summary=HOSTILE,
            actor=HOSTILE,
            changes=[(HOSTILE, HOSTILE, "# heading")],
            types=["issue_updated", "comment_created"],
            comment=HOSTILE,
        )
    ]
    bodies = [
        render_combined(events, EventType.ISSUE_UPDATED),
        render_storm(events, channel_name=HOSTILE),
        render_digest(events, title=HOSTILE, period_label=HOSTILE, jira_site=SITE),
    ]
    escaped = r"\*\*x\*\* \[a\](http://evil)"
    for body in bodies:
        card = check(body, events)
        every = "\n".join(texts(card))
        assert "[a](http" not in every
        assert "**x**" not in every
        assert escaped in every
    combined = texts(card_of(bodies[0]))
    assert combined[2] == escaped
    assert f"{escaped} changed {escaped}: {escaped} → # heading" in combined[-1]


def test_links_come_only_from_pinned_browse_urls() -> None:
    events = [
        make("ADA-1", browse_url="https://evil.example/phish"),
        make("ADA-2", browse_url="javascript:alert(1)"),
        make("ADA-3", browse_url=f"{SITE}/browse/ADA-3?next=https://evil.example"),
        make("ADA-4", browse_url="http://[::1]:8080/browse/ADA-4"),  # pinned, not for Markdown
    ]
    storm = check(render_storm(events, channel_name="eng"), events)
    assert not any("[Open]" in t for t in texts(storm))
    combined = check(render_combined(events[:3], EventType.ISSUE_UPDATED), events)
    assert "actions" not in combined
    combined = check(render_combined(events, EventType.ISSUE_UPDATED), events)
    assert combined["actions"][0]["url"] == "http://[::1]:8080/browse/ADA-4"


def test_restricted_comments_stay_in_jira() -> None:
    events = [make(types=["comment_created"], comment="salary numbers", visibility="hr")]
    for body in (
        render_combined(events, EventType.COMMENT_CREATED),
        render_storm(events, channel_name="eng"),
        render_digest(events, title="D", period_label="P", jira_site=SITE),
    ):
        assert "salary numbers" not in body.decode()
    assert "Ada commented (visible only to hr)" in texts(
        card_of(render_combined(events, EventType.COMMENT_CREATED))
    )
