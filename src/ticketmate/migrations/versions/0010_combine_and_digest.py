"""combining and digests: a subscription may combine updates to one issue, or send a digest

`teams_subscriptions` gains `combine_seconds` (null: off), `digest` (null: each event its own
card; "hourly" or "daily@HH:MM/Area/City") and `next_digest_at`, when the worker sends the
next one. `integration_delivery_log` gains `combine_until` (a delivery that waits for more
updates to its issue until then), `card_kind` (combined, storm or digest: what its card
stands for) and `digest_of` (a `held` delivery waiting for that subscription's digest). Every
existing row starts null: nothing changes until a subscription asks for it.

Downgrade drops the columns and their indexes. Deliveries still `held` become `pending` first,
so their events are sent one card each instead of lost.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-04 19:40:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

HELD = "status = 'held'"
COMBINING = "combine_until IS NOT NULL AND status = 'pending'"
DIGESTS = "digest IS NOT NULL"

DELIVERY_COLUMNS = ("combine_until", "card_kind", "digest_of")
SUBSCRIPTION_COLUMNS = ("combine_seconds", "digest", "next_digest_at")


def upgrade() -> None:
    # ADD COLUMN works in place on both databases.
    op.add_column("teams_subscriptions", sa.Column("combine_seconds", sa.Integer(), nullable=True))
    op.add_column("teams_subscriptions", sa.Column("digest", sa.String(length=80), nullable=True))
    op.add_column(
        "teams_subscriptions",
        sa.Column("next_digest_at", sa.DateTime(timezone=True), nullable=True),
    )
    op.create_index(
        "ix_teams_subscriptions_next_digest",
        "teams_subscriptions",
        ["next_digest_at"],
        unique=False,
        postgresql_where=sa.text(DIGESTS),
        sqlite_where=sa.text(DIGESTS),
    )
    op.add_column(
        "integration_delivery_log",
        sa.Column("combine_until", sa.DateTime(timezone=True), nullable=True),
    )
    op.add_column(
        "integration_delivery_log", sa.Column("card_kind", sa.String(length=16), nullable=True)
    )
    op.add_column(
        "integration_delivery_log", sa.Column("digest_of", sa.String(length=26), nullable=True)
    )
    op.create_index(
        "ix_delivery_held_for_digest",
        "integration_delivery_log",
        ["digest_of", "id"],
        unique=False,
        postgresql_where=sa.text(HELD),
        sqlite_where=sa.text(HELD),
    )
    op.create_index(
        "ix_delivery_combining",
        "integration_delivery_log",
        ["webhook_id", "issue_key"],
        unique=False,
        postgresql_where=sa.text(COMBINING),
        sqlite_where=sa.text(COMBINING),
    )


def downgrade() -> None:
    op.execute("UPDATE integration_delivery_log SET status = 'pending' WHERE status = 'held'")
    op.drop_index("ix_delivery_combining", table_name="integration_delivery_log")
    op.drop_index("ix_delivery_held_for_digest", table_name="integration_delivery_log")
    op.drop_index("ix_teams_subscriptions_next_digest", table_name="teams_subscriptions")
    # In place, not in batch mode: on SQLite a batch copies the table and drops the old one,
    # and with foreign keys on, every row referring to it would be deleted with it.
    sqlite = op.get_bind().dialect.name == "sqlite"
    for table, columns in (
        ("integration_delivery_log", DELIVERY_COLUMNS),
        ("teams_subscriptions", SUBSCRIPTION_COLUMNS),
    ):
        for column in columns:
            if sqlite:
                op.execute(f'ALTER TABLE "{table}" DROP COLUMN "{column}"')
            else:
                op.drop_column(table, column)
