"""TeamsSubscription: which events go to which webhook, narrowed by filters."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, Boolean, ForeignKey, Index, Integer, String, text
from sqlalchemy.orm import Mapped, mapped_column

from ticketmate.models.base import Base, Timestamps, UTCDateTime, id_column


class TeamsSubscription(Timestamps, Base):
    __tablename__ = "teams_subscriptions"
    __table_args__ = (
        # The EventRouter's lookup: enabled subscriptions of a workspace for an event type.
        Index("ix_teams_subscriptions_routing", "workspace_id", "event_type", "enabled"),
        # The worker's look for digests that are due.
        Index(
            "ix_teams_subscriptions_next_digest",
            "next_digest_at",
            postgresql_where=text("digest IS NOT NULL"),
            sqlite_where=text("digest IS NOT NULL"),
        ),
    )

    id: Mapped[str] = id_column()
    workspace_id: Mapped[str] = mapped_column(
        ForeignKey("workspaces.id", ondelete="CASCADE"), nullable=False
    )
    webhook_id: Mapped[str] = mapped_column(
        ForeignKey("teams_webhooks.id", ondelete="CASCADE"), nullable=False, index=True
    )
    event_type: Mapped[str] = mapped_column(String(32), nullable=False)
    enabled: Mapped[bool] = mapped_column(Boolean, nullable=False, default=True)
    # {"projects": [...], "issue_types": [...], "statuses": [...], "priorities": [...],
    #  "labels": [...], "components": [...]}; an empty or absent list means any.
    filters: Mapped[dict[str, list[str]]] = mapped_column(JSON, nullable=False, default=dict)
    created_by: Mapped[str | None] = mapped_column(String(254), nullable=True)
    # Combine updates to the same issue within this many seconds into one card (None: off).
    combine_seconds: Mapped[int | None] = mapped_column(Integer, nullable=True)
    # Send as a digest instead (teams/digest_schedule.py): "hourly" or "daily@09:00/Europe/Berlin".
    digest: Mapped[str | None] = mapped_column(String(80), nullable=True)
    # When the next digest is due (UTC); the worker moves it on as it sends one.
    next_digest_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
