"""TeamsSubscription: which events go to which webhook, narrowed by filters."""

from __future__ import annotations

from sqlalchemy import JSON, Boolean, ForeignKey, Index, String
from sqlalchemy.orm import Mapped, mapped_column

from ticketmate.models.base import Base, Timestamps, id_column


class TeamsSubscription(Timestamps, Base):
    __tablename__ = "teams_subscriptions"
    __table_args__ = (
        # The EventRouter's lookup: enabled subscriptions of a workspace for an event type.
        Index("ix_teams_subscriptions_routing", "workspace_id", "event_type", "enabled"),
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
