"""dedupe key column for repeated comment reports

Events stored before this revision have no key, so a second report of a comment that
arrives across the upgrade is routed again (at most one extra card, within Jira's retry
window); everything after it is matched through the index.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-28 08:52:49.125978
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("jira_events", schema=None) as batch_op:
        batch_op.add_column(sa.Column("dedupe_key", sa.String(length=100), nullable=True))
        batch_op.create_index(
            "ix_jira_events_dedupe_key",
            ["workspace_id", "dedupe_key"],
            unique=False,
            postgresql_where=sa.text("dedupe_key IS NOT NULL"),
            sqlite_where=sa.text("dedupe_key IS NOT NULL"),
        )


def downgrade() -> None:
    op.drop_index("ix_jira_events_dedupe_key", table_name="jira_events")
    # In place, not in batch mode: on SQLite a batch copies the table and drops the old one,
    # and with foreign keys on, every delivery referring to an event would be deleted with it.
    if op.get_bind().dialect.name == "sqlite":
        op.execute('ALTER TABLE "jira_events" DROP COLUMN "dedupe_key"')
    else:
        op.drop_column("jira_events", "dedupe_key")
