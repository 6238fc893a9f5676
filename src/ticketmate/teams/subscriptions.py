"""Teams subscriptions: which events go to which webhook, narrowed by filters.

A subscription belongs to one webhook of the same workspace; its filters are stored as given
(trimmed, one value per case-insensitive name) and matched by routing/filters.py. Every
change is audit-logged.

Functions here work inside the caller's transaction (`with svc.db.transaction()`); they flush
but never commit. Every change (create, update, enable/disable, delete) also moves the
workspace's configuration generation on (workspaces/generation.py), once per call; a webhook's
cascade delete (teams/webhooks.py) moves it once for the webhook and its subscriptions.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, Field, StrictBool, field_validator, model_validator
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from ticketmate.audit.service import Actor, RequestInfo, record
from ticketmate.jira.events import EVENT_TYPE_LABELS, EventType
from ticketmate.models import TeamsSubscription, TeamsWebhook
from ticketmate.pagination import Page, fetch_page
from ticketmate.routing.filters import ANY_LEVEL, SECURITY_FILTER
from ticketmate.routing.preview import Preview, preview
from ticketmate.teams.digest_schedule import (
    COMBINE_WINDOWS,
    ScheduleError,
    combine_text,
    parse_schedule,
)
from ticketmate.teams.webhooks import StrictInput, TeamsError, WebhookId, no_null
from ticketmate.timeutil import rfc3339, utcnow
from ticketmate.workspaces.generation import bump_generation

log = logging.getLogger(__name__)

SUBSCRIPTION_TARGET = "teams_subscription"
FILTER_NAMES = ("projects", "issue_types", "statuses", "priorities", "labels", "components")
MAX_FILTER_VALUES = 100
MAX_FILTER_VALUE_LENGTH = 255


# -- inputs (the API's request bodies; the CLI builds the same) ------------------------------


EVENT_TYPES = tuple(member.value for member in EventType)


def _event_type(value: str) -> str:
    if value not in EVENT_TYPES:
        raise ValueError(f"unknown event type {value[:40]!r}; use one of: {', '.join(EVENT_TYPES)}")
    return value


def _filter_values(values: list[str] | None) -> list[str]:
    if values is None:
        return []
    if len(values) > MAX_FILTER_VALUES:
        raise ValueError(f"at most {MAX_FILTER_VALUES} values are allowed, not {len(values)}")
    cleaned: list[str] = []
    seen: set[str] = set()
    for value in values:
        value = value.strip()
        if not value:
            raise ValueError("values must not be empty strings; an empty list matches any")
        if len(value) > MAX_FILTER_VALUE_LENGTH:
            raise ValueError(f"each value must be at most {MAX_FILTER_VALUE_LENGTH} characters")
        # Matching is case-insensitive, so "Bug" and "bug" are one value.
        if value.casefold() not in seen:
            seen.add(value.casefold())
            cleaned.append(value)
    return cleaned


EventTypeName = Annotated[
    str,
    AfterValidator(_event_type),
    Field(
        description="One of: " + ", ".join(EVENT_TYPES),
        json_schema_extra={"enum": list(EVENT_TYPES)},
    ),
]
FilterValues = Annotated[
    list[str] | None,
    AfterValidator(_filter_values),
    Field(
        description=(
            f"Names to match (case-insensitive; project by key); at most {MAX_FILTER_VALUES}. "
            "Empty or absent matches any."
        )
    ),
]


def _security_levels(value: list[str] | str | None) -> list[str] | str | None:
    if value is None or value == "any":
        return value
    if isinstance(value, str):
        raise ValueError('give a list of security level names, or "any"')
    names = _filter_values(value)
    if ANY_LEVEL in names:
        raise ValueError(f'"{ANY_LEVEL}" is not a level name; use "any" for any level')
    return names


SecurityLevels = Annotated[
    list[str] | Literal["any"] | None,
    AfterValidator(_security_levels),
    Field(
        description=(
            "The issue security levels this subscription may post (names, case-insensitive), "
            'or "any". Empty or absent: issues with a security level are never posted. The '
            "channel's members will see those issues' summaries."
        )
    ),
]


def stored_security_levels(filters: dict[str, Any] | None) -> list[str] | Literal["any"]:
    """A stored filters object's security levels as the API shows them."""
    stored = list((filters or {}).get(SECURITY_FILTER) or [])
    return "any" if ANY_LEVEL in stored else stored


class SubscriptionFilters(StrictInput):
    """Values within one filter OR, filters AND. For `status_changed`, `statuses` means the
    status the issue moved into; otherwise the issue's current status. `security_levels` is
    not a narrowing filter but an opt-in to restricted issues."""

    projects: FilterValues = None
    issue_types: FilterValues = None
    statuses: FilterValues = None
    priorities: FilterValues = None
    labels: FilterValues = None
    components: FilterValues = None
    security_levels: SecurityLevels = None

    def as_stored(self) -> dict[str, list[str]]:
        stored = {name: list(getattr(self, name) or []) for name in FILTER_NAMES}
        # Kept only when set, so that filters saved before levels existed compare equal.
        if self.security_levels == "any":
            stored[SECURITY_FILTER] = [ANY_LEVEL]
        elif self.security_levels:
            stored[SECURITY_FILTER] = list(self.security_levels)
        return stored


def _digest(value: str) -> str:
    if value.strip().casefold() == DIGEST_OFF:
        return DIGEST_OFF
    try:
        return parse_schedule(value).text
    except ScheduleError as problem:
        raise ValueError(str(problem)) from None


DIGEST_OFF = "off"
CombineWindow = Annotated[
    Literal["off", "10s", "30s", "1m", "5m"],
    Field(
        description=(
            "Combine updates to the same issue that reach this channel within this window "
            "(from the first) into one card, sent when the window closes."
        )
    ),
]
DigestText = Annotated[
    str,
    Field(max_length=80, description='"off", "hourly" or "daily@HH:MM/Area/City".'),
    AfterValidator(_digest),
]


GROUPING_CONFLICT = "choose either combining or a digest: a digest already gathers every update"


def _one_way_of_grouping(combine: str | None, digest: str | None) -> None:
    if combine not in (None, "off") and digest not in (None, DIGEST_OFF):
        raise ValueError(GROUPING_CONFLICT)


class SubscriptionCreate(StrictInput):
    event_type: EventTypeName
    webhook_id: WebhookId
    enabled: StrictBool = True
    filters: SubscriptionFilters = Field(default_factory=SubscriptionFilters)
    combine: CombineWindow = "off"
    digest: DigestText = DIGEST_OFF

    @model_validator(mode="after")
    def _grouping(self) -> SubscriptionCreate:
        _one_way_of_grouping(self.combine, self.digest)
        return self

    @property
    def combine_seconds(self) -> int | None:
        return COMBINE_WINDOWS.get(self.combine)

    @property
    def digest_schedule(self) -> str | None:
        return None if self.digest == DIGEST_OFF else self.digest


class SubscriptionUpdate(StrictInput):
    """Only the fields given change; `filters`, when given, replaces all filters."""

    event_type: EventTypeName | None = None
    webhook_id: WebhookId | None = None
    enabled: StrictBool | None = None
    filters: SubscriptionFilters | None = None
    combine: CombineWindow | None = None
    digest: DigestText | None = None

    _not_null = field_validator(
        "event_type", "webhook_id", "enabled", "filters", "combine", "digest", mode="before"
    )(no_null)

    @model_validator(mode="after")
    def _grouping(self) -> SubscriptionUpdate:
        _one_way_of_grouping(self.combine, self.digest)
        return self


# -- read models (the API's answers; the UI shows the same) -----------------------------------


class FiltersView(BaseModel):
    projects: list[str]
    issue_types: list[str]
    statuses: list[str]
    priorities: list[str]
    labels: list[str]
    components: list[str]
    security_levels: list[str] | Literal["any"] = Field(
        description='The security levels it may post, or "any"; empty: no restricted issue.'
    )


class SubscriptionView(BaseModel):
    id: str
    event_type: str
    event_label: str = Field(description="The event type in the UI's words.")
    webhook_id: str
    channel_name: str
    enabled: bool
    filters: FiltersView
    combine: str = Field(description='The combining window, or "off".')
    digest: str = Field(description='"off", "hourly" or "daily@HH:MM/Area/City".')
    digest_label: str | None = Field(description="The digest's schedule in the UI's words.")
    next_digest_at: str | None = Field(description="When the next digest goes out (UTC).")
    created_at: str
    updated_at: str
    created_by: str | None

    @classmethod
    def of(cls, subscription: TeamsSubscription, channel_name: str) -> SubscriptionView:
        stored = subscription.filters or {}
        return cls(
            id=subscription.id,
            event_type=subscription.event_type,
            event_label=_event_label(subscription.event_type),
            webhook_id=subscription.webhook_id,
            channel_name=channel_name,
            enabled=subscription.enabled,
            filters=FiltersView(
                **{name: list(stored.get(name) or []) for name in FILTER_NAMES},
                security_levels=stored_security_levels(stored),
            ),
            combine=combine_text(subscription.combine_seconds),
            digest=subscription.digest or DIGEST_OFF,
            digest_label=parse_schedule(subscription.digest).label if subscription.digest else None,
            next_digest_at=rfc3339(subscription.next_digest_at) if subscription.digest else None,
            created_at=rfc3339(subscription.created_at) or "",
            updated_at=rfc3339(subscription.updated_at) or "",
            created_by=subscription.created_by,
        )


def set_digest(subscription: TeamsSubscription, digest: str | None, *, now: datetime) -> None:
    """Send this subscription as a digest on `digest`'s schedule (None: one card per event);
    the first one goes at the schedule's next time after `now`. Deliveries already held for an
    earlier schedule wait for the new one; turned off, they go out as one digest at once
    (delivery/digests.py)."""
    subscription.digest = digest
    subscription.next_digest_at = parse_schedule(digest).next_after(now) if digest else None


def _event_label(event_type: str) -> str:
    try:
        return EVENT_TYPE_LABELS[EventType(event_type)]
    except (ValueError, KeyError):
        return event_type


# -- subscriptions -----------------------------------------------------------------------------


def subscription_not_found() -> TeamsError:
    return TeamsError(
        404, "subscription_not_found", "There is no such subscription in this workspace."
    )


def get_subscription(
    session: Session, workspace_id: str, subscription_id: str
) -> TeamsSubscription:
    subscription = session.get(TeamsSubscription, subscription_id)
    if subscription is None or subscription.workspace_id != workspace_id:
        raise subscription_not_found()
    return subscription


def list_subscriptions(
    session: Session,
    workspace_id: str,
    page: Page,
    *,
    webhook_id: str | None = None,
    event_type: str | None = None,
) -> tuple[list[tuple[TeamsSubscription, str]], str | None]:
    """One page of (subscription, its webhook's channel name), newest first."""
    query = (
        select(TeamsSubscription, TeamsWebhook.channel_name)
        .join(TeamsWebhook, TeamsWebhook.id == TeamsSubscription.webhook_id)
        .where(TeamsSubscription.workspace_id == workspace_id)
    )
    if webhook_id is not None:
        query = query.where(TeamsSubscription.webhook_id == webhook_id)
    if event_type is not None:
        query = query.where(TeamsSubscription.event_type == event_type)
    rows, next_cursor = fetch_page(session, query, TeamsSubscription.id, page)
    return [(row[0], row[1]) for row in rows], next_cursor


def channel_name_of(session: Session, subscription: TeamsSubscription) -> str:
    return (
        session.scalar(
            select(TeamsWebhook.channel_name).where(TeamsWebhook.id == subscription.webhook_id)
        )
        or ""
    )


def _subscription_webhook(session: Session, workspace_id: str, webhook_id: str) -> TeamsWebhook:
    # A webhook of another workspace is reported exactly like one that does not exist.
    webhook = session.get(TeamsWebhook, webhook_id)
    if webhook is None or webhook.workspace_id != workspace_id:
        message = "there is no webhook with this id in this workspace"
        raise TeamsError(
            422,
            "validation_error",
            f"webhook_id: {message}.",
            [{"field": "webhook_id", "message": message}],
        )
    return webhook


def _subscription_details(subscription: TeamsSubscription, channel_name: str) -> dict[str, Any]:
    return {
        "event_type": subscription.event_type,
        "webhook_id": subscription.webhook_id,
        "channel_name": channel_name,
        "enabled": subscription.enabled,
        "filters": subscription.filters,
        "security_levels": stored_security_levels(subscription.filters),
        "combine": combine_text(subscription.combine_seconds),
        "digest": subscription.digest or DIGEST_OFF,
    }


def create_subscription(
    session: Session,
    workspace_id: str,
    data: SubscriptionCreate,
    *,
    actor: Actor,
    request: RequestInfo | None = None,
) -> tuple[TeamsSubscription, str]:
    """Save a subscription of a webhook of the same workspace; audit
    `teams.subscription.created`. Returns it with its webhook's channel name."""
    webhook = _subscription_webhook(session, workspace_id, data.webhook_id)
    subscription = TeamsSubscription(
        workspace_id=workspace_id,
        webhook_id=webhook.id,
        event_type=data.event_type,
        enabled=data.enabled,
        filters=data.filters.as_stored(),
        created_by=actor.email,
        combine_seconds=data.combine_seconds,
    )
    set_digest(subscription, data.digest_schedule, now=utcnow())
    session.add(subscription)
    session.flush()
    bump_generation(session, workspace_id)
    record(
        session,
        workspace_id=workspace_id,
        actor=actor,
        action="teams.subscription.created",
        target_type=SUBSCRIPTION_TARGET,
        target_id=subscription.id,
        details=_subscription_details(subscription, webhook.channel_name),
        request=request,
    )
    log.info("teams subscription %s created (%s)", subscription.id, subscription.event_type)
    return subscription, webhook.channel_name


def preview_subscription(
    session: Session,
    workspace_id: str,
    data: SubscriptionCreate,
    *,
    now: datetime,
    retention_days: int,
) -> Preview:
    """What a subscription with these settings would have sent lately (routing/preview.py),
    cards counted after its combining or digest. The webhook is checked as
    `create_subscription` checks it; nothing is saved or audited."""
    webhook = _subscription_webhook(session, workspace_id, data.webhook_id)
    return preview(
        session,
        workspace_id,
        event_type=data.event_type,
        filters=data.filters.as_stored(),
        enabled=data.enabled,
        webhook_enabled=webhook.enabled,
        channel_name=webhook.channel_name,
        now=now,
        retention_days=retention_days,
        combine_seconds=data.combine_seconds,
        digest_schedule=data.digest_schedule,
    )


def update_subscription(
    session: Session,
    workspace_id: str,
    subscription_id: str,
    data: SubscriptionUpdate,
    *,
    actor: Actor,
    request: RequestInfo | None = None,
) -> tuple[TeamsSubscription, str]:
    """Change the given fields; audit `teams.subscription.updated` with from/to values."""
    subscription = get_subscription(session, workspace_id, subscription_id)
    changes: dict[str, Any] = {}
    if data.webhook_id is not None and data.webhook_id != subscription.webhook_id:
        webhook = _subscription_webhook(session, workspace_id, data.webhook_id)
        changes["webhook_id"] = {"from": subscription.webhook_id, "to": webhook.id}
        subscription.webhook_id = webhook.id
    if data.event_type is not None and data.event_type != subscription.event_type:
        changes["event_type"] = {"from": subscription.event_type, "to": data.event_type}
        subscription.event_type = data.event_type
    if data.enabled is not None and data.enabled != subscription.enabled:
        changes["enabled"] = {"from": subscription.enabled, "to": data.enabled}
        subscription.enabled = data.enabled
    if data.filters is not None and data.filters.as_stored() != subscription.filters:
        before, after = subscription.filters, data.filters.as_stored()
        changes["filters"] = {"from": before, "to": after}
        if stored_security_levels(before) != stored_security_levels(after):
            # Said on its own: who let a channel see restricted issues is an audit question.
            changes["security_levels"] = {
                "from": stored_security_levels(before),
                "to": stored_security_levels(after),
            }
        subscription.filters = after
    if data.combine is not None and data.combine != combine_text(subscription.combine_seconds):
        changes["combine"] = {
            "from": combine_text(subscription.combine_seconds),
            "to": data.combine,
        }
        subscription.combine_seconds = COMBINE_WINDOWS.get(data.combine)
    if data.digest is not None and data.digest != (subscription.digest or DIGEST_OFF):
        changes["digest"] = {"from": subscription.digest or DIGEST_OFF, "to": data.digest}
        set_digest(subscription, None if data.digest == DIGEST_OFF else data.digest, now=utcnow())
    if subscription.combine_seconds and subscription.digest:
        # One of the two came in this request, the other was saved before.
        raise TeamsError(
            422,
            "validation_error",
            f"digest: {GROUPING_CONFLICT}.",
            [{"field": "digest", "message": GROUPING_CONFLICT}],
        )
    channel_name = channel_name_of(session, subscription)
    if not changes:
        return subscription, channel_name
    session.flush()
    bump_generation(session, workspace_id)
    record(
        session,
        workspace_id=workspace_id,
        actor=actor,
        action="teams.subscription.updated",
        target_type=SUBSCRIPTION_TARGET,
        target_id=subscription.id,
        details=changes,
        request=request,
    )
    log.info("teams subscription %s updated (%s)", subscription.id, ", ".join(sorted(changes)))
    return subscription, channel_name


def delete_subscription(
    session: Session,
    workspace_id: str,
    subscription_id: str,
    *,
    actor: Actor,
    request: RequestInfo | None = None,
) -> None:
    """Delete a subscription; audit `teams.subscription.deleted`."""
    subscription = get_subscription(session, workspace_id, subscription_id)
    webhook = session.get(TeamsWebhook, subscription.webhook_id)
    remove_subscription(session, subscription, webhook, actor, request, details={})
    bump_generation(session, workspace_id)


def remove_subscription(
    session: Session,
    subscription: TeamsSubscription,
    webhook: TeamsWebhook | None,
    actor: Actor,
    request: RequestInfo | None,
    *,
    details: dict[str, Any],
) -> None:
    """Delete the row and audit `teams.subscription.deleted`; the caller moves the workspace's
    generation on (once, also when a webhook's cascade removes several)."""
    channel_name = webhook.channel_name if webhook is not None else ""
    session.delete(subscription)
    session.flush()
    record(
        session,
        workspace_id=subscription.workspace_id,
        actor=actor,
        action="teams.subscription.deleted",
        target_type=SUBSCRIPTION_TARGET,
        target_id=subscription.id,
        details={**_subscription_details(subscription, channel_name), **details},
        request=request,
    )
    log.info("teams subscription %s deleted", subscription.id)


def subscriptions_of_webhook(session: Session, webhook_id: str) -> list[TeamsSubscription]:
    return list(
        session.scalars(
            select(TeamsSubscription)
            .where(TeamsSubscription.webhook_id == webhook_id)
            .order_by(TeamsSubscription.id)
        )
    )


def count_subscriptions(session: Session, webhook_ids: Sequence[str]) -> dict[str, int]:
    """How many subscriptions each webhook has (for lists that show it)."""
    if not webhook_ids:
        return {}
    rows = session.execute(
        select(TeamsSubscription.webhook_id, func.count())
        .where(TeamsSubscription.webhook_id.in_(list(webhook_ids)))
        .group_by(TeamsSubscription.webhook_id)
    ).all()
    return {webhook_id: int(n) for webhook_id, n in rows}
