"""Plain functions that put things in the database for a test, through the services."""

from __future__ import annotations

from dataclasses import dataclass

from ticketmate.accounts.service import create_api_token, ensure_user, set_membership
from ticketmate.state import Services
from ticketmate.workspaces.service import (
    JiraCredentials,
    create_workspace,
    get_by_slug,
    jira_credentials,
)

PASSWORD = "correct horse battery"


@dataclass(frozen=True)
class MadeWorkspace:
    id: str
    slug: str
    name: str
    jira: JiraCredentials


@dataclass(frozen=True)
class MadeUser:
    id: str
    email: str
    token: str
    password: str = PASSWORD


def make_workspace(svc: Services, slug: str = "acme", name: str | None = None) -> MadeWorkspace:
    with svc.db.transaction() as session:
        workspace = create_workspace(session, svc.keyring, slug, name or slug.title())
        return MadeWorkspace(
            workspace.id, workspace.slug, workspace.name, jira_credentials(svc.keyring, workspace)
        )


def make_user(
    svc: Services, email: str, memberships: dict[str, str] | None = None, password: str = PASSWORD
) -> MadeUser:
    """A user with the given {workspace slug: role} memberships and a fresh API token."""
    with svc.db.transaction() as session:
        user = ensure_user(session, email, password).user
        for slug, role in (memberships or {}).items():
            workspace = get_by_slug(session, slug)
            assert workspace is not None, slug
            set_membership(session, user, workspace, role)
        token = create_api_token(session, user)
        return MadeUser(user.id, user.email, token, password)


def bearer(user: MadeUser) -> dict[str, str]:
    return {"Authorization": f"Bearer {user.token}"}
