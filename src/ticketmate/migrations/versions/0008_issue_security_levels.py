"""issue security levels: what each issue was last seen with, and the workspace's rule for
comments whose issue's level is unknown

`issue_security_levels` starts empty: levels are learnt from the events that arrive from now
on. `workspaces.withhold_unknown_security` starts off for every workspace. Subscriptions keep
their filters; without a `security_levels` entry none of them posts a restricted issue.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-04 03:25:40.118302
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "issue_security_levels",
        sa.Column("workspace_id", sa.String(length=26), nullable=False),
        sa.Column("issue_id", sa.String(length=64), nullable=False),
        sa.Column("issue_key", sa.String(length=100), nullable=True),
        sa.Column("level_id", sa.String(length=64), nullable=True),
        sa.Column("level_name", sa.String(length=255), nullable=True),
        sa.Column("observed_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["workspace_id"],
            ["workspaces.id"],
            name=op.f("fk_issue_security_levels_workspace_id_workspaces"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("workspace_id", "issue_id", name=op.f("pk_issue_security_levels")),
    )
    op.add_column(
        "workspaces",
        sa.Column("withhold_unknown_security", sa.Boolean(), nullable=False, server_default="0"),
    )


def downgrade() -> None:
    # In place, not in batch mode: on SQLite a batch copies the table and drops the old one,
    # and with foreign keys on, every row referring to a workspace would be deleted with it.
    if op.get_bind().dialect.name == "sqlite":
        op.execute('ALTER TABLE "workspaces" DROP COLUMN "withhold_unknown_security"')
    else:
        op.drop_column("workspaces", "withhold_unknown_security")
    op.drop_table("issue_security_levels")
