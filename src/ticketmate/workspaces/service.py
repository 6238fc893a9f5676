"""Workspace creation, the Jira inbound credentials (encrypted at rest) and the Jira site."""

from __future__ import annotations

import re
from dataclasses import dataclass

from sqlalchemy import CursorResult, select, update
from sqlalchemy.orm import Session

from ticketmate.audit.service import SYSTEM, Actor, RequestInfo
from ticketmate.audit.service import record as audit
from ticketmate.ids import new_id
from ticketmate.models import Workspace
from ticketmate.security.crypto import Keyring
from ticketmate.security.tokens import new_ingest_token, new_jira_secret
from ticketmate.timeutil import utcnow
from ticketmate.workspaces.generation import bump_generation

SLUG_PATTERN = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,62}[a-z0-9])?$")


class WorkspaceError(ValueError):
    """A workspace cannot be created as asked; the message says why."""


@dataclass(frozen=True)
class JiraCredentials:
    secret: str
    ingest_token: str


def _aad(workspace_id: str, column: str) -> str:
    return f"workspaces:{workspace_id}:{column}"


def secret_aad(workspace_id: str) -> str:
    return _aad(workspace_id, "jira_secret")


def ingest_token_aad(workspace_id: str) -> str:
    return _aad(workspace_id, "jira_ingest_token")


def get_by_slug(session: Session, slug: str) -> Workspace | None:
    return session.scalar(select(Workspace).where(Workspace.slug == slug))


def create_workspace(
    session: Session, keyring: Keyring, slug: str, name: str | None = None
) -> Workspace:
    slug = slug.strip().lower()
    if not SLUG_PATTERN.match(slug):
        raise WorkspaceError(
            "A workspace slug is 1-64 lower-case letters, digits and hyphens, "
            "starting and ending with a letter or digit."
        )
    if get_by_slug(session, slug) is not None:
        raise WorkspaceError(f"A workspace with the slug {slug!r} already exists.")
    workspace = Workspace(slug=slug, name=(name or slug).strip()[:200] or slug)
    # The id is needed for the associated data, so it is assigned before encrypting.
    workspace.id = new_id()
    workspace.jira_secret_ciphertext = keyring.encrypt(new_jira_secret(), secret_aad(workspace.id))
    workspace.jira_ingest_token_ciphertext = keyring.encrypt(
        new_ingest_token(), ingest_token_aad(workspace.id)
    )
    session.add(workspace)
    session.flush()
    return workspace


def jira_credentials(keyring: Keyring, workspace: Workspace) -> JiraCredentials:
    return JiraCredentials(
        secret=keyring.decrypt(workspace.jira_secret_ciphertext, secret_aad(workspace.id)),
        ingest_token=keyring.decrypt(
            workspace.jira_ingest_token_ciphertext, ingest_token_aad(workspace.id)
        ),
    )


def jira_webhook_url(base_url: str, workspace: Workspace) -> str:
    return f"{base_url}/api/webhooks/jira?workspace={workspace.slug}"


# ---------------------------------------------------------------------------------------------
# The Jira site "Open in Jira" links are pinned to


def jira_base_url(session: Session, workspace_id: str) -> str | None:
    return session.scalar(select(Workspace.jira_base_url).where(Workspace.id == workspace_id))


def learn_jira_base_url(session: Session, workspace_id: str, site: str) -> str | None:
    """Pin `site` unless the workspace has a Jira base URL already; the pinned one afterwards.

    Only events signed with the workspace's Jira secret come here. Two first events at once
    cannot both pin: the UPDATE applies only while the column is null, so the second waits
    for the first (PostgreSQL's row lock; SQLite's one writer) and then changes nothing.
    The configuration generation moves on with it, so nothing cached from the workspace's row
    outlives the change.
    """
    result = session.execute(
        update(Workspace)
        .where(Workspace.id == workspace_id, Workspace.jira_base_url.is_(None))
        .values(
            jira_base_url=site,
            config_generation=Workspace.config_generation + 1,
            updated_at=utcnow(),
        )
        .execution_options(synchronize_session=False)
    )
    if not isinstance(result, CursorResult) or result.rowcount != 1:
        return jira_base_url(session, workspace_id)
    audit(
        session,
        workspace_id=workspace_id,
        actor=SYSTEM,
        action="jira.base_url.learned",
        target_type="workspace",
        target_id=workspace_id,
        details={"jira_base_url": site},
    )
    return site


def set_jira_base_url(
    session: Session,
    workspace: Workspace,
    site: str | None,
    *,
    actor: Actor,
    request: RequestInfo | None = None,
) -> None:
    """An administrator's Jira base URL (already read by `read_site`), or None to forget it
    and learn it again from the next signed event."""
    previous = workspace.jira_base_url
    if site == previous:
        return
    workspace.jira_base_url = site
    session.flush()  # the row's lock first, then the audit chain's, as intake takes them
    bump_generation(session, workspace.id)
    audit(
        session,
        workspace_id=workspace.id,
        actor=actor,
        action="jira.base_url.set" if site is not None else "jira.base_url.cleared",
        target_type="workspace",
        target_id=workspace.id,
        details={"jira_base_url": site, "previous": previous},
        request=request,
    )


# ---------------------------------------------------------------------------------------------
# Comments on issues whose security level is unknown


def set_withhold_unknown_security(
    session: Session,
    workspace: Workspace,
    withhold: bool,
    *,
    actor: Actor,
    request: RequestInfo | None = None,
) -> None:
    """Whether comments whose issue's security level is not known are withheld (posted only by
    subscriptions that allow any level). Moves the generation on: the subscription index
    carries the setting."""
    if workspace.withhold_unknown_security == withhold:
        return
    workspace.withhold_unknown_security = withhold
    session.flush()
    bump_generation(session, workspace.id)
    audit(
        session,
        workspace_id=workspace.id,
        actor=actor,
        action="jira.security.updated",
        target_type="workspace",
        target_id=workspace.id,
        details={"withhold_unknown_levels": {"from": not withhold, "to": withhold}},
        request=request,
    )
