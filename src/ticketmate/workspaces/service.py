"""Workspace creation and the Jira inbound credentials (encrypted at rest)."""

from __future__ import annotations

import re
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from ticketmate.ids import new_id
from ticketmate.models import Workspace
from ticketmate.security.crypto import Keyring
from ticketmate.security.tokens import new_ingest_token, new_jira_secret

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
