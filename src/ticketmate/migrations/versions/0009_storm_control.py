"""storm control: a webhook's threshold for combining waiting cards, and where each folded
delivery went

`teams_webhooks.storm_threshold` starts null (off) for every webhook: nothing changes until a
webhook sets it. `integration_delivery_log.folded_into` holds, for a delivery with the new
status `folded`, the delivery whose summary card carried its event; the retention index on
finished deliveries is made again to cover `folded` too.

Downgrade drops both columns and makes the retention index as it was; deliveries still
`folded` are left as they are (their events went out in the summaries).

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-04 03:58:12.402915
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

FINISHED_BEFORE = "status IN ('delivered', 'skipped')"
FINISHED_AFTER = "status IN ('delivered', 'skipped', 'folded')"
FOLDED = "folded_into IS NOT NULL"


def _finished_index(condition: str) -> None:
    op.drop_index("ix_delivery_finished_by_time", table_name="integration_delivery_log")
    op.create_index(
        "ix_delivery_finished_by_time",
        "integration_delivery_log",
        ["updated_at"],
        unique=False,
        postgresql_where=sa.text(condition),
        sqlite_where=sa.text(condition),
    )


def upgrade() -> None:
    # ADD COLUMN works in place on both databases.
    op.add_column("teams_webhooks", sa.Column("storm_threshold", sa.Integer(), nullable=True))
    op.add_column(
        "integration_delivery_log",
        sa.Column("folded_into", sa.String(length=26), nullable=True),
    )
    op.create_index(
        "ix_delivery_folded_into",
        "integration_delivery_log",
        ["folded_into"],
        unique=False,
        postgresql_where=sa.text(FOLDED),
        sqlite_where=sa.text(FOLDED),
    )
    _finished_index(FINISHED_AFTER)


def downgrade() -> None:
    _finished_index(FINISHED_BEFORE)
    op.drop_index("ix_delivery_folded_into", table_name="integration_delivery_log")
    # In place, not in batch mode: on SQLite a batch copies the table and drops the old one,
    # and with foreign keys on, every row referring to it would be deleted with it.
    if op.get_bind().dialect.name == "sqlite":
        op.execute('ALTER TABLE "integration_delivery_log" DROP COLUMN "folded_into"')
        op.execute('ALTER TABLE "teams_webhooks" DROP COLUMN "storm_threshold"')
    else:
        op.drop_column("integration_delivery_log", "folded_into")
        op.drop_column("teams_webhooks", "storm_threshold")
