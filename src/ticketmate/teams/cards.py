"""Adaptive Cards for Teams, built from a JiraEvent by pure functions.

Rules from Teams (see the README): card version 1.4, `msteams.width = Full`, the envelope
`{"type": "message", "attachments": [{"contentType", "contentUrl": null, "content"}]}` with
`contentUrl` present, and the whole serialised body at most 28,672 bytes. Text from Jira is
escaped where it is put into the card, so Jira markup or user text cannot add links or layout.
"""

from __future__ import annotations

import json
import re
from typing import Any

from ticketmate.jira.events import CARD_PRECEDENCE, EVENT_TYPE_LABELS, EventType, JiraEvent
from ticketmate.jira.transform import browse_site

MAX_MESSAGE_BYTES = 28_672
CARD_VERSION = "1.4"
SCHEMA_URL = "http://adaptivecards.io/schemas/adaptive-card.json"
ADAPTIVE_CARD = "application/vnd.microsoft.card.adaptive"

SUMMARY_LIMIT = 250
TEXT_LIMITS = (1500, 800, 300, 0)  # description/comment length tried in turn to fit the size
CHANGE_LIMITS = (20, 8, 3)
NAMES_SHOWN = 10

Element = dict[str, Any]

# Characters that start emphasis, code or links anywhere, and markers that start a list, a
# heading or a quote at the beginning of a line. Other punctuation stays readable as is.
_MARKDOWN = re.compile(r"([\\`*_\[\]~])")
_LINE_START = re.compile(r"^(\s*)(\d+)?([-+#>.)])", re.MULTILINE)
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


def escape(text: str) -> str:
    """Plain text that Teams' Markdown shows as written: no links, emphasis or lists."""
    text = _MARKDOWN.sub(r"\\\1", _CONTROL.sub("", text))
    return _LINE_START.sub(_escape_line_start, text)


def _escape_line_start(match: re.Match[str]) -> str:
    indent, number, marker = match.group(1), match.group(2) or "", match.group(3)
    if number and marker not in ".)":
        return match.group(0)
    if not number and marker in ".)":
        return match.group(0)
    return f"{indent}{number}\\{marker}"


def paragraphs(text: str, limit: int) -> tuple[str, bool]:
    """Escaped text cut to `limit` characters; single newlines become paragraph breaks,
    because some Teams clients ignore a lone newline. Returns (text, was_cut)."""
    text = text.strip()
    cut = len(text) > limit
    if cut:
        text = text[: max(limit - 1, 0)].rstrip() + "…"
    lines = [escape(line.strip()) for line in text.splitlines() if line.strip()]
    return "\n\n".join(lines), cut


def most_specific(event_types: list[EventType]) -> EventType:
    """The event type a card speaks of when one event matched through several."""
    for candidate in CARD_PRECEDENCE:
        if candidate in event_types:
            return candidate
    return EventType.ISSUE_UPDATED


def actor_name(event: JiraEvent) -> str:
    """Who did it, as a card names them ("Someone" when Jira did not say)."""
    if event.comment is not None and event.comment.author and event.actor.display_name is None:
        return event.comment.author
    return event.actor.display_name or event.actor.name or "Someone"


def headline(event: JiraEvent, event_type: EventType) -> str:
    """One sentence saying what happened, e.g. "Alice moved DEMO-12 from In Progress to Done"."""
    issue = event.issue
    key = issue.key if issue and issue.key else "an issue"
    who = actor_name(event)
    if event_type is EventType.ISSUE_CREATED:
        kind = f" {issue.issue_type.lower()}" if issue and issue.issue_type else ""
        return f"{who} created{kind} {key}"
    if event_type is EventType.ISSUE_DELETED:
        return f"{who} deleted {key}"
    if event_type is EventType.STATUS_CHANGED:
        change = event.change("status")
        if change and change.from_ and change.to:
            return f"{who} moved {key} from {change.from_} to {change.to}"
        target = change.to if change and change.to else (issue.status if issue else None)
        return f"{who} moved {key} to {target}" if target else f"{who} changed the status of {key}"
    if event_type is EventType.ISSUE_ASSIGNED:
        change = event.change("assignee")
        assignee = change.to if change else (issue.assignee if issue else None)
        return f"{who} assigned {key} to {assignee}" if assignee else f"{who} unassigned {key}"
    if event_type is EventType.PRIORITY_CHANGED:
        change = event.change("priority")
        if change and change.from_ and change.to:
            return f"{who} changed the priority of {key} from {change.from_} to {change.to}"
        return f"{who} changed the priority of {key}"
    if event_type is EventType.COMMENT_CREATED:
        return f"{who} commented on {key}"
    if event_type is EventType.COMMENT_UPDATED:
        return f"{who} edited a comment on {key}"
    if event_type is EventType.COMMENT_DELETED:
        return f"{who} deleted a comment on {key}"
    fields = sorted({c.field for c in event.changes})
    if fields:
        return f"{who} updated {key} ({', '.join(fields[:5])})"
    return f"{who} updated {key}"


def _names(values: list[str]) -> str:
    shown = values[:NAMES_SHOWN]
    rest = len(values) - len(shown)
    return ", ".join(shown) + (f" and {rest} more" if rest > 0 else "")


def _facts(event: JiraEvent) -> list[dict[str, str]]:
    issue = event.issue
    if issue is None:
        return []
    project = issue.project_name or issue.project_key
    if issue.project_name and issue.project_key:
        project = f"{issue.project_name} ({issue.project_key})"
    pairs = [
        ("Project", project),
        ("Type", issue.issue_type),
        ("Status", issue.status),
        ("Priority", issue.priority),
        ("Assignee", issue.assignee or "Unassigned"),
        ("Reporter", issue.reporter),
        ("Labels", _names(issue.labels) if issue.labels else None),
        ("Components", _names(issue.components) if issue.components else None),
    ]
    return [{"title": t, "value": escape(v[:SUMMARY_LIMIT])} for t, v in pairs if v]


def _change_facts(event: JiraEvent, limit: int) -> list[Element]:
    if not event.changes:
        return []
    facts = [
        {
            "title": escape(c.field.replace("_", " ").capitalize()[:60]),
            "value": f"{escape((c.from_ or '—')[:200])} → {escape((c.to or '—')[:200])}",
        }
        for c in event.changes[:limit]
    ]
    extra: list[Element] = []
    if len(event.changes) > limit:
        extra.append(_text(f"and {len(event.changes) - limit} more changes in Jira", subtle=True))
    return [
        _text("Changes", weight="Bolder", spacing="Medium"),
        {"type": "FactSet", "facts": facts},
        *extra,
    ]


def _text(text: str, **style: Any) -> Element:
    block: Element = {"type": "TextBlock", "text": text, "wrap": True}
    if style.pop("subtle", False):
        block["isSubtle"] = True
    block.update(style)
    return block


def _long_text(event: JiraEvent, event_type: EventType, limit: int) -> list[Element]:
    comment = event.comment
    if event_type in (EventType.COMMENT_CREATED, EventType.COMMENT_UPDATED) and comment:
        if comment.visibility:
            # Restricted comments stay in Jira: the channel may be wider than the audience.
            note = f"This comment is visible only to {escape(comment.visibility)}; open it in Jira."
            return [_text(note, subtle=True, spacing="Medium")]
        if not comment.body or limit == 0:
            return [_text("Open the issue in Jira to read the comment.", subtle=True)]
        body, cut = paragraphs(comment.body, limit)
        blocks = [_text(body, spacing="Medium")]
        if cut:
            blocks.append(_text("The comment continues in Jira.", subtle=True))
        return blocks
    if event_type in (EventType.ISSUE_CREATED, EventType.ISSUE_UPDATED) and event.issue:
        description = event.issue.description
        if description and limit > 0:
            body, cut = paragraphs(description, limit)
            blocks = [_text(body, spacing="Medium")]
            if cut:
                blocks.append(_text("The description continues in Jira.", subtle=True))
            return blocks
    return []


def _open_in_jira(event: JiraEvent) -> list[Element]:
    # Only a link of the form intake makes ({site}/browse/{key}, the site well-formed) becomes
    # a button; intake has already left out links to a site other than the workspace's Jira.
    url = event.issue.browse_url if event.issue else None
    if not url or browse_site(url) is None:
        return []
    return [{"type": "Action.OpenUrl", "title": "Open in Jira", "url": url}]


def build_card(
    event: JiraEvent,
    event_type: EventType,
    *,
    text_limit: int = TEXT_LIMITS[0],
    change_limit: int = CHANGE_LIMITS[0],
) -> Element:
    """The Adaptive Card (the `content` of the attachment) for one event."""
    issue = event.issue
    title = escape(issue.key) if issue and issue.key else "Jira"
    if issue and issue.summary:
        title = f"{title}: {escape(issue.summary[:SUMMARY_LIMIT])}"
    body: list[Element] = [
        _text(escape(EVENT_TYPE_LABELS[event_type]), size="Small", isSubtle=True, spacing="None"),
        _text(escape(headline(event, event_type)), weight="Bolder"),
        _text(title, size="Medium", weight="Bolder", spacing="Small"),
    ]
    facts = _facts(event)
    if facts:
        body.append({"type": "FactSet", "facts": facts})
    elif issue is None:
        body.append(_text("Jira did not say which project this belongs to.", subtle=True))
    if event_type not in (EventType.ISSUE_CREATED, EventType.ISSUE_DELETED):
        body.extend(_change_facts(event, change_limit))
    body.extend(_long_text(event, event_type, text_limit))
    card: Element = {
        "$schema": SCHEMA_URL,
        "type": "AdaptiveCard",
        "version": CARD_VERSION,
        "body": body,
        "msteams": {"width": "Full"},
    }
    actions = _open_in_jira(event)
    if actions:
        card["actions"] = actions
    return card


def envelope(card: Element) -> Element:
    """The Teams message around a card; `contentUrl` must be present for Workflows."""
    return {
        "type": "message",
        "attachments": [{"contentType": ADAPTIVE_CARD, "contentUrl": None, "content": card}],
    }


def serialise(message: Element) -> bytes:
    return json.dumps(message, ensure_ascii=False, separators=(",", ":")).encode()


def render_message(event: JiraEvent, event_type: EventType) -> bytes:
    """The exact body to POST, shortened until it fits Teams' 28 KB limit."""
    for text_limit in TEXT_LIMITS:
        for change_limit in CHANGE_LIMITS:
            body = serialise(
                envelope(
                    build_card(event, event_type, text_limit=text_limit, change_limit=change_limit)
                )
            )
            if len(body) <= MAX_MESSAGE_BYTES:
                return body
    # Unreachable with Jira's own field limits; a last resort that always fits.
    minimal = {
        "$schema": SCHEMA_URL,
        "type": "AdaptiveCard",
        "version": CARD_VERSION,
        "body": [_text(escape(headline(event, event_type))[:1000], weight="Bolder")],
        "actions": _open_in_jira(event),
        "msteams": {"width": "Full"},
    }
    return serialise(envelope(minimal))
