"""TeamsWebhook: one Teams channel's incoming webhook. The URL is encrypted, never shown again."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import (
    JSON,
    Boolean,
    ForeignKey,
    Integer,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from ticketmate.models.base import Base, Timestamps, UTCDateTime, id_column


class TeamsWebhook(Timestamps, Base):
    __tablename__ = "teams_webhooks"
    __table_args__ = (
        UniqueConstraint("workspace_id", "channel_name"),
        UniqueConstraint("workspace_id", "url_digest"),
    )

    id: Mapped[str] = id_column()
    workspace_id: Mapped[str] = mapped_column(
        ForeignKey("workspaces.id", ondelete="CASCADE"), nullable=False, index=True
    )
    channel_name: Mapped[str] = mapped_column(String(100), nullable=False)
    # AES-256-GCM blob bound to (workspace id, webhook id); see security/crypto.py.
    url_ciphertext: Mapped[bytes] = mapped_column(LargeBinary, nullable=False)
    # Keyed hash (HMAC) of the URL: finds duplicates without keeping or comparing plaintext.
    url_digest: Mapped[str] = mapped_column(String(64), nullable=False)
    url_masked: Mapped[str] = mapped_column(String(300), nullable=False)
    url_kind: Mapped[str] = mapped_column(String(16), nullable=False)  # workflows | connector
    # power_platform | logic_apps | connector | loopback | unknown, from the host
    # (security/urls.py): whether Microsoft still honours the URL. Set whenever it is sealed.
    url_family: Mapped[str] = mapped_column(
        String(16), nullable=False, default="unknown", server_default="unknown"
    )
    enabled: Mapped[bool] = mapped_column(Boolean, nullable=False, default=True)
    disabled_reason: Mapped[str | None] = mapped_column(Text, nullable=True)
    created_by: Mapped[str | None] = mapped_column(String(254), nullable=True)

    # Health, kept up to date by deliveries and tests.
    last_success_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    last_failure_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    last_failure_reason: Mapped[str | None] = mapped_column(Text, nullable=True)
    consecutive_failures: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    consecutive_removed: Mapped[int] = mapped_column(Integer, nullable=False, default=0)

    # The channel's delivery lane: one worker at a time sends a channel's deliveries, in order
    # and within Teams' rate limit. The lease lets another worker take over a dead one's lane.
    lane_locked_until: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    lane_worker: Mapped[str | None] = mapped_column(String(64), nullable=True)
    # Set after a 429: nothing is sent to this channel before then.
    paused_until: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    # When the last few requests to this channel were answered (epoch seconds), so the next
    # lane holder keeps to the rolling one-second limit.
    recent_sends: Mapped[list[float]] = mapped_column(JSON, nullable=False, default=list)
    # Storm control (delivery/storm.py): when more than this many first-attempt cards wait for
    # the channel, they are combined into summary cards. Null: off.
    storm_threshold: Mapped[int | None] = mapped_column(Integer, nullable=True)
