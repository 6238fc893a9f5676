"""Teams webhooks: one Teams channel's incoming webhook each, and the rules for its URL.

A webhook URL is a secret. It is validated (security/urls.py), encrypted with AES-256-GCM bound
to its row (workspace id + webhook id), compared through a keyed hash (`url_digest`, so
duplicates are found without comparing plaintext) and shown only masked. Every change is
audit-logged; no audit entry, log line or error message holds the URL.

Functions here work inside the caller's transaction (`with svc.db.transaction()`); they flush
but never commit. Every change of a webhook row that routing reads (create, update, delete)
also moves the workspace's configuration generation on (workspaces/generation.py), once per
call. The subscriptions live in teams/subscriptions.py; `TeamsError` and the strict input base
are shared from here.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import unicodedata
from dataclasses import dataclass
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StrictBool, field_validator
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from ticketmate.audit.service import Actor, RequestInfo, record
from ticketmate.errors import ApiError
from ticketmate.ids import new_id
from ticketmate.models import TeamsWebhook
from ticketmate.pagination import Page, fetch_page
from ticketmate.security.crypto import Keyring
from ticketmate.security.masking import mask_url
from ticketmate.security.urls import (
    MAX_URL_LENGTH,
    NEEDS_NEW_URL,
    WebhookUrl,
    WebhookUrlError,
    url_family_of,
    url_warning,
    validate_webhook_url,
)
from ticketmate.timeutil import rfc3339
from ticketmate.workspaces.generation import bump_generation

log = logging.getLogger(__name__)

WEBHOOK_TARGET = "teams_webhook"


class TeamsError(ApiError):
    """A webhook or subscription request that cannot be carried out; rendered as the API error
    shape by the app's handler, printed as one line by the CLI."""


# -- inputs (the API's request bodies; the CLI builds the same) ------------------------------


def no_null(value: object) -> object:
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
WebhookId = Annotated[str, Field(min_length=1, max_length=64)]
# Storm control (delivery/storm.py). Bounds written out here, as the API documents them.
STORM_MIN, STORM_MAX, STORM_SUGGESTED = 5, 1000, 40
StormThreshold = Annotated[
    int,
    Field(
        ge=STORM_MIN,
        le=STORM_MAX,
        description="When more than this many cards are waiting for the channel, combine them "
        f"into summary cards of up to 20 events each ({STORM_MIN}–{STORM_MAX}; "
        f"{STORM_SUGGESTED} is ten seconds of Teams' 4 per second). Null: off (the default).",
    ),
]


class StrictInput(BaseModel):
    """The base of every Teams request body."""

    # strict: `"enabled": "yes"` is a mistake to report, not a value to guess at.
    model_config = ConfigDict(extra="forbid", strict=True)


class WebhookCreate(StrictInput):
    channel_name: ChannelName
    url: WebhookUrlText
    enabled: StrictBool = True
    storm_threshold: StormThreshold | None = None


class WebhookUpdate(StrictInput):
    """Only the fields given change."""

    channel_name: ChannelName | None = None
    url: WebhookUrlText | None = None
    enabled: StrictBool | None = None
    # Null turns storm control off; leave the field out to keep the current setting.
    storm_threshold: StormThreshold | None = None
    save_untested: StrictBool = Field(
        default=False,
        description="With a new `url`: save it without sending the sample card first. "
        "Without it, a new URL is saved only once Teams has accepted the sample card.",
    )

    _not_null = field_validator("channel_name", "url", "enabled", mode="before")(no_null)


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
    url_family: str = Field(
        description="Whether Microsoft still honours the URL, from its host: `power_platform` "
        "(Workflows, current), `logic_apps` (Workflows on logic.azure.com, retired on 30 "
        "November 2025), `connector` (Office 365 connector, retiring during 2026), `loopback` "
        "(a local stand-in) or `unknown`."
    )
    url_warning: str | None = Field(
        description="For a retired or retiring family, what that means and what to do; "
        "null otherwise."
    )
    enabled: bool
    created_at: str
    updated_at: str
    created_by: str | None
    disabled_reason: str | None = Field(description="Null, or why the system disabled it.")
    storm_threshold: int | None = Field(
        default=None,
        description="Storm control: when more than this many cards are waiting, they are "
        "combined into summary cards. Null: off.",
    )
    health: WebhookHealth

    @classmethod
    def of(cls, webhook: TeamsWebhook) -> WebhookView:
        return cls(
            id=webhook.id,
            channel_name=webhook.channel_name,
            url_masked=webhook.url_masked,
            url_kind=webhook.url_kind,
            url_family=webhook.url_family,
            url_warning=url_warning(webhook.url_family),
            enabled=webhook.enabled,
            created_at=rfc3339(webhook.created_at) or "",
            updated_at=rfc3339(webhook.updated_at) or "",
            created_by=webhook.created_by,
            disabled_reason=webhook.disabled_reason,
            storm_threshold=webhook.storm_threshold,
            health=WebhookHealth(
                last_success_at=rfc3339(webhook.last_success_at),
                last_failure_at=rfc3339(webhook.last_failure_at),
                last_failure_reason=webhook.last_failure_reason,
                consecutive_failures=webhook.consecutive_failures or 0,
            ),
        )


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
    webhook.url_family = url_family_of(checked.url)


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


def count_needing_new_url(session: Session, workspace_id: str) -> dict[str, int]:
    """How many of the workspace's webhooks use a URL of a retired or retiring family, by
    family (only families that have some)."""
    rows = session.execute(
        select(TeamsWebhook.url_family, func.count())
        .where(
            TeamsWebhook.workspace_id == workspace_id,
            TeamsWebhook.url_family.in_(NEEDS_NEW_URL),
        )
        .group_by(TeamsWebhook.url_family)
    ).all()
    return {family: int(n) for family, n in rows}


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
        storm_threshold=data.storm_threshold,
        created_by=actor.email,
        consecutive_failures=0,
        consecutive_removed=0,
    )
    _seal_url(keyring, webhook, checked)
    session.add(webhook)
    _flush(session)
    bump_generation(session, workspace_id)
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
            "url_family": webhook.url_family,
            "url_masked": webhook.url_masked,
            "enabled": webhook.enabled,
            "storm_threshold": webhook.storm_threshold,
        },
        request=request,
    )
    log.info(
        "teams webhook %s created in workspace %s (%s)", webhook.id, workspace_id, webhook.url_kind
    )
    return webhook


@dataclass(frozen=True)
class UrlReplacement:
    """A new URL that an update would save: what Test Connection sends the sample card to."""

    checked: WebhookUrl
    channel_name: str  # the webhook's, as it will be after the update


def url_replacement(
    session: Session,
    keyring: Keyring,
    workspace_id: str,
    webhook_id: str,
    data: WebhookUpdate,
    *,
    allow_loopback: bool,
) -> UrlReplacement | None:
    """The checks update_webhook makes, without changing anything: raises what it would
    raise (404, 422, 409), and returns the new URL it would save (None when `data` keeps the
    saved URL). Run first, so that no sample card goes to a URL that would then be refused."""
    webhook = get_webhook(session, workspace_id, webhook_id)
    channel_name = webhook.channel_name
    if data.channel_name is not None and data.channel_name != webhook.channel_name:
        _ensure_channel_name_free(session, workspace_id, data.channel_name, webhook.id)
        channel_name = data.channel_name
    if data.url is None:
        return None
    checked = check_webhook_url(data.url, allow_loopback=allow_loopback)
    if _is_current_url(keyring, webhook, checked.url):
        return None
    _ensure_url_new(session, keyring, workspace_id, checked.url, webhook.id)
    return UrlReplacement(checked, channel_name)


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
    url_tested: bool | None = None,
) -> TeamsWebhook:
    """Change the given fields; a new URL is validated and encrypted again. Audit
    `teams.webhook.updated` with what changed (a URL change only as `url_changed`, with its
    family and, when the caller says, `url_tested`: whether Teams accepted the sample card
    at the new URL before it was saved, or it was saved untested)."""
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
            family_before = webhook.url_family
            _seal_url(keyring, webhook, checked)
            # A new URL starts a new history: earlier failures were about the old one.
            webhook.consecutive_failures = 0
            webhook.consecutive_removed = 0
            details["url_changed"] = True
            if family_before != webhook.url_family:
                details["url_family"] = {"from": family_before, "to": webhook.url_family}
            if url_tested is not None:
                details["url_tested"] = url_tested
    if data.enabled is not None and data.enabled != webhook.enabled:
        details["enabled"] = {"from": webhook.enabled, "to": data.enabled}
        webhook.enabled = data.enabled
        if data.enabled:
            # Re-enabled by a person: the system's reason for disabling it no longer holds.
            webhook.disabled_reason = None
            webhook.consecutive_removed = 0
    if "storm_threshold" in data.model_fields_set and (
        data.storm_threshold != webhook.storm_threshold
    ):
        details["storm_threshold"] = {"from": webhook.storm_threshold, "to": data.storm_threshold}
        webhook.storm_threshold = data.storm_threshold
    if not details:
        return webhook
    _flush(session)
    bump_generation(session, workspace_id)
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
    # Imported here: subscriptions.py builds on this module (TeamsError, StrictInput).
    from ticketmate.teams.subscriptions import remove_subscription, subscriptions_of_webhook

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
        remove_subscription(
            session, subscription, webhook, actor, request, details={"cascade": True}
        )
    session.delete(webhook)
    session.flush()
    bump_generation(session, workspace_id)
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
