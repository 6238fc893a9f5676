"""Adaptive Cards: every real payload gives a valid 1.4 card inside Teams' envelope and limit."""

from __future__ import annotations

import json
from collections.abc import Iterator
from functools import cache
from pathlib import Path
from typing import Any

import pytest
from jsonschema import Draft6Validator

from tests.support.factories import MadeWorkspace
from tests.support.teams import (
    deliveries,
    drain,
    event,
    make_subscription,
    make_webhook,
    store_and_route,
)
from ticketmate.dev.teams_sink import TeamsSink
from ticketmate.jira.events import EventType, JiraEvent
from ticketmate.jira.transform import Transformed, transform
from ticketmate.state import Services
from ticketmate.teams.cards import (
    CHANGE_LIMITS,
    TEXT_LIMITS,
    build_card,
    envelope,
    escape,
    headline,
    most_specific,
    render_message,
    serialise,
)

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
PAYLOADS = sorted((FIXTURES / "jira-payloads").glob("*.json"))
# Teams' limit, as its Workflows error states it: "max allowed size is 28672 bytes".
TEAMS_LIMIT_BYTES = 28_672
CARD_VERSION = (1, 4)  # what Teams shows through Workflows; higher ones "couldn't be displayed"


@cache
def schema() -> dict[str, Any]:
    found: dict[str, Any] = json.loads(
        (FIXTURES / "adaptive-card-schema" / "adaptive-card-1.5.json").read_text()
    )
    return found


@cache
def validator() -> Draft6Validator:
    return Draft6Validator(schema())


# -- Which card version each element and property needs ----------------------------------
# The schema validates 1.0-1.5 alike, but marks what came later with "version": on a
# definition (Table 1.5, ActionSet 1.2, TextBlockStyle 1.5, ...) or on a property (rtl 1.5,
# Action tooltip/isEnabled/mode 1.5, isVisible 1.2, ...), own or inherited through allOf.


def _definition(ref: str) -> str:
    return ref.removeprefix("#/definitions/")


def _refs(node: dict[str, Any]) -> list[str]:
    """The definitions a property's schema names, directly or as one of its alternatives."""
    found = [_definition(node["$ref"])] if "$ref" in node else []
    for key in ("anyOf", "allOf", "oneOf"):
        found += [_definition(b["$ref"]) for b in node.get(key, []) if "$ref" in b]
    return found


@cache
def _properties(name: str) -> dict[str, dict[str, Any]]:
    """A definition's properties, with those it inherits (allOf) and those of its object
    alternative (anyOf, as TextRun's); the inheriting definition's own schema wins unless
    it is an empty placeholder."""
    definition = schema()["definitions"][name]
    merged: dict[str, dict[str, Any]] = {}
    for base in definition.get("allOf", []):
        if "$ref" in base:
            merged.update(_properties(_definition(base["$ref"])))
    branches = [definition, *(b for b in definition.get("anyOf", []) if "properties" in b)]
    for branch in branches:
        for key, prop in branch.get("properties", {}).items():
            key = key.rstrip("?")  # the schema spells rtl "rtl?" on Container and TableCell
            if prop or key not in merged:
                merged[key] = prop
    return merged


def _versions_of(value: Any, name: str, where: str) -> Iterator[tuple[str, str]]:
    definition = schema()["definitions"][name]
    if "version" in definition:
        yield where, definition["version"]
    if not isinstance(value, dict):
        return
    properties = _properties(name)
    for key, item in value.items():
        prop = properties.get(key, {})
        if "version" in prop:
            yield f"{where}.{key}", prop["version"]
        if isinstance(item, list):
            for n, each in enumerate(item):
                yield from _versions_inside(each, prop.get("items", {}), f"{where}.{key}[{n}]")
        else:
            yield from _versions_inside(item, prop, f"{where}.{key}")


def _versions_inside(value: Any, prop: dict[str, Any], where: str) -> Iterator[tuple[str, str]]:
    definitions = schema()["definitions"]
    if isinstance(value, dict) and value.get("type") in definitions:
        yield from _versions_of(value, value["type"], where)  # an element, action or inline
        return
    named = [r for r in _refs(prop) if not r.startswith("ImplementationsOf.")]
    if len(named) == 1:  # e.g. a Fact, or a value of TextBlockStyle or ActionMode
        yield from _versions_of(value, named[0], where)


def versions_used(card: dict[str, Any]) -> list[tuple[str, str]]:
    """(where, version) for every element and property of the card that has one."""
    return list(_versions_of(card, "AdaptiveCard", "card"))


def newer_than_declared(card: dict[str, Any]) -> list[tuple[str, str]]:
    return [
        (where, version)
        for where, version in versions_used(card)
        if tuple(int(n) for n in version.split(".")) > CARD_VERSION
    ]


def card_of(body: bytes) -> dict[str, Any]:
    message = json.loads(body)
    assert message["type"] == "message"
    [attachment] = message["attachments"]
    assert attachment["contentType"] == "application/vnd.microsoft.card.adaptive"
    assert "contentUrl" in attachment
    assert attachment["contentUrl"] is None
    card: dict[str, Any] = attachment["content"]
    return card


def assert_valid(card: dict[str, Any]) -> None:
    assert card["version"] == "1.4"
    assert card["msteams"] == {"width": "Full"}
    copy = {k: v for k, v in card.items() if k != "msteams"}
    errors = sorted(validator().iter_errors(copy), key=lambda e: list(e.path))
    assert not errors, [f"{list(e.path)}: {e.message}" for e in errors[:3]]
    # Valid in the 1.5 schema is not enough: nothing in it may need more than 1.4.
    assert newer_than_declared(card) == []
    for action in card.get("actions", []):
        assert action["type"] in {"Action.OpenUrl", "Action.ShowCard", "Action.ToggleVisibility"}


def envelopes() -> list[tuple[str, JiraEvent]]:
    found = []
    for path in PAYLOADS:
        outcome = transform(json.loads(path.read_bytes()))
        if isinstance(outcome, Transformed):
            found.append((path.name, outcome.envelope))
    return found


def test_most_payloads_become_events() -> None:
    assert len(PAYLOADS) == 30
    assert len(envelopes()) >= 25


@pytest.mark.parametrize(
    ("name", "envelope"), envelopes(), ids=lambda v: v if isinstance(v, str) else ""
)
def test_every_card_from_every_payload_is_valid(name: str, envelope: JiraEvent) -> None:
    for event_type in envelope.event_types:
        body = render_message(envelope, event_type)
        assert len(body) <= TEAMS_LIMIT_BYTES
        card = card_of(body)
        assert_valid(card)
        texts = json.dumps(card, ensure_ascii=False)
        if envelope.issue and envelope.issue.key:
            assert envelope.issue.key in texts
        if envelope.issue and envelope.issue.browse_url:
            assert card["actions"] == [
                {
                    "type": "Action.OpenUrl",
                    "title": "Open in Jira",
                    "url": envelope.issue.browse_url,
                }
            ]


def test_what_each_version_added_is_found_in_a_card() -> None:
    """The version check itself: 1.5's additions (Table and its parts, rtl, the heading
    style, an action's tooltip, isEnabled and mode) and older ones are found where used,
    inherited properties included; what our cards use needs no more than 1.4."""
    card = {
        "type": "AdaptiveCard",
        "version": "1.4",
        "rtl": False,
        "body": [
            {"type": "TextBlock", "text": "a", "style": "heading", "wrap": True},
            {
                "type": "Table",
                "columns": [{"width": 1}],
                "rows": [
                    {
                        "type": "TableRow",
                        "cells": [
                            {"type": "TableCell", "items": [{"type": "TextBlock", "text": "x"}]}
                        ],
                    }
                ],
            },
            {"type": "ColumnSet", "columns": [{"type": "Column", "rtl": True, "items": []}]},
            {"type": "ActionSet", "isVisible": True, "actions": []},
            {"type": "FactSet", "facts": [{"title": "Status", "value": "Done"}]},
        ],
        "actions": [
            {"type": "Action.OpenUrl", "title": "Open", "url": "https://x.test", "tooltip": "t"},
            {
                "type": "Action.OpenUrl",
                "title": "Open",
                "url": "https://x.test",
                "mode": "secondary",
            },
            {"type": "Action.OpenUrl", "title": "Open", "url": "https://x.test", "isEnabled": True},
        ],
    }
    assert not list(validator().iter_errors(card))  # the 1.5 schema takes all of it
    assert set(newer_than_declared(card)) == {
        ("card.rtl", "1.5"),
        ("card.body[0].style", "1.5"),
        ("card.body[1]", "1.5"),
        ("card.body[1].columns[0]", "1.5"),
        ("card.body[1].rows[0]", "1.5"),
        ("card.body[1].rows[0].cells[0]", "1.5"),
        ("card.body[2].columns[0].rtl", "1.5"),
        ("card.actions[0].tooltip", "1.5"),
        ("card.actions[1].mode", "1.5"),
        ("card.actions[2].isEnabled", "1.5"),
    }
    used = set(versions_used(card))
    assert ("card.body[3]", "1.2") in used  # ActionSet
    assert ("card.body[3].isVisible", "1.2") in used  # inherited through two allOf levels
    ours = card_of(render_message(event(["issue_created"]), EventType.ISSUE_CREATED))
    assert newer_than_declared(ours) == []


def test_the_bytes_posted_to_teams_fit_its_28_kb_limit(
    svc: Services, workspace: MadeWorkspace, sink: TeamsSink
) -> None:
    """What reaches the Teams stand-in, byte for byte, for events with far too much text,
    one of which gives a card that must be shortened to fit."""
    hook = make_webhook(svc, workspace.id, "eng", sink.url("/workflows/eng"))
    make_subscription(svc, workspace.id, hook, "issue_created")
    make_subscription(svc, workspace.id, hook, "issue_updated")
    emoji = JiraEvent.model_validate(
        {
            **event(["issue_updated"], key="DEMO-4", summary="😀" * 5000).as_json(),
            "changes": [
                {"field": "😀" * 300 + str(n), "from": "😀" * 3000, "to": "😀" * 3000}
                for n in range(200)
            ],
        }
    )
    whole = build_card(
        emoji, EventType.ISSUE_UPDATED, text_limit=TEXT_LIMITS[0], change_limit=CHANGE_LIMITS[0]
    )
    assert len(serialise(envelope(whole))) > TEAMS_LIMIT_BYTES  # this one needs shortening
    large = [
        event(["issue_created"], key="DEMO-1", description="word " * 20_000 + "THE-END"),
        event(["issue_created"], key="DEMO-2", description="Привет мир. " * 5000),
        event(["issue_created"], key="DEMO-3", labels=[f"label-{n}" for n in range(300)]),
        emoji,
    ]
    for envelope_ in large:
        store_and_route(svc, workspace.id, envelope_)
    svc.settings = svc.settings.model_copy(update={"channel_rate_per_second": 100})
    assert drain(svc).delivered == len(large)
    received = sink.received("/workflows/eng")
    assert len(received) == len(large)
    assert [r.body for r in received] == [d.message.encode() for d in deliveries(svc, workspace.id)]
    for arrived in received:
        assert len(arrived.body) <= TEAMS_LIMIT_BYTES
        assert_valid(card_of(arrived.body))


def test_status_change_headline_from_a_real_payload() -> None:
    [envelope] = [
        e for n, e in envelopes() if n.endswith("issue-updated-status-todo-to-inprogress.json")
    ]
    assert EventType.STATUS_CHANGED in envelope.event_types
    change = envelope.change("status")
    assert change is not None
    line = headline(envelope, EventType.STATUS_CHANGED)
    assert line.endswith(f"moved {envelope.issue.key} from {change.from_} to {change.to}")  # type: ignore[union-attr]


def test_a_100_kb_description_is_cut_to_fit() -> None:
    long = event(["issue_created"], description="word " * 20_000 + "THE-END")
    body = render_message(long, EventType.ISSUE_CREATED)
    assert len(body) <= TEAMS_LIMIT_BYTES
    card = card_of(body)
    assert_valid(card)
    texts = [b.get("text", "") for b in card["body"]]
    assert any(t.endswith("…") for t in texts)
    assert "The description continues in Jira." in texts
    assert "THE-END" not in body.decode()


def test_multibyte_text_counts_in_bytes() -> None:
    cyrillic = event(["issue_created"], description="Привет мир. " * 5000)
    body = render_message(cyrillic, EventType.ISSUE_CREATED)
    assert len(body) <= TEAMS_LIMIT_BYTES
    assert "Привет" in body.decode()


def test_many_labels_and_changes_are_summarised() -> None:
    labels = [f"label-{n}" for n in range(300)]
    noisy = JiraEvent.model_validate(
        {
            **event(["issue_updated"], labels=labels).as_json(),
            "changes": [
                {"field": f"customfield_{n}", "from": "a" * 200, "to": "b" * 200}
                for n in range(200)
            ],
        }
    )
    body = render_message(noisy, EventType.ISSUE_UPDATED)
    assert len(body) <= TEAMS_LIMIT_BYTES
    text = body.decode()
    assert "and 290 more" in text
    assert "more changes in Jira" in text
    assert_valid(card_of(body))


def test_jira_text_cannot_add_links_or_layout() -> None:
    sneaky = event(
        ["issue_created"],
        summary="[Click me](https://evil.example.com) **now**",
        description="# Heading\n- item\n1. first\n<at>Everyone</at>",
    )
    card = card_of(render_message(sneaky, EventType.ISSUE_CREATED))
    texts = json.dumps(card)
    assert "[Click me](https" not in texts
    assert "\\\\[Click me\\\\](https://evil.example.com) \\\\*\\\\*now\\\\*\\\\*" in texts
    description = card["body"][-1]["text"]
    assert description.split("\n\n")[:3] == ["\\# Heading", "\\- item", "1\\. first"]
    assert escape("a_b*c") == "a\\_b\\*c"


def test_single_newlines_become_paragraphs() -> None:
    card = card_of(
        render_message(
            event(["issue_created"], description="one\ntwo\n\nthree"), EventType.ISSUE_CREATED
        )
    )
    assert card["body"][-1]["text"] == "one\n\ntwo\n\nthree"


def test_restricted_comments_stay_in_jira() -> None:
    restricted = JiraEvent.model_validate(
        {
            **event(["comment_created"]).as_json(),
            "comment": {"id": "1", "author": "Bo", "body": "salary numbers", "visibility": "hr"},
        }
    )
    body = render_message(restricted, EventType.COMMENT_CREATED).decode()
    assert "salary numbers" not in body
    assert "visible only to hr" in body


def test_the_most_specific_card_wins() -> None:
    assert (
        most_specific([EventType.ISSUE_UPDATED, EventType.ISSUE_ASSIGNED])
        is EventType.ISSUE_ASSIGNED
    )
    assert (
        most_specific(
            [EventType.PRIORITY_CHANGED, EventType.STATUS_CHANGED, EventType.ISSUE_ASSIGNED]
        )
        is EventType.STATUS_CHANGED
    )
    assert most_specific([EventType.ISSUE_UPDATED]) is EventType.ISSUE_UPDATED


@pytest.mark.parametrize(
    ("event_type", "expected"),
    [
        (EventType.ISSUE_CREATED, "Alice created bug DEMO-1"),
        (EventType.ISSUE_DELETED, "Alice deleted DEMO-1"),
        (EventType.ISSUE_ASSIGNED, "Alice unassigned DEMO-1"),
        (EventType.COMMENT_CREATED, "Alice commented on DEMO-1"),
        (EventType.COMMENT_UPDATED, "Alice edited a comment on DEMO-1"),
        (EventType.COMMENT_DELETED, "Alice deleted a comment on DEMO-1"),
        (EventType.PRIORITY_CHANGED, "Alice changed the priority of DEMO-1"),
    ],
)
def test_headlines(event_type: EventType, expected: str) -> None:
    assert headline(event([event_type.value]), event_type) == expected
