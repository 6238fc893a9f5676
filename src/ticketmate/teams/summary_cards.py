"""Summary cards: one Adaptive Card for several Jira events, built by pure functions.

Three features send them: per-issue coalescing (`render_combined`), digests (`render_digest`)
and storm control (`render_storm`). The rules of cards.py hold for them: card version 1.4 in
the same envelope, Jira text escaped where it is put into the card, links only from the
envelopes' browse_url (pinned to the workspace's Jira by the intake), and the POSTed body under
28,672 bytes whatever the events: text is shortened first, then lines are left out with a note
saying how many. A summary card is never refused.

Events are given oldest first, in the order they arrived (the channel's delivery order); Jira's
timestamps are not used to reorder them.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from typing import Any
from urllib.parse import quote

from ticketmate.jira.events import EVENT_TYPE_LABELS, EventType, JiraEvent
from ticketmate.jira.transform import NotASite, browse_site, read_site
from ticketmate.teams.cards import (
    CARD_VERSION,
    MAX_MESSAGE_BYTES,
    SCHEMA_URL,
    SUMMARY_LIMIT,
    Element,
    actor_name,
    envelope,
    escape,
    headline,
    most_specific,
    serialise,
)

LINES_SHOWN = 20
# Characters of Jira text per line (and per title or summary), tried in turn until the card fits.
TEXT_LEVELS = (300, 120, 40)
FIELDS_SHOWN = 8  # fields named in a combined card's overview line
NAMES_SHOWN = 5  # people named in "By …"
NAME_LIMIT = 60
# A browse_url longer than this (a hostile issue key) gets no link: it alone could fill the card.
MAX_LINK_LENGTH = 1000
# Jira Server's Tomcat refuses a request whose line and headers pass 8 KB (its cookies count),
# so a digest's search link stops adding keys here and says how many it holds.
MAX_SEARCH_URL_LENGTH = 4000

# A link put into Markdown text ("[Open](url)") must not be able to end the link early or add
# markup; a pinned browse_url is made of these characters unless its host is an IPv6 literal.
_MARKDOWN_SAFE_URL = re.compile(r"https?://[A-Za-z0-9.:/_~%-]+")
# What may stand in a JQL `key in (…)` list unquoted; quote() leaves all of it as it is.
_ISSUE_KEY = re.compile(r"[A-Za-z][A-Za-z0-9_]*-[0-9]+")

Build = Callable[[int, int], Element]  # (lines shown, text limit) -> card


def _text(text: str, **style: Any) -> Element:
    block: Element = {"type": "TextBlock", "text": text, "wrap": True}
    if style.pop("subtle", False):
        block["isSubtle"] = True
    block.update(style)
    return block


def _clip(text: str, limit: int) -> str:
    """Jira text on one line, cut to `limit` characters, escaped for Teams' Markdown."""
    flat = " ".join(text.split())
    if len(flat) > limit:
        flat = flat[: max(limit - 1, 0)].rstrip() + "…"
    return escape(flat)


def _count(n: int, word: str) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


def _card(body: list[Element], actions: list[Element]) -> Element:
    card: Element = {
        "$schema": SCHEMA_URL,
        "type": "AdaptiveCard",
        "version": CARD_VERSION,
        "body": body,
        "msteams": {"width": "Full"},
    }
    if actions:
        card["actions"] = actions
    return card


def _message(card: Element) -> bytes:
    return serialise(envelope(card))


def _fits(body: bytes) -> bool:
    return len(body) < MAX_MESSAGE_BYTES


def _fit(build: Build, lines: int) -> bytes | None:
    """The fullest card that fits: all lines (up to LINES_SHOWN) with text as long as possible,
    else as many lines as fit with the shortest text. None if not even the frame fits."""
    shown = min(lines, LINES_SHOWN)
    for limit in TEXT_LEVELS:
        body = _message(build(shown, limit))
        if _fits(body):
            return body
    limit, best = TEXT_LEVELS[-1], None
    low, high = 0, shown - 1
    while low <= high:  # every body returned was measured, so a non-monotone size is harmless
        middle = (low + high) // 2
        body = _message(build(middle, limit))
        if _fits(body):
            best, low = body, middle + 1
        else:
            high = middle - 1
    return best


def _last_resort(title: str, note: str) -> bytes:
    """A card that always fits: a short title and a fixed note, no Jira text beyond that."""
    card = _card(
        [_text(_clip(title, TEXT_LEVELS[-1]), weight="Bolder"), _text(note, subtle=True)], []
    )
    return _message(card)


def _browse_url(event: JiraEvent) -> str | None:
    """The event's Open in Jira link, only if intake made it ({site}/browse/{key})."""
    url = event.issue.browse_url if event.issue else None
    if not url or len(url) > MAX_LINK_LENGTH or browse_site(url) is None:
        return None
    return url


def _open_in_jira(url: str | None, title: str = "Open in Jira") -> list[Element]:
    return [{"type": "Action.OpenUrl", "title": title, "url": url}] if url else []


def _open_link(event: JiraEvent) -> str:
    url = _browse_url(event)
    if url is None or not _MARKDOWN_SAFE_URL.fullmatch(url):
        return ""
    return f" · [Open]({url})"


def _key(event: JiraEvent) -> str | None:
    return event.issue.key if event.issue and event.issue.key else None


def _cut(text: str | None, limit: int) -> str | None:
    return text if text is None or len(text) <= limit else text[: limit - 1] + "…"


def _shortened(event: JiraEvent, limit: int) -> JiraEvent:
    """The event with each name and value cut to a share of the line, so that a long name
    cannot push what happened out of a line cut at `limit` characters."""
    part = max(min(limit // 4, NAME_LIMIT), 10)
    issue = event.issue
    if issue is not None:
        issue = issue.model_copy(
            update={
                name: _cut(getattr(issue, name), part)
                for name in ("key", "issue_type", "status", "assignee")
            }
        )
    comment = event.comment
    if comment is not None:
        comment = comment.model_copy(update={"author": _cut(comment.author, part)})
    actor = event.actor.model_copy(
        update={
            "display_name": _cut(event.actor.display_name, part),
            "name": _cut(event.actor.name, part),
        }
    )
    changes = [
        c.model_copy(
            update={
                "field": _cut(c.field, part) or "",
                "label": _cut(c.label, part),
                "from_": _cut(c.from_, part),
                "to": _cut(c.to, part),
            }
        )
        for c in event.changes[:10]
    ]
    update = {"issue": issue, "comment": comment, "actor": actor, "changes": changes}
    return event.model_copy(update=update)


def _event_line(event: JiraEvent, limit: int) -> Element:
    """One event of many issues: its headline, the issue's summary, an Open link."""
    raw = headline(_shortened(event, limit), most_specific(event.event_types))
    if event.issue and event.issue.summary:
        raw = f"{raw} — {event.issue.summary}"
    return _text(_clip(raw, limit) + _open_link(event), spacing="Small")


# -- Per-issue coalescing -------------------------------------------------------------------


def _field_name(field: str, label: str | None) -> str:
    return label or field.replace("_", " ").capitalize()


def _overview(events: Sequence[JiraEvent]) -> list[str]:
    """What changed across the events, one phrase per field or kind of change, unescaped:
    ["Status: In Progress → Done", "Assignee: Ada → Grace", "2 comments"]."""
    chains: dict[str, tuple[str, list[str]]] = {}  # field -> (name, values in order)
    for event in events:
        for change in event.changes:
            name, values = chains.setdefault(
                change.field, (_field_name(change.field, change.label), [change.from_ or "—"])
            )
            if values[-1] != (change.to or "—"):
                values.append(change.to or "—")
    phrases = []
    kinds = [t for e in events for t in e.event_types]
    if EventType.ISSUE_CREATED in kinds:
        phrases.append("Created")
    for name, values in list(chains.values())[:FIELDS_SHOWN]:
        shown = values if len(values) <= 3 else [values[0], "…", values[-1]]
        phrases.append(f"{name}: {' → '.join(shown)}")
    if len(chains) > FIELDS_SHOWN:
        phrases.append(f"{_count(len(chains) - FIELDS_SHOWN, 'more field')}")
    for kind, word in (
        (EventType.COMMENT_CREATED, "comment"),
        (EventType.COMMENT_UPDATED, "comment edited"),
        (EventType.COMMENT_DELETED, "comment deleted"),
    ):
        n = sum(kind in e.event_types for e in events)
        if n:
            phrases.append(_count(n, "comment") + word.removeprefix("comment"))
    if EventType.ISSUE_DELETED in kinds:
        phrases.append("Deleted")
    return phrases


def _what_happened(event: JiraEvent) -> str:
    """One event of one issue, unescaped, without the issue's key: "Ada: Status: A → B"."""
    types = event.event_types
    parts: list[str] = []
    if EventType.ISSUE_CREATED in types:
        parts.append("created the issue")
    elif EventType.ISSUE_DELETED in types:
        parts.append("deleted the issue")
    elif event.changes:
        changes = [
            f"{_field_name(c.field, c.label)}: {c.from_ or '—'} → {c.to or '—'}"
            for c in event.changes[:3]
        ]
        more = len(event.changes) - 3
        parts.append("changed " + ", ".join(changes) + (f" and {more} more" if more > 0 else ""))
    comment = event.comment
    if EventType.COMMENT_DELETED in types:
        parts.append("deleted a comment")
    elif EventType.COMMENT_CREATED in types or EventType.COMMENT_UPDATED in types:
        verb = "commented" if EventType.COMMENT_CREATED in types else "edited a comment"
        if comment is not None and comment.visibility:
            # Restricted comments stay in Jira: the channel may be wider than the audience.
            parts.append(f"{verb} (visible only to {comment.visibility})")
        elif comment is not None and comment.body:
            parts.append(f"{verb}: “{comment.body}”")
        else:
            parts.append(verb)
    if not parts:
        parts.append("updated the issue")
    return f"{actor_name(event)} {'; '.join(parts)}"


def _people(events: Sequence[JiraEvent]) -> str:
    names = list(dict.fromkeys(actor_name(e) for e in events))
    shown = ", ".join(_clip(n, NAME_LIMIT) for n in names[:NAMES_SHOWN])
    rest = len(names) - NAMES_SHOWN
    return f"By {shown}" + (f" and {_count(rest, 'other')}" if rest > 0 else "")


def render_combined(events: Sequence[JiraEvent], event_type: EventType) -> bytes:
    """One card for several events of one issue to one channel, the changes oldest first."""
    ordered = list(events)
    if not ordered:
        raise ValueError("A combined card needs at least one event.")
    # The newest event knows the issue best (a move changes its key, an edit its summary).
    issue = next((e.issue for e in reversed(ordered) if e.issue is not None), None)
    key = issue.key if issue and issue.key else None
    url = next((u for e in reversed(ordered) if (u := _browse_url(e)) is not None), None)
    actions = _open_in_jira(url)
    updates = _count(len(ordered), "update")
    overview = _overview(ordered)

    def build(shown: int, limit: int) -> Element:
        title = f"{_clip(key, limit) if key else 'A Jira issue'} · {updates}"
        body = [
            _text(
                escape(EVENT_TYPE_LABELS[event_type]), size="Small", isSubtle=True, spacing="None"
            ),
            _text(title, size="Medium", weight="Bolder", spacing="Small"),
        ]
        if issue and issue.summary:
            body.append(_text(_clip(issue.summary, min(limit, SUMMARY_LIMIT)), spacing="Small"))
        if overview:
            phrase_limit = max(limit // 3, 20)
            text = " · ".join(_clip(p, phrase_limit) for p in overview)
            body.append(_text(text, weight="Bolder", spacing="Medium"))
        body.append(_text(_people(ordered), subtle=True, spacing="Small"))
        for n, event in enumerate(ordered[:shown]):
            line = _clip(_what_happened(_shortened(event, limit)), limit)
            body.append(_text(line, spacing="Medium" if n == 0 else "Small"))
        hidden = len(ordered) - shown
        if hidden:
            body.append(
                _text(
                    f"… {hidden} more not shown; open the issue in Jira to see them.", subtle=True
                )
            )
        return _card(body, actions)

    return _fit(build, len(ordered)) or _last_resort(
        f"{key or 'A Jira issue'} · {updates}", "Open the issue in Jira to see what changed."
    )


# -- Digests --------------------------------------------------------------------------------


def search_url(site: str, keys: Sequence[str]) -> str:
    """A Jira search of exactly these issues: {site}/issues/?jql=key in (A-1,B-2)."""
    return f"{site}/issues/?jql=" + quote(f"key in ({','.join(keys)})", safe="")


def _search(site: str | None, rest: Sequence[JiraEvent], deleted: set[str]) -> tuple[str, int, int]:
    """(link, issues in it, issues of the rest) for the events a digest did not show. Left
    out: events without a well-formed key, and issues the digest saw deleted (Jira refuses
    the whole search for a key that no longer exists)."""
    keys = list(
        dict.fromkeys(
            k.upper()
            for e in rest
            if (k := _key(e)) is not None and _ISSUE_KEY.fullmatch(k) and k.upper() not in deleted
        )
    )
    if site is None or not keys:
        return "", 0, len(keys)
    length, chosen = len(search_url(site, [])), 0
    for key in keys:  # quote() keeps a key as it is; a comma becomes "%2C"
        added = len(key) + (3 if chosen else 0)
        if length + added > MAX_SEARCH_URL_LENGTH:
            break
        length, chosen = length + added, chosen + 1
    return search_url(site, keys[:chosen]), chosen, len(keys)


def _deleted(newest_first: Sequence[JiraEvent]) -> set[str]:
    """Keys whose newest event here deleted the issue."""
    newest: dict[str, JiraEvent] = {}
    for event in newest_first:
        key = _key(event)
        if key is not None:
            newest.setdefault(key.upper(), event)
    return {k for k, e in newest.items() if EventType.ISSUE_DELETED in e.event_types}


def _site(jira_site: str | None) -> str | None:
    if jira_site is None:
        return None
    try:
        return read_site(jira_site)
    except NotASite:
        return None


def render_digest(
    events: Sequence[JiraEvent], *, title: str, period_label: str, jira_site: str | None
) -> bytes:
    """A digest: newest first, up to 20 lines, then "and N more" with a Jira search of
    exactly those issues (no link without the workspace's Jira site)."""
    if not events:
        raise ValueError("A digest needs at least one event: an empty period sends nothing.")
    ordered = list(reversed(events))
    site = _site(jira_site)
    deleted = _deleted(ordered)
    updates = _count(len(ordered), "update")

    def build(shown: int, limit: int) -> Element:
        body = [
            _text(_clip(title, limit), size="Medium", weight="Bolder", spacing="None"),
            _text(f"{_clip(period_label, limit)} · {updates}", subtle=True, spacing="Small"),
        ]
        body.extend(_event_line(e, limit) for e in ordered[:shown])
        rest = ordered[shown:]
        actions: list[Element] = []
        if rest:
            link, linked, issues = _search(site, rest, deleted)
            note = f"and {len(rest)} more"
            if link:
                issue_word = _count(linked, "issue")
                actions = _open_in_jira(link, f"Show them in Jira ({issue_word})")
                if linked < issues:
                    note += f"; the search shows {linked} of their {issues} issues"
            body.append(_text(note, subtle=True, spacing="Medium"))
        return _card(body, actions)

    return _fit(build, len(ordered)) or _last_resort(
        title, f"{updates} in this digest; open Jira to see them."
    )


# -- Storm control --------------------------------------------------------------------------


def render_storm(events: Sequence[JiraEvent], *, channel_name: str) -> bytes:
    """A summary of cards that waited for one channel, oldest first, each with an Open link."""
    ordered = list(events)
    if not ordered:
        raise ValueError("A storm summary needs at least one event.")
    title = f"{_count(len(ordered), 'update')} while Teams was busy"

    def build(shown: int, limit: int) -> Element:
        channel = _clip(channel_name, min(limit, NAME_LIMIT))
        body = [
            _text(title, size="Medium", weight="Bolder", spacing="None"),
            _text(
                f"So many cards were waiting for {channel} that Ticket MATE combined them into "
                "one message, oldest first.",
                subtle=True,
                spacing="Small",
            ),
        ]
        body.extend(_event_line(e, limit) for e in ordered[:shown])
        hidden = len(ordered) - shown
        if hidden:
            body.append(
                _text(f"… {hidden} more not shown; the Delivery Log lists them.", subtle=True)
            )
        return _card(body, [])

    return _fit(build, len(ordered)) or _last_resort(
        title, "The Delivery Log lists the updates this message stands for."
    )
