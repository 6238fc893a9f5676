"""the workspace's Jira base URL, which "Open in Jira" links are pinned to

Existing workspaces start without one: the next event signed with the workspace's Jira secret
sets it (or an administrator does, on the Jira card).

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-02 10:14:31.502113
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("workspaces", sa.Column("jira_base_url", sa.String(length=300), nullable=True))


def downgrade() -> None:
    # In place, not in batch mode: on SQLite a batch copies the table and drops the old one,
    # and with foreign keys on, every row referring to a workspace would be deleted with it.
    if op.get_bind().dialect.name == "sqlite":
        op.execute('ALTER TABLE "workspaces" DROP COLUMN "jira_base_url"')
    else:
        op.drop_column("workspaces", "jira_base_url")
