"""JiraEvent: the one envelope every stage after intake works with.

The transformer (jira/transform.py) builds it from a raw payload; the router, the card
builders and the API all read it. Field names are the ones the API shows.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_serializer

from ticketmate.timeutil import rfc3339


class EventType(StrEnum):
    """The product's event vocabulary: what a subscription listens for."""

    ISSUE_CREATED = "issue_created"
    ISSUE_UPDATED = "issue_updated"
    ISSUE_DELETED = "issue_deleted"
    STATUS_CHANGED = "status_changed"
    ISSUE_ASSIGNED = "issue_assigned"
    PRIORITY_CHANGED = "priority_changed"
    COMMENT_CREATED = "comment_created"
    COMMENT_UPDATED = "comment_updated"
    COMMENT_DELETED = "comment_deleted"


# The words the UI and the cards use for each event type.
EVENT_TYPE_LABELS: dict[EventType, str] = {
    EventType.ISSUE_CREATED: "Issue Created",
    EventType.ISSUE_UPDATED: "Issue Updated",
    EventType.STATUS_CHANGED: "Status Changed",
    EventType.ISSUE_ASSIGNED: "Issue Assigned",
    EventType.PRIORITY_CHANGED: "Priority Changed",
    EventType.ISSUE_DELETED: "Issue Deleted",
    EventType.COMMENT_CREATED: "Comment Added",
    EventType.COMMENT_UPDATED: "Comment Updated",
    EventType.COMMENT_DELETED: "Comment Deleted",
}

# When one event reaches a channel through several types, its card speaks of the most specific.
CARD_PRECEDENCE: tuple[EventType, ...] = (
    EventType.ISSUE_CREATED,
    EventType.ISSUE_DELETED,
    EventType.COMMENT_CREATED,
    EventType.COMMENT_UPDATED,
    EventType.COMMENT_DELETED,
    EventType.STATUS_CHANGED,
    EventType.ISSUE_ASSIGNED,
    EventType.PRIORITY_CHANGED,
    EventType.ISSUE_UPDATED,
)


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Actor(_Model):
    display_name: str | None = None
    account_id: str | None = None
    name: str | None = None


class Issue(_Model):
    id: str | None = None
    key: str | None = None
    summary: str | None = None
    project_key: str | None = None
    project_name: str | None = None
    issue_type: str | None = None
    status: str | None = None
    status_category: str | None = None  # new | indeterminate | done
    priority: str | None = None
    assignee: str | None = None
    reporter: str | None = None
    labels: list[str] = Field(default_factory=list)
    components: list[str] = Field(default_factory=list)
    browse_url: str | None = None
    description: str | None = None  # plain text (ADF converted, wiki text kept)


class Change(_Model):
    """One changelog item, in display strings. `field` is the canonical lower-case id."""

    model_config = ConfigDict(frozen=True, extra="forbid", populate_by_name=True)

    field: str
    from_: str | None = Field(default=None, alias="from")
    to: str | None = None
    # The field's name as Jira showed it ("Fix Version", "MJK - Radio Buttons"): what a card
    # should print for custom fields, whose canonical id is only "customfield_10073".
    label: str | None = None


class Comment(_Model):
    id: str | None = None
    author: str | None = None
    body: str | None = None  # plain text
    visibility: str | None = None  # null, or the group/role the comment is restricted to


class SecurityLevel(_Model):
    """An issue security level (`issue.fields.security`): who in Jira may see the issue."""

    id: str | None = None
    name: str | None = None
    description: str | None = None

    @property
    def label(self) -> str:
        return self.name or (f"id {self.id}" if self.id else "unnamed")


# How the event's security level is known:
#   payload     the issue's fields said (a full issue without `security` is unrestricted)
#   changelog   only the event's changelog said (the level it moved into, or out of)
#   remembered  Jira sent none (a comment with a trimmed issue or none); an earlier event of
#               the same issue did
#   unknown     Jira sent none and no earlier event of the issue was seen
SecuritySource = Literal["payload", "changelog", "remembered", "unknown"]


class JiraEvent(_Model):
    event_types: list[EventType]
    jira_event: str | None = None  # webhookEvent, absent on Automation bodies
    jira_event_id: str | None = None  # X-Atlassian-Webhook-Identifier
    issue_event_type_name: str | None = None
    occurred_at: datetime | None = None
    actor: Actor = Field(default_factory=Actor)
    issue: Issue | None = None
    changes: list[Change] = Field(default_factory=list)
    comment: Comment | None = None
    # The issue's id, also when Jira sent only a comment (read from the comment's URL): the
    # key under which the issue's security level is remembered (it survives a move).
    issue_id: str | None = None
    # The issue's security level after this event (None: unrestricted, or not known — see
    # security_source). Envelopes stored before levels were read have neither field, and
    # were routed as unrestricted.
    security: SecurityLevel | None = None
    security_source: SecuritySource | None = None
    # Two reports of one happening share this key (Jira Server reports a new comment both as
    # comment_created and as jira:issue_updated/issue_commented): intake routes only the first.
    dedupe_key: str | None = None
    # What the payload lacked or how it was read, in words an administrator can act on
    # ("Jira sent no issue with this comment, so it has no project").
    notes: list[str] = Field(default_factory=list)

    @field_serializer("occurred_at", when_used="json")
    def _rfc3339(self, value: datetime | None) -> str | None:
        # The product's one time format (UTC, "Z"), in the API and in the stored envelope.
        return rfc3339(value)

    def change(self, field: str) -> Change | None:
        """The first change of a canonical field (status, assignee, priority, …), if any."""
        return next((c for c in self.changes if c.field == field), None)

    @property
    def restricted(self) -> bool:
        return self.security is not None

    def security_change(self) -> Change | None:
        """The changelog item that moved the issue into or out of a security level."""
        return self.change("security")

    def as_json(self) -> dict[str, object]:
        return self.model_dump(mode="json", by_alias=True)
