"""Subscription filters: pure matching of a JiraEvent, with the reason when it does not match.

Within one filter the values are alternatives (OR); different filters must all hold (AND).
An empty or absent filter means any. Names compare case-insensitively; projects by key.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from ticketmate.jira.events import EventType, JiraEvent

FILTER_FIELDS = ("projects", "issue_types", "statuses", "priorities", "labels", "components")

# Security levels are not a narrowing filter but an opt-in: without it a subscription posts
# no restricted issue. Stored in the same filters object; ANY_LEVEL stands for "any level".
SECURITY_FILTER = "security_levels"
ANY_LEVEL = "*"


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


def _issue_named(event: JiraEvent) -> str:
    if event.issue is not None and event.issue.key:
        return f"issue {event.issue.key}"
    return f"issue id {event.issue_id}" if event.issue_id else "the issue"


def security_refusal(
    event: JiraEvent, allowed: Sequence[str] | None, *, withhold_unknown: bool
) -> str | None:
    """None when a subscription that allows `allowed` levels may post the event; else why not.

    An issue with a security level is posted only by a subscription that names the level (or
    allows any level). A comment whose issue's level is not known is posted, unless the
    workspace withholds such comments and the subscription does not allow any level.
    """
    wanted = _fold(allowed or [])
    if ANY_LEVEL in wanted:
        return None
    level = event.security
    if level is not None:
        if level.name is not None and level.name.strip().casefold() in wanted:
            return None
        shown = f"{_issue_named(event)} has the security level '{level.label}'"
        change = event.security_change()
        if change is not None and change.to:
            shown += " (it moved into that level in this change)"
        elif event.security_source == "remembered":
            shown += " (as an earlier event of the issue said; Jira sent none with this one)"
        if not wanted:
            return f"{shown}; the subscription does not include restricted issues"
        return f"{shown}; the subscription includes only {_shown(list(allowed or []))}"
    if event.security_source == "unknown" and withhold_unknown:
        return (
            f"the security level of {_issue_named(event)} is not known (Jira sent none with "
            "this comment and no earlier event of the issue showed one); the workspace "
            "withholds such comments"
        )
    return None


def mismatch(
    event: JiraEvent,
    event_type: str,
    filters: Mapping[str, Sequence[str]],
    *,
    withhold_unknown: bool = False,
) -> str | None:
    """None when the event passes every filter; else why not, e.g. "project DEMO not in [OPS]".

    The security rule comes after the filters, so an event that the filters would have sent
    says that it was withheld for its security level."""
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
    return security_refusal(event, filters.get(SECURITY_FILTER), withhold_unknown=withhold_unknown)
