"""routing keeps only what matched; workspaces count their configuration changes

Events stop storing why every other subscription did not match (worked out on demand now):
`jira_events.routing` becomes `matched_subscription_ids`, `matched_count` and
`not_matched_count`. Existing rows keep their matched ids and counts; their stored
explanations are dropped. Older rows explained at most 100 other subscriptions, so for them
`not_matched_count` is the number they explained.

`workspaces.config_generation` starts at 0 for every workspace.

Downgrade puts `routing` back with the matched subscriptions (as they are now, or by id alone
when deleted) and an empty `not_matched` list.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-03 09:20:11.418230
"""

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BATCH = 200  # old routing values were up to ~200 KB each
MATCHED_IDS_LIMIT = 100

jira_events = sa.table(
    "jira_events",
    sa.column("id", sa.String),
    sa.column("routing", sa.JSON),
    sa.column("matched_subscription_ids", sa.JSON),
    sa.column("matched_count", sa.Integer),
    sa.column("not_matched_count", sa.Integer),
)
subscriptions = sa.table(
    "teams_subscriptions",
    sa.column("id", sa.String),
    sa.column("event_type", sa.String),
    sa.column("webhook_id", sa.String),
)
webhooks = sa.table("teams_webhooks", sa.column("id", sa.String), sa.column("channel_name"))
deliveries = sa.table("integration_delivery_log", sa.column("event_id", sa.String))


def _rows(connection: sa.Connection, column: Any, condition: Any) -> Any:
    """(id, value) of the events matching `condition`, in id order, a batch at a time."""
    after = ""
    while True:
        rows = connection.execute(
            sa.select(jira_events.c.id, column)
            .where(condition, jira_events.c.id > after)
            .order_by(jira_events.c.id)
            .limit(BATCH)
        ).all()
        if not rows:
            return
        yield from rows
        after = rows[-1][0]


def _outcome(routing: dict[str, Any]) -> dict[str, Any]:
    matched = [m for m in routing.get("matched") or [] if isinstance(m, dict)]
    ids = [str(m["subscription_id"]) for m in matched if m.get("subscription_id")]
    return {
        "matched_subscription_ids": ids[:MATCHED_IDS_LIMIT],
        "matched_count": len(ids),
        "not_matched_count": len(routing.get("not_matched") or []),
    }


def _drop_column(table: str, column: str) -> None:
    """Drop a column in place. On SQLite, Alembic's batch mode would copy the table and DROP
    the old one, and with foreign keys on, SQLite then deletes every row that refers to it
    (ON DELETE CASCADE): the delivery log for jira_events, everything for workspaces. SQLite
    3.35 and later drop a plain column in place."""
    if op.get_bind().dialect.name == "sqlite":
        op.execute(f'ALTER TABLE "{table}" DROP COLUMN "{column}"')
    else:
        op.drop_column(table, column)


def upgrade() -> None:
    # ADD COLUMN works in place on both databases (no table copy; see _drop_column).
    op.add_column(
        "workspaces",
        sa.Column("config_generation", sa.Integer(), server_default="0", nullable=False),
    )
    op.add_column("jira_events", sa.Column("matched_subscription_ids", sa.JSON(), nullable=True))
    op.add_column("jira_events", sa.Column("matched_count", sa.Integer(), nullable=True))
    op.add_column("jira_events", sa.Column("not_matched_count", sa.Integer(), nullable=True))
    connection = op.get_bind()
    rows = _rows(connection, jira_events.c.routing, jira_events.c.routing.is_not(None))
    for event_id, routing in rows:
        if not isinstance(routing, dict):
            continue  # a JSON null: the event was not routed
        connection.execute(
            sa.update(jira_events).where(jira_events.c.id == event_id).values(**_outcome(routing))
        )
    _drop_column("jira_events", "routing")


def downgrade() -> None:
    op.add_column("jira_events", sa.Column("routing", sa.JSON(), nullable=True))
    connection = op.get_bind()
    column = jira_events.c.matched_subscription_ids
    for event_id, ids in _rows(connection, column, column.is_not(None)):
        ids = list(ids or [])
        found = (
            {
                row.id: row
                for row in connection.execute(
                    sa.select(
                        subscriptions.c.id,
                        subscriptions.c.event_type,
                        subscriptions.c.webhook_id,
                        webhooks.c.channel_name,
                    )
                    .join(webhooks, webhooks.c.id == subscriptions.c.webhook_id)
                    .where(subscriptions.c.id.in_(ids))
                )
            }
            if ids
            else {}
        )
        count = connection.scalar(
            sa.select(sa.func.count())
            .select_from(deliveries)
            .where(deliveries.c.event_id == event_id)
        )
        matched = [
            {
                "subscription_id": i,
                "webhook_id": found[i].webhook_id if i in found else None,
                "channel_name": found[i].channel_name if i in found else "",
                "event_type": found[i].event_type if i in found else "",
            }
            for i in ids
        ]
        connection.execute(
            sa.update(jira_events)
            .where(jira_events.c.id == event_id)
            .values(routing={"deliveries": int(count or 0), "matched": matched, "not_matched": []})
        )
    _drop_column("jira_events", "not_matched_count")
    _drop_column("jira_events", "matched_count")
    _drop_column("jira_events", "matched_subscription_ids")
    _drop_column("workspaces", "config_generation")
