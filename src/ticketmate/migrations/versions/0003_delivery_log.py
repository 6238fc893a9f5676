"""delivery log, attempts and channel lanes

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-28 07:33:10.684085
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "integration_delivery_log",
        sa.Column("id", sa.String(length=26), nullable=False),
        sa.Column("workspace_id", sa.String(length=26), nullable=False),
        sa.Column("event_id", sa.String(length=26), nullable=False),
        sa.Column("webhook_id", sa.String(length=26), nullable=True),
        sa.Column("channel_name", sa.String(length=100), nullable=False),
        sa.Column("subscription_ids", sa.JSON(), nullable=False),
        sa.Column("event_type", sa.String(length=32), nullable=False),
        sa.Column("issue_key", sa.String(length=100), nullable=True),
        sa.Column("summary", sa.Text(), nullable=True),
        sa.Column("message", sa.Text(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("attempt_count", sa.Integer(), nullable=False),
        sa.Column("attempts_before_replay", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("locked_until", sa.DateTime(timezone=True), nullable=True),
        sa.Column("worker_id", sa.String(length=64), nullable=True),
        sa.Column("last_status_code", sa.Integer(), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("delivered_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["event_id"],
            ["jira_events.id"],
            name=op.f("fk_integration_delivery_log_event_id_jira_events"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["webhook_id"],
            ["teams_webhooks.id"],
            name=op.f("fk_integration_delivery_log_webhook_id_teams_webhooks"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["workspace_id"],
            ["workspaces.id"],
            name=op.f("fk_integration_delivery_log_workspace_id_workspaces"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_integration_delivery_log")),
        sa.UniqueConstraint(
            "event_id", "webhook_id", name=op.f("uq_integration_delivery_log_event_id_webhook_id")
        ),
    )
    with op.batch_alter_table("integration_delivery_log", schema=None) as batch_op:
        batch_op.create_index(
            "ix_delivery_due_by_lane",
            ["webhook_id", "id"],
            unique=False,
            postgresql_where=sa.text("status IN ('pending', 'in_flight')"),
            sqlite_where=sa.text("status IN ('pending', 'in_flight')"),
        )
        batch_op.create_index(
            "ix_delivery_due_by_time",
            ["next_attempt_at"],
            unique=False,
            postgresql_where=sa.text("status IN ('pending', 'in_flight')"),
            sqlite_where=sa.text("status IN ('pending', 'in_flight')"),
        )
        batch_op.create_index(
            "ix_delivery_finished_by_time",
            ["updated_at"],
            unique=False,
            postgresql_where=sa.text("status IN ('delivered', 'skipped')"),
            sqlite_where=sa.text("status IN ('delivered', 'skipped')"),
        )
        batch_op.create_index("ix_delivery_workspace_id_id", ["workspace_id", "id"], unique=False)
        batch_op.create_index(
            batch_op.f("ix_integration_delivery_log_event_id"), ["event_id"], unique=False
        )

    op.create_table(
        "delivery_attempts",
        sa.Column("id", sa.String(length=26), nullable=False),
        sa.Column("delivery_id", sa.String(length=26), nullable=False),
        sa.Column("number", sa.Integer(), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("duration_ms", sa.Integer(), nullable=False),
        sa.Column("status_code", sa.Integer(), nullable=True),
        sa.Column("error_kind", sa.String(length=32), nullable=True),
        sa.Column("response_excerpt", sa.Text(), nullable=True),
        sa.Column("outcome", sa.String(length=16), nullable=False),
        sa.Column("message", sa.Text(), nullable=True),
        sa.Column("worker_id", sa.String(length=64), nullable=True),
        sa.ForeignKeyConstraint(
            ["delivery_id"],
            ["integration_delivery_log.id"],
            name=op.f("fk_delivery_attempts_delivery_id_integration_delivery_log"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_delivery_attempts")),
    )
    with op.batch_alter_table("delivery_attempts", schema=None) as batch_op:
        batch_op.create_index(
            "ix_delivery_attempts_delivery_id_number", ["delivery_id", "number"], unique=False
        )
    with op.batch_alter_table("teams_webhooks", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("lane_locked_until", sa.DateTime(timezone=True), nullable=True)
        )
        batch_op.add_column(sa.Column("lane_worker", sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column("paused_until", sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(
            sa.Column("recent_sends", sa.JSON(), nullable=False, server_default=sa.text("'[]'"))
        )


def downgrade() -> None:
    with op.batch_alter_table("teams_webhooks", schema=None) as batch_op:
        batch_op.drop_column("recent_sends")
        batch_op.drop_column("paused_until")
        batch_op.drop_column("lane_worker")
        batch_op.drop_column("lane_locked_until")

    op.drop_table("delivery_attempts")
    with op.batch_alter_table("integration_delivery_log", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_integration_delivery_log_event_id"))
        batch_op.drop_index("ix_delivery_workspace_id_id")
        batch_op.drop_index("ix_delivery_finished_by_time")
        batch_op.drop_index(
            "ix_delivery_due_by_time",
            postgresql_where=sa.text("status IN ('pending', 'in_flight')"),
            sqlite_where=sa.text("status IN ('pending', 'in_flight')"),
        )
        batch_op.drop_index(
            "ix_delivery_due_by_lane",
            postgresql_where=sa.text("status IN ('pending', 'in_flight')"),
            sqlite_where=sa.text("status IN ('pending', 'in_flight')"),
        )

    op.drop_table("integration_delivery_log")
