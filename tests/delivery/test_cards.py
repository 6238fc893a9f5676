"""Adaptive Cards: every real payload gives a valid 1.4 card inside Teams' envelope and limit."""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Any

import pytest
from jsonschema import Draft6Validator

from tests.support.teams import event
from ticketmate.jira.events import EventType, JiraEvent
from ticketmate.jira.transform import Transformed, transform
from ticketmate.teams.cards import (
    MAX_MESSAGE_BYTES,
    escape,
    headline,
    most_specific,
    render_message,
)

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
PAYLOADS = sorted((FIXTURES / "jira-payloads").glob("*.json"))


@cache
def validator() -> Draft6Validator:
    schema = json.loads((FIXTURES / "adaptive-card-schema" / "adaptive-card-1.5.json").read_text())
    return Draft6Validator(schema)


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
        assert len(body) <= MAX_MESSAGE_BYTES
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
    assert len(body) <= MAX_MESSAGE_BYTES
    card = card_of(body)
    assert_valid(card)
    texts = [b.get("text", "") for b in card["body"]]
    assert any(t.endswith("…") for t in texts)
    assert "The description continues in Jira." in texts
    assert "THE-END" not in body.decode()


def test_multibyte_text_counts_in_bytes() -> None:
    cyrillic = event(["issue_created"], description="Привет мир. " * 5000)
    body = render_message(cyrillic, EventType.ISSUE_CREATED)
    assert len(body) <= MAX_MESSAGE_BYTES
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
    assert len(body) <= MAX_MESSAGE_BYTES
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
