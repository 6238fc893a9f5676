"""IntegrationDeliveryLog: one row per (event, webhook) — the queue and the log in one table."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, ForeignKey, Index, Integer, String, Text, UniqueConstraint, text
from sqlalchemy.orm import Mapped, mapped_column

from ticketmate.models.base import Base, Timestamps, UTCDateTime, id_column

DELIVERY_STATUSES = (
    "pending",
    "in_flight",
    "delivered",
    "dead_letter",
    "skipped",
    "folded",
    "held",
)
# Rows a worker may still have to send. The partial indexes below cover only these, so
# claiming stays fast however many finished rows the log keeps.
DUE_CONDITION = "status IN ('pending', 'in_flight')"
# `folded`: carried by another delivery's card (a storm summary, a combined card, a digest).
# `held`: waiting for its subscription's digest (delivery/digests.py); neither due nor done.
FINISHED_CONDITION = "status IN ('delivered', 'skipped', 'folded')"


class IntegrationDelivery(Timestamps, Base):
    __tablename__ = "integration_delivery_log"
    __table_args__ = (
        UniqueConstraint("event_id", "webhook_id"),
        Index(
            "ix_delivery_due_by_time",
            "next_attempt_at",
            postgresql_where=text(DUE_CONDITION),
            sqlite_where=text(DUE_CONDITION),
        ),
        Index(
            "ix_delivery_due_by_lane",
            "webhook_id",
            "id",
            postgresql_where=text(DUE_CONDITION),
            sqlite_where=text(DUE_CONDITION),
        ),
        Index("ix_delivery_workspace_id_id", "workspace_id", "id"),
        # Retention: finished rows by age (dead letters are kept until retried or purged).
        Index(
            "ix_delivery_finished_by_time",
            "updated_at",
            postgresql_where=text(FINISHED_CONDITION),
            sqlite_where=text(FINISHED_CONDITION),
        ),
        # Deliveries waiting for a subscription's digest, oldest first.
        Index(
            "ix_delivery_held_for_digest",
            "digest_of",
            "id",
            postgresql_where=text("status = 'held'"),
            sqlite_where=text("status = 'held'"),
        ),
        # The intake's look for a card still waiting for more updates to its issue.
        Index(
            "ix_delivery_combining",
            "webhook_id",
            "issue_key",
            postgresql_where=text("combine_until IS NOT NULL AND status = 'pending'"),
            sqlite_where=text("combine_until IS NOT NULL AND status = 'pending'"),
        ),
        # The deliveries folded into a storm summary, from the summary's side.
        Index(
            "ix_delivery_folded_into",
            "folded_into",
            postgresql_where=text("folded_into IS NOT NULL"),
            sqlite_where=text("folded_into IS NOT NULL"),
        ),
    )

    id: Mapped[str] = id_column()
    workspace_id: Mapped[str] = mapped_column(
        ForeignKey("workspaces.id", ondelete="CASCADE"), nullable=False
    )
    event_id: Mapped[str] = mapped_column(
        ForeignKey("jira_events.id", ondelete="CASCADE"), nullable=False, index=True
    )
    # SET NULL: the log outlives a deleted webhook; its pending rows become `skipped`.
    webhook_id: Mapped[str | None] = mapped_column(
        ForeignKey("teams_webhooks.id", ondelete="SET NULL"), nullable=True
    )
    channel_name: Mapped[str] = mapped_column(String(100), nullable=False)
    subscription_ids: Mapped[list[str]] = mapped_column(JSON, nullable=False, default=list)
    event_type: Mapped[str] = mapped_column(String(32), nullable=False)
    issue_key: Mapped[str | None] = mapped_column(String(100), nullable=True)
    summary: Mapped[str | None] = mapped_column(Text, nullable=True)
    # The exact JSON body POSTed to Teams, rendered when the delivery was queued.
    message: Mapped[str] = mapped_column(Text, nullable=False)
    status: Mapped[str] = mapped_column(String(16), nullable=False, default="pending")
    attempt_count: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    # Attempts made before the last manual retry: a replayed delivery gets a fresh schedule
    # while its whole attempt history stays.
    attempts_before_replay: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(UTCDateTime(), nullable=False)
    locked_until: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    worker_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    last_status_code: Mapped[int | None] = mapped_column(Integer, nullable=True)
    last_error: Mapped[str | None] = mapped_column(Text, nullable=True)
    delivered_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    # Status `folded`: the delivery whose storm summary card carried this one's event (it
    # reuses the row of the first event it combines). Not a foreign key: retention purges
    # both sides independently.
    folded_into: Mapped[str | None] = mapped_column(String(26), nullable=True)
    # Combining (routing/combine.py): this delivery waits until then for more updates to its
    # issue on its channel; each that comes is folded into it and its card drawn when taken.
    combine_until: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    # What the card stands for when it carries other deliveries: combined, storm or digest.
    card_kind: Mapped[str | None] = mapped_column(String(16), nullable=True)
    # Status `held`: the subscription whose digest will carry this delivery's event.
    digest_of: Mapped[str | None] = mapped_column(String(26), nullable=True)


class DeliveryAttempt(Base):
    """One POST to Teams: what the Delivery Log shows for a delivery."""

    __tablename__ = "delivery_attempts"
    # Not unique: after a lease runs out two workers may both have tried; both tries are kept.
    __table_args__ = (Index("ix_delivery_attempts_delivery_id_number", "delivery_id", "number"),)

    id: Mapped[str] = id_column()
    delivery_id: Mapped[str] = mapped_column(
        ForeignKey("integration_delivery_log.id", ondelete="CASCADE"), nullable=False
    )
    number: Mapped[int] = mapped_column(Integer, nullable=False)
    started_at: Mapped[datetime] = mapped_column(UTCDateTime(), nullable=False)
    duration_ms: Mapped[int] = mapped_column(Integer, nullable=False)
    status_code: Mapped[int | None] = mapped_column(Integer, nullable=True)
    error_kind: Mapped[str | None] = mapped_column(String(32), nullable=True)
    response_excerpt: Mapped[str | None] = mapped_column(Text, nullable=True)
    outcome: Mapped[str] = mapped_column(String(16), nullable=False)  # delivered|retry|dead_letter
    message: Mapped[str | None] = mapped_column(Text, nullable=True)
    worker_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
