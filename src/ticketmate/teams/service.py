"""Teams webhooks and subscriptions: the logic the API, the CLI, the web UI and the worker share.

A webhook URL is a secret. It is validated (security/urls.py), encrypted with AES-256-GCM bound
to its row (workspace id + webhook id), compared through a keyed hash (`url_digest`, so
duplicates are found without comparing plaintext) and shown only masked. Every change is
audit-logged; no audit entry, log line or error message holds the URL.

Functions here work inside the caller's transaction (`with svc.db.transaction()`); they flush
but never commit.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import unicodedata
from collections.abc import Sequence
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StrictBool, field_validator
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from ticketmate.audit.service import Actor, RequestInfo, record
from ticketmate.errors import ApiError
from ticketmate.ids import new_id
from ticketmate.jira.events import EVENT_TYPE_LABELS, EventType
from ticketmate.models import TeamsSubscription, TeamsWebhook
from ticketmate.pagination import Page, fetch_page
from ticketmate.security.crypto import Keyring
from ticketmate.security.masking import mask_url
from ticketmate.security.urls import (
    MAX_URL_LENGTH,
    WebhookUrl,
    WebhookUrlError,
    validate_webhook_url,
)
from ticketmate.timeutil import rfc3339

log = logging.getLogger(__name__)

WEBHOOK_TARGET = "teams_webhook"
SUBSCRIPTION_TARGET = "teams_subscription"
FILTER_NAMES = ("projects", "issue_types", "statuses", "priorities", "labels", "components")
MAX_FILTER_VALUES = 100
MAX_FILTER_VALUE_LENGTH = 255


class TeamsError(ApiError):
    """A webhook or subscription request that cannot be carried out; rendered as the API error
    shape by the app's handler, printed as one line by the CLI."""


# -- inputs (the API's request bodies; the CLI builds the same) ------------------------------


def _no_null(value: object) -> object:
    if value is None:
        raise ValueError("cannot be null; leave the field out to keep its current value")
    return value


def _channel_name(value: str) -> str:
    value = value.strip()
    if not 1 <= len(value) <= 100:
        raise ValueError("must be 1 to 100 characters")
    if any(unicodedata.category(char).startswith("C") for char in value):
        raise ValueError("must not contain control characters or line breaks")
    return value


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


ChannelName = Annotated[
    str,
    AfterValidator(_channel_name),
    Field(description="How the channel is called in Ticket MATE; 1–100 characters, unique."),
]
WebhookUrlText = Annotated[
    str,
    Field(
        min_length=1,
        # A bound on the input only; the URL policy's own limit (2048) comes with a clearer
        # message, and surrounding whitespace does not count towards it.
        max_length=4 * MAX_URL_LENGTH,
        description="The Teams webhook URL. Write-only: it is never shown again.",
        json_schema_extra={"writeOnly": True},
    ),
]
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
WebhookId = Annotated[str, Field(min_length=1, max_length=64)]


class _Input(BaseModel):
    # strict: `"enabled": "yes"` is a mistake to report, not a value to guess at.
    model_config = ConfigDict(extra="forbid", strict=True)


class WebhookCreate(_Input):
    channel_name: ChannelName
    url: WebhookUrlText
    enabled: StrictBool = True


class WebhookUpdate(_Input):
    """Only the fields given change."""

    channel_name: ChannelName | None = None
    url: WebhookUrlText | None = None
    enabled: StrictBool | None = None

    _not_null = field_validator("channel_name", "url", "enabled", mode="before")(_no_null)


class SubscriptionFilters(_Input):
    """Values within one filter OR, filters AND. For `status_changed`, `statuses` means the
    status the issue moved into; otherwise the issue's current status."""

    projects: FilterValues = None
    issue_types: FilterValues = None
    statuses: FilterValues = None
    priorities: FilterValues = None
    labels: FilterValues = None
    components: FilterValues = None

    def as_stored(self) -> dict[str, list[str]]:
        return {name: list(getattr(self, name) or []) for name in FILTER_NAMES}


class SubscriptionCreate(_Input):
    event_type: EventTypeName
    webhook_id: WebhookId
    enabled: StrictBool = True
    filters: SubscriptionFilters = Field(default_factory=SubscriptionFilters)


class SubscriptionUpdate(_Input):
    """Only the fields given change; `filters`, when given, replaces all filters."""

    event_type: EventTypeName | None = None
    webhook_id: WebhookId | None = None
    enabled: StrictBool | None = None
    filters: SubscriptionFilters | None = None

    _not_null = field_validator("event_type", "webhook_id", "enabled", "filters", mode="before")(
        _no_null
    )


# -- read models (the API's answers; the UI shows the same) -----------------------------------


class WebhookHealth(BaseModel):
    last_success_at: str | None
    last_failure_at: str | None
    last_failure_reason: str | None
    consecutive_failures: int


class WebhookView(BaseModel):
    id: str
    channel_name: str
    url_masked: str = Field(description="Scheme, host and the URL's last 4 characters.")
    url_kind: str = Field(description="`workflows` (current) or `connector` (legacy).")
    enabled: bool
    created_at: str
    updated_at: str
    created_by: str | None
    disabled_reason: str | None = Field(description="Null, or why the system disabled it.")
    health: WebhookHealth

    @classmethod
    def of(cls, webhook: TeamsWebhook) -> WebhookView:
        return cls(
            id=webhook.id,
            channel_name=webhook.channel_name,
            url_masked=webhook.url_masked,
            url_kind=webhook.url_kind,
            enabled=webhook.enabled,
            created_at=rfc3339(webhook.created_at) or "",
            updated_at=rfc3339(webhook.updated_at) or "",
            created_by=webhook.created_by,
            disabled_reason=webhook.disabled_reason,
            health=WebhookHealth(
                last_success_at=rfc3339(webhook.last_success_at),
                last_failure_at=rfc3339(webhook.last_failure_at),
                last_failure_reason=webhook.last_failure_reason,
                consecutive_failures=webhook.consecutive_failures or 0,
            ),
        )


class FiltersView(BaseModel):
    projects: list[str]
    issue_types: list[str]
    statuses: list[str]
    priorities: list[str]
    labels: list[str]
    components: list[str]


class SubscriptionView(BaseModel):
    id: str
    event_type: str
    event_label: str = Field(description="The event type in the UI's words.")
    webhook_id: str
    channel_name: str
    enabled: bool
    filters: FiltersView
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
            filters=FiltersView(**{name: list(stored.get(name) or []) for name in FILTER_NAMES}),
            created_at=rfc3339(subscription.created_at) or "",
            updated_at=rfc3339(subscription.updated_at) or "",
            created_by=subscription.created_by,
        )


def _event_label(event_type: str) -> str:
    try:
        return EVENT_TYPE_LABELS[EventType(event_type)]
    except (ValueError, KeyError):
        return event_type


# -- the URL secret ----------------------------------------------------------------------------


def webhook_url_aad(workspace_id: str, webhook_id: str) -> str:
    """Associated data binding a URL ciphertext to its row: a copied blob will not decrypt."""
    return f"teams_webhooks:{workspace_id}:{webhook_id}:url"


def decrypt_webhook_url(keyring: Keyring, webhook: TeamsWebhook) -> str:
    """The plaintext URL, for the moment of sending; raises DecryptionError, never a wrong URL."""
    return keyring.decrypt(
        webhook.url_ciphertext, webhook_url_aad(webhook.workspace_id, webhook.id)
    )


_DIGEST_INFO = b"ticketmate teams_webhooks.url_digest v1"


def _digest_key(keyring: Keyring, kid: str) -> bytes:
    return keyring.derive_key(_DIGEST_INFO.decode(), kid)


def url_digest(keyring: Keyring, url: str, kid: str | None = None) -> str:
    """Keyed hash (HMAC-SHA256) of a URL under the primary key, or under key `kid`."""
    key = _digest_key(keyring, kid or keyring.primary_kid)
    return hmac.new(key, url.encode(), hashlib.sha256).hexdigest()


def url_digests(keyring: Keyring, url: str) -> list[str]:
    """The URL's digest under every configured key, primary first: rows not yet rotated still
    carry a digest made with an older key, and a duplicate must be found either way."""
    return [url_digest(keyring, url, kid) for kid in keyring.key_ids]


def check_webhook_url(url: str, *, allow_loopback: bool) -> WebhookUrl:
    """Validate a URL; a rejection is a 422 whose message lists the accepted forms."""
    try:
        return validate_webhook_url(url, allow_loopback=allow_loopback)
    except WebhookUrlError as exc:
        raise TeamsError(
            422, "invalid_webhook_url", exc.message, [{"field": "url", "message": exc.message}]
        ) from None


def _seal_url(keyring: Keyring, webhook: TeamsWebhook, checked: WebhookUrl) -> None:
    webhook.url_ciphertext = keyring.encrypt(
        checked.url, webhook_url_aad(webhook.workspace_id, webhook.id)
    )
    webhook.url_digest = url_digest(keyring, checked.url)
    webhook.url_masked = mask_url(checked.url)
    webhook.url_kind = checked.kind


# -- webhooks ----------------------------------------------------------------------------------


def webhook_not_found() -> TeamsError:
    return TeamsError(404, "webhook_not_found", "There is no such webhook in this workspace.")


def get_webhook(session: Session, workspace_id: str, webhook_id: str) -> TeamsWebhook:
    """The workspace's webhook, or 404 (also for another workspace's id)."""
    webhook = session.get(TeamsWebhook, webhook_id)
    if webhook is None or webhook.workspace_id != workspace_id:
        raise webhook_not_found()
    return webhook


def list_webhooks(
    session: Session, workspace_id: str, page: Page, *, enabled: bool | None = None
) -> tuple[list[TeamsWebhook], str | None]:
    """One page of the workspace's webhooks, newest first."""
    query = select(TeamsWebhook).where(TeamsWebhook.workspace_id == workspace_id)
    if enabled is not None:
        query = query.where(TeamsWebhook.enabled == enabled)
    rows, next_cursor = fetch_page(session, query, TeamsWebhook.id, page)
    return [row[0] for row in rows], next_cursor


def find_webhook(session: Session, workspace_id: str, id_or_channel_name: str) -> TeamsWebhook:
    """By id, else by channel name (case-insensitive): what a person types on the command line."""
    webhook = session.get(TeamsWebhook, id_or_channel_name)
    if webhook is not None and webhook.workspace_id == workspace_id:
        return webhook
    found = session.scalar(
        select(TeamsWebhook).where(
            TeamsWebhook.workspace_id == workspace_id,
            func.lower(TeamsWebhook.channel_name) == id_or_channel_name.strip().lower(),
        )
    )
    if found is None:
        raise webhook_not_found()
    return found


def _ensure_channel_name_free(
    session: Session, workspace_id: str, channel_name: str, exclude_id: str | None = None
) -> None:
    query = select(TeamsWebhook.id).where(
        TeamsWebhook.workspace_id == workspace_id,
        func.lower(TeamsWebhook.channel_name) == channel_name.lower(),
    )
    if exclude_id is not None:
        query = query.where(TeamsWebhook.id != exclude_id)
    if session.scalar(query.limit(1)) is not None:
        raise TeamsError(
            409,
            "channel_name_taken",
            f"A webhook named {channel_name!r} already exists in this workspace; "
            "choose another channel name.",
            [{"field": "channel_name", "message": "is already used in this workspace"}],
        )


def _ensure_url_new(
    session: Session,
    keyring: Keyring,
    workspace_id: str,
    url: str,
    exclude_id: str | None = None,
) -> None:
    query = select(TeamsWebhook.channel_name).where(
        TeamsWebhook.workspace_id == workspace_id,
        TeamsWebhook.url_digest.in_(url_digests(keyring, url)),
    )
    if exclude_id is not None:
        query = query.where(TeamsWebhook.id != exclude_id)
    existing = session.scalar(query.limit(1))
    if existing is not None:
        raise TeamsError(
            409,
            "duplicate_webhook_url",
            f"This URL is already saved in this workspace as the webhook {existing!r}; "
            "each Teams webhook URL can be added once.",
            [{"field": "url", "message": "is already saved in this workspace"}],
        )


def _flush(session: Session) -> None:
    # Two requests racing past the checks above meet the unique constraints here.
    try:
        session.flush()
    except IntegrityError:
        raise TeamsError(
            409,
            "conflict",
            "Another change to the same channel name or URL happened at the same time; "
            "reload and try again.",
        ) from None


def create_webhook(
    session: Session,
    keyring: Keyring,
    workspace_id: str,
    data: WebhookCreate,
    *,
    allow_loopback: bool,
    actor: Actor,
    request: RequestInfo | None = None,
) -> TeamsWebhook:
    """Validate, encrypt and save a webhook; audit `teams.webhook.created`."""
    checked = check_webhook_url(data.url, allow_loopback=allow_loopback)
    _ensure_channel_name_free(session, workspace_id, data.channel_name)
    _ensure_url_new(session, keyring, workspace_id, checked.url)
    # The id is part of the associated data, so it is chosen before encrypting.
    webhook = TeamsWebhook(
        id=new_id(),
        workspace_id=workspace_id,
        channel_name=data.channel_name,
        enabled=data.enabled,
        created_by=actor.email,
        consecutive_failures=0,
        consecutive_removed=0,
    )
    _seal_url(keyring, webhook, checked)
    session.add(webhook)
    _flush(session)
    record(
        session,
        workspace_id=workspace_id,
        actor=actor,
        action="teams.webhook.created",
        target_type=WEBHOOK_TARGET,
        target_id=webhook.id,
        details={
            "channel_name": webhook.channel_name,
            "url_kind": webhook.url_kind,
            "url_masked": webhook.url_masked,
            "enabled": webhook.enabled,
        },
        request=request,
    )
    log.info(
        "teams webhook %s created in workspace %s (%s)", webhook.id, workspace_id, webhook.url_kind
    )
    return webhook


def update_webhook(
    session: Session,
    keyring: Keyring,
    workspace_id: str,
    webhook_id: str,
    data: WebhookUpdate,
    *,
    allow_loopback: bool,
    actor: Actor,
    request: RequestInfo | None = None,
) -> TeamsWebhook:
    """Change the given fields; a new URL is validated and encrypted again. Audit
    `teams.webhook.updated` with what changed (a URL change only as `url_changed`)."""
    webhook = get_webhook(session, workspace_id, webhook_id)
    details: dict[str, Any] = {}
    if data.channel_name is not None and data.channel_name != webhook.channel_name:
        _ensure_channel_name_free(session, workspace_id, data.channel_name, webhook.id)
        details["channel_name"] = {"from": webhook.channel_name, "to": data.channel_name}
        webhook.channel_name = data.channel_name
    if data.url is not None:
        checked = check_webhook_url(data.url, allow_loopback=allow_loopback)
        if not _is_current_url(keyring, webhook, checked.url):
            _ensure_url_new(session, keyring, workspace_id, checked.url, webhook.id)
            _seal_url(keyring, webhook, checked)
            # A new URL starts a new history: earlier failures were about the old one.
            webhook.consecutive_failures = 0
            webhook.consecutive_removed = 0
            details["url_changed"] = True
    if data.enabled is not None and data.enabled != webhook.enabled:
        details["enabled"] = {"from": webhook.enabled, "to": data.enabled}
        webhook.enabled = data.enabled
        if data.enabled:
            # Re-enabled by a person: the system's reason for disabling it no longer holds.
            webhook.disabled_reason = None
            webhook.consecutive_removed = 0
    if not details:
        return webhook
    _flush(session)
    record(
        session,
        workspace_id=workspace_id,
        actor=actor,
        action="teams.webhook.updated",
        target_type=WEBHOOK_TARGET,
        target_id=webhook.id,
        details=details,
        request=request,
    )
    log.info("teams webhook %s updated (%s)", webhook.id, ", ".join(sorted(details)))
    return webhook


def _is_current_url(keyring: Keyring, webhook: TeamsWebhook, url: str) -> bool:
    return any(hmac.compare_digest(d, webhook.url_digest) for d in url_digests(keyring, url))


def subscriptions_of_webhook(session: Session, webhook_id: str) -> list[TeamsSubscription]:
    return list(
        session.scalars(
            select(TeamsSubscription)
            .where(TeamsSubscription.webhook_id == webhook_id)
            .order_by(TeamsSubscription.id)
        )
    )


def delete_webhook(
    session: Session,
    workspace_id: str,
    webhook_id: str,
    *,
    cascade: bool = False,
    actor: Actor,
    request: RequestInfo | None = None,
) -> list[str]:
    """Delete a webhook; refused (409, listing them) while subscriptions use it unless
    `cascade`, which deletes them too, each audit-logged. Returns the deleted subscription ids."""
    webhook = get_webhook(session, workspace_id, webhook_id)
    using = subscriptions_of_webhook(session, webhook.id)
    if using and not cascade:
        names = ", ".join(f"{s.event_type} ({s.id})" for s in using)
        raise TeamsError(
            409,
            "webhook_in_use",
            f"The webhook {webhook.channel_name!r} is used by {len(using)} subscription(s): "
            f"{names}; delete them first, or delete with cascade=true to delete them too.",
            [{"subscription_id": s.id, "event_type": s.event_type} for s in using],
        )
    for subscription in using:
        _delete_subscription(
            session, subscription, webhook, actor, request, details={"cascade": True}
        )
    session.delete(webhook)
    session.flush()
    record(
        session,
        workspace_id=workspace_id,
        actor=actor,
        action="teams.webhook.deleted",
        target_type=WEBHOOK_TARGET,
        target_id=webhook.id,
        details={
            "channel_name": webhook.channel_name,
            "url_masked": webhook.url_masked,
            "deleted_subscriptions": [s.id for s in using],
        },
        request=request,
    )
    log.info("teams webhook %s deleted with %d subscription(s)", webhook.id, len(using))
    return [s.id for s in using]


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
    )
    session.add(subscription)
    session.flush()
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
        changes["filters"] = {"from": subscription.filters, "to": data.filters.as_stored()}
        subscription.filters = data.filters.as_stored()
    channel_name = channel_name_of(session, subscription)
    if not changes:
        return subscription, channel_name
    session.flush()
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
    _delete_subscription(session, subscription, webhook, actor, request, details={})


def _delete_subscription(
    session: Session,
    subscription: TeamsSubscription,
    webhook: TeamsWebhook | None,
    actor: Actor,
    request: RequestInfo | None,
    *,
    details: dict[str, Any],
) -> None:
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
