"""The words the admin pages use for stored values: statuses, event types, audit actions."""

from __future__ import annotations

from ticketmate.jira.events import EVENT_TYPE_LABELS, EventType

# Delivery statuses, in the Delivery Log's words (the issue names them exactly).
DELIVERY_STATUS_LABELS: dict[str, str] = {
    "pending": "Pending",
    "in_flight": "In flight",
    "delivered": "Delivered",
    "dead_letter": "Dead letter",
    "skipped": "Skipped",
    "folded": "Folded into another card",
    "held": "Held for the digest",
}

# Human label, then the stored action name beside it: "Webhook created · teams.webhook.created".
AUDIT_ACTION_LABELS: dict[str, str] = {
    "teams.webhook.created": "Webhook created",
    "teams.webhook.updated": "Webhook updated",
    "teams.webhook.deleted": "Webhook deleted",
    "teams.webhook.tested": "Test Connection",
    "teams.webhook.auto_disabled": "Webhook disabled automatically",
    "teams.subscription.created": "Subscription created",
    "teams.subscription.updated": "Subscription updated",
    "teams.subscription.deleted": "Subscription deleted",
    "teams.delivery.retried": "Delivery retried",
    "teams.deliveries.retried_bulk": "Dead letters retried",
    "jira.secret.regenerated": "Jira secret regenerated",
    "jira.ingest_token.regenerated": "Jira ingest token regenerated",
    "jira.base_url.learned": "Jira base URL learned from a signed event",
    "jira.base_url.set": "Jira base URL set",
    "jira.base_url.cleared": "Jira base URL cleared",
    "jira.security.updated": "Rule for unknown security levels changed",
    "keys.rotated": "Encryption keys rotated",
    "auth.signin.succeeded": "Signed in",
    "auth.signin.failed": "Sign-in failed",
}

# Groups offered in the audit filter besides single actions (the API takes a `prefix*`).
AUDIT_ACTION_GROUPS: dict[str, str] = {
    "teams.*": "All Microsoft Teams actions",
    "jira.*": "All Jira connection actions",
    "auth.*": "All sign-ins",
}

# Subscription filters: stored name → the field's label in the Setup Guide's words.
FILTER_LABELS: dict[str, str] = {
    "projects": "Project",
    "issue_types": "Issue Type",
    "statuses": "Status",
    "priorities": "Priority",
    "labels": "Labels",
    "components": "Components",
}

URL_KIND_LABELS = {"workflows": "Workflows", "connector": "Connector (legacy)"}

JIRA_EVENT_STATUS_LABELS = {"routed": "Routed", "ignored": "Ignored", "rejected": "Rejected"}


def event_label(value: str | None) -> str:
    """`status_changed` → "Status Changed"; an unknown value is shown as stored."""
    if not value:
        return ""
    try:
        return EVENT_TYPE_LABELS[EventType(value)]
    except ValueError:
        return value


def status_label(value: str) -> str:
    return DELIVERY_STATUS_LABELS.get(value, value)


def action_label(action: str) -> str:
    return AUDIT_ACTION_LABELS.get(action, action)


def event_type_choices() -> list[tuple[str, str]]:
    """(value, label) in the order the UI lists them (the labels' order, as in the issue)."""
    return [(member.value, label) for member, label in EVENT_TYPE_LABELS.items()]
