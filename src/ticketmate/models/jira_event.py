"""JiraEventRecord: every authenticated Jira request, stored before anything else happens."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, ForeignKey, Index, Integer, String, Text, UniqueConstraint, text
from sqlalchemy.orm import Mapped, mapped_column

from ticketmate.models.base import Base, Timestamps, UTCDateTime, id_column

EVENT_STATUSES = ("routed", "ignored", "rejected")


class JiraEventRecord(Timestamps, Base):
    __tablename__ = "jira_events"
    __table_args__ = (
        # Jira keeps X-Atlassian-Webhook-Identifier across its retries: a repeat is a no-op,
        # enforced here so two concurrent copies cannot both be stored. NULLs never collide.
        UniqueConstraint("workspace_id", "jira_event_id"),
        Index("ix_jira_events_workspace_id_id", "workspace_id", "id"),
        # Finds an earlier report of the same comment (Jira Server sends most twice).
        Index(
            "ix_jira_events_dedupe_key",
            "workspace_id",
            "dedupe_key",
            postgresql_where=text("dedupe_key IS NOT NULL"),
            sqlite_where=text("dedupe_key IS NOT NULL"),
        ),
    )

    id: Mapped[str] = id_column()
    workspace_id: Mapped[str] = mapped_column(
        ForeignKey("workspaces.id", ondelete="CASCADE"), nullable=False
    )
    received_at: Mapped[datetime] = mapped_column(UTCDateTime(), nullable=False)
    jira_event_id: Mapped[str | None] = mapped_column(String(200), nullable=True)
    jira_event: Mapped[str | None] = mapped_column(String(100), nullable=True)
    status: Mapped[str] = mapped_column(String(16), nullable=False)  # routed|ignored|rejected
    reason: Mapped[str | None] = mapped_column(Text, nullable=True)
    event_types: Mapped[list[str]] = mapped_column(JSON, nullable=False, default=list)
    issue_key: Mapped[str | None] = mapped_column(String(100), nullable=True)
    summary: Mapped[str | None] = mapped_column(Text, nullable=True)
    # The raw body as received (text: Jira sends UTF-8 JSON) and the headers that matter.
    raw_body: Mapped[str] = mapped_column(Text, nullable=False)
    headers: Mapped[dict[str, Any]] = mapped_column(JSON, nullable=False, default=dict)
    envelope: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    # The envelope's dedupe_key (a comment's identity), hashed when long; null for the rest.
    dedupe_key: Mapped[str | None] = mapped_column(String(100), nullable=True)
    # Filled by the EventRouter; null when the event was not routed (ignored, rejected, a
    # second report of a comment, a routing failure). Only what matched is kept, a few hundred
    # bytes: why the others did not is worked out when someone asks (routing/explanation.py).
    # The ids of the subscriptions that took the event, in id order, at most
    # MATCHED_IDS_LIMIT of them; matched_count says how many there were in all.
    matched_subscription_ids: Mapped[list[str] | None] = mapped_column(JSON, nullable=True)
    matched_count: Mapped[int | None] = mapped_column(Integer, nullable=True)
    # The workspace's other subscriptions (all of them, enabled or not, minus the matched).
    not_matched_count: Mapped[int | None] = mapped_column(Integer, nullable=True)
