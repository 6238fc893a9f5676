"""jira events, teams webhooks and subscriptions, audit log

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-28 07:29:32.782949
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "audit_entries",
        sa.Column("id", sa.String(length=26), nullable=False),
        sa.Column("workspace_id", sa.String(length=26), nullable=True),
        sa.Column("seq", sa.BigInteger(), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("actor_type", sa.String(length=16), nullable=False),
        sa.Column("actor_id", sa.String(length=26), nullable=True),
        sa.Column("actor_email", sa.String(length=254), nullable=True),
        sa.Column("action", sa.String(length=64), nullable=False),
        sa.Column("target_type", sa.String(length=32), nullable=True),
        sa.Column("target_id", sa.String(length=64), nullable=True),
        sa.Column("ip", sa.String(length=64), nullable=True),
        sa.Column("user_agent", sa.String(length=300), nullable=True),
        sa.Column("details", sa.JSON(), nullable=False),
        sa.Column("prev_hash", sa.String(length=64), nullable=False),
        sa.Column("hash", sa.String(length=64), nullable=False),
        sa.ForeignKeyConstraint(
            ["workspace_id"],
            ["workspaces.id"],
            name=op.f("fk_audit_entries_workspace_id_workspaces"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_audit_entries")),
        sa.UniqueConstraint("workspace_id", "seq", name=op.f("uq_audit_entries_workspace_id_seq")),
    )
    with op.batch_alter_table("audit_entries", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_audit_entries_action"), ["action"], unique=False)
        batch_op.create_index(
            batch_op.f("ix_audit_entries_workspace_id"), ["workspace_id"], unique=False
        )

    op.create_table(
        "jira_events",
        sa.Column("id", sa.String(length=26), nullable=False),
        sa.Column("workspace_id", sa.String(length=26), nullable=False),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("jira_event_id", sa.String(length=200), nullable=True),
        sa.Column("jira_event", sa.String(length=100), nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("event_types", sa.JSON(), nullable=False),
        sa.Column("issue_key", sa.String(length=100), nullable=True),
        sa.Column("summary", sa.Text(), nullable=True),
        sa.Column("raw_body", sa.Text(), nullable=False),
        sa.Column("headers", sa.JSON(), nullable=False),
        sa.Column("envelope", sa.JSON(), nullable=True),
        sa.Column("routing", sa.JSON(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["workspace_id"],
            ["workspaces.id"],
            name=op.f("fk_jira_events_workspace_id_workspaces"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_jira_events")),
        sa.UniqueConstraint(
            "workspace_id", "jira_event_id", name=op.f("uq_jira_events_workspace_id_jira_event_id")
        ),
    )
    with op.batch_alter_table("jira_events", schema=None) as batch_op:
        batch_op.create_index(
            "ix_jira_events_workspace_id_id", ["workspace_id", "id"], unique=False
        )

    op.create_table(
        "teams_webhooks",
        sa.Column("id", sa.String(length=26), nullable=False),
        sa.Column("workspace_id", sa.String(length=26), nullable=False),
        sa.Column("channel_name", sa.String(length=100), nullable=False),
        sa.Column("url_ciphertext", sa.LargeBinary(), nullable=False),
        sa.Column("url_digest", sa.String(length=64), nullable=False),
        sa.Column("url_masked", sa.String(length=300), nullable=False),
        sa.Column("url_kind", sa.String(length=16), nullable=False),
        sa.Column("enabled", sa.Boolean(), nullable=False),
        sa.Column("disabled_reason", sa.Text(), nullable=True),
        sa.Column("created_by", sa.String(length=254), nullable=True),
        sa.Column("last_success_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_failure_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_failure_reason", sa.Text(), nullable=True),
        sa.Column("consecutive_failures", sa.Integer(), nullable=False),
        sa.Column("consecutive_removed", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["workspace_id"],
            ["workspaces.id"],
            name=op.f("fk_teams_webhooks_workspace_id_workspaces"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_teams_webhooks")),
        sa.UniqueConstraint(
            "workspace_id", "channel_name", name=op.f("uq_teams_webhooks_workspace_id_channel_name")
        ),
        sa.UniqueConstraint(
            "workspace_id", "url_digest", name=op.f("uq_teams_webhooks_workspace_id_url_digest")
        ),
    )
    with op.batch_alter_table("teams_webhooks", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_teams_webhooks_workspace_id"), ["workspace_id"], unique=False
        )

    op.create_table(
        "teams_subscriptions",
        sa.Column("id", sa.String(length=26), nullable=False),
        sa.Column("workspace_id", sa.String(length=26), nullable=False),
        sa.Column("webhook_id", sa.String(length=26), nullable=False),
        sa.Column("event_type", sa.String(length=32), nullable=False),
        sa.Column("enabled", sa.Boolean(), nullable=False),
        sa.Column("filters", sa.JSON(), nullable=False),
        sa.Column("created_by", sa.String(length=254), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["webhook_id"],
            ["teams_webhooks.id"],
            name=op.f("fk_teams_subscriptions_webhook_id_teams_webhooks"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["workspace_id"],
            ["workspaces.id"],
            name=op.f("fk_teams_subscriptions_workspace_id_workspaces"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_teams_subscriptions")),
    )
    with op.batch_alter_table("teams_subscriptions", schema=None) as batch_op:
        batch_op.create_index(
            "ix_teams_subscriptions_routing",
            ["workspace_id", "event_type", "enabled"],
            unique=False,
        )
        batch_op.create_index(
            batch_op.f("ix_teams_subscriptions_webhook_id"), ["webhook_id"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("teams_subscriptions", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_teams_subscriptions_webhook_id"))
        batch_op.drop_index("ix_teams_subscriptions_routing")

    op.drop_table("teams_subscriptions")
    with op.batch_alter_table("teams_webhooks", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_teams_webhooks_workspace_id"))

    op.drop_table("teams_webhooks")
    with op.batch_alter_table("jira_events", schema=None) as batch_op:
        batch_op.drop_index("ix_jira_events_workspace_id_id")

    op.drop_table("jira_events")
    with op.batch_alter_table("audit_entries", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_audit_entries_workspace_id"))
        batch_op.drop_index(batch_op.f("ix_audit_entries_action"))

    op.drop_table("audit_entries")
