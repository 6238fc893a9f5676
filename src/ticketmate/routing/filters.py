"""Subscription filters: pure matching of a JiraEvent, with the reason when it does not match.

Within one filter the values are alternatives (OR); different filters must all hold (AND).
An empty or absent filter means any. Names compare case-insensitively; projects by key.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from ticketmate.jira.events import EventType, JiraEvent

FILTER_FIELDS = ("projects", "issue_types", "statuses", "priorities", "labels", "components")


def _fold(values: Sequence[str]) -> set[str]:
    return {v.strip().casefold() for v in values if v.strip()}


def _shown(values: Sequence[str]) -> str:
    return "[" + ", ".join(values) + "]"


def status_for(event: JiraEvent, event_type: str) -> str | None:
    """For status_changed the status the issue moved into; otherwise its current status."""
    if event_type == EventType.STATUS_CHANGED:
        change = event.change("status")
        if change is not None and change.to:
            return change.to
    return event.issue.status if event.issue else None


def _single(name: str, value: str | None, wanted: Sequence[str]) -> str | None:
    if value is None:
        return f"the event has no {name} (filter {_shown(wanted)})"
    if value.strip().casefold() not in _fold(wanted):
        return f"{name} {value} not in {_shown(wanted)}"
    return None


def _any_of(name: str, values: Sequence[str], wanted: Sequence[str]) -> str | None:
    if not _fold(values) & _fold(wanted):
        have = _shown(list(values)) if values else "none"
        return f"{name} {have} not in {_shown(wanted)}"
    return None


def mismatch(event: JiraEvent, event_type: str, filters: Mapping[str, Sequence[str]]) -> str | None:
    """None when the event passes every filter; else why not, e.g. "project DEMO not in [OPS]"."""
    issue = event.issue
    checks: list[tuple[str, Sequence[str]]] = [
        (f, filters.get(f) or []) for f in FILTER_FIELDS if filters.get(f)
    ]
    for field, wanted in checks:
        if field == "projects":
            reason = _single("project", issue.project_key if issue else None, wanted)
        elif field == "issue_types":
            reason = _single("issue type", issue.issue_type if issue else None, wanted)
        elif field == "statuses":
            reason = _single("status", status_for(event, event_type), wanted)
        elif field == "priorities":
            reason = _single("priority", issue.priority if issue else None, wanted)
        elif field == "labels":
            reason = _any_of("labels", issue.labels if issue else [], wanted)
        else:
            reason = _any_of("components", issue.components if issue else [], wanted)
        if reason is not None:
            return reason
    return None
