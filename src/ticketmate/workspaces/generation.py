"""The workspace's configuration generation: a number that moves whenever routing may change.

`workspaces.config_generation` starts at 0 and goes up by one in the same transaction as every
change to the workspace's Teams webhooks or subscriptions (create, update, enable/disable,
delete, the cascade delete of a webhook, a channel rename, the worker's auto-disable after
"removed" answers) and as every Regenerate of its Jira secret or ingest token.

Whatever is compiled or decrypted from those rows can therefore be kept in memory by any
process and trusted for as long as the number it was made under is still the stored one:
a change that committed before an event's transaction read the number is seen by that event,
on every process. The routing index is cached this way (routing/index.py); cached Jira
credentials may be too.

Not bumped by what routing and the credentials do not depend on: a webhook's health and lane
columns (written by every delivery), and key rotation, which re-encrypts the same plaintext.

    bump_generation(session, workspace_id) -> None   # call after the change, same transaction
    current_generation(session, workspace_id) -> int  # one primary-key lookup
"""

from __future__ import annotations

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from ticketmate.models import Workspace


def bump_generation(session: Session, workspace_id: str) -> None:
    """Move the workspace's generation on by one, atomically in SQL (no read-modify-write).

    On PostgreSQL the UPDATE also takes the workspace row's lock until commit, so concurrent
    configuration changes of one workspace each get their own number.
    """
    session.execute(
        update(Workspace)
        .where(Workspace.id == workspace_id)
        .values(config_generation=Workspace.config_generation + 1)
        .execution_options(synchronize_session=False)
    )


def current_generation(session: Session, workspace_id: str) -> int:
    """The workspace's generation as this transaction sees it; 0 for an unknown workspace."""
    found = session.scalar(select(Workspace.config_generation).where(Workspace.id == workspace_id))
    return int(found or 0)
