"""First run: with no workspace at all, create `demo` and its admin, and say how to sign in once."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import func, select

from ticketmate.accounts.service import ensure_user, set_membership
from ticketmate.models import Workspace
from ticketmate.state import Services
from ticketmate.workspaces.service import create_workspace

DEMO_SLUG = "demo"
DEMO_ADMIN = "admin@example.com"


@dataclass(frozen=True)
class FirstRun:
    sign_in_url: str
    email: str
    password: str


def bootstrap_if_empty(svc: Services) -> FirstRun | None:
    """Create the demo workspace and admin when the database has no workspace; else nothing."""
    with svc.db.transaction() as session:
        if session.scalar(select(func.count()).select_from(Workspace)):
            return None
        workspace = create_workspace(session, svc.keyring, DEMO_SLUG, "Demo")
        created = ensure_user(session, DEMO_ADMIN)
        set_membership(session, created.user, workspace, "admin")
        password = created.generated_password
    if password is None:
        # The e-mail already had an account (made by the CLI); its password stays unknown here.
        return None
    return FirstRun(f"{svc.settings.base_url}/login", DEMO_ADMIN, password)
