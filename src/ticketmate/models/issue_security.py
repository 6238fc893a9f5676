"""IssueSecurity: the last security level each issue of a workspace was seen with.

Jira Cloud's comment events carry a trimmed issue without `fields.security`, and Server's
carry no issue at all, so a comment on a restricted issue would look unrestricted. Every
event that does say the level (issue events, full-issue comment reports) records it here,
by the issue's id, which survives a move to another project; a comment event then takes the
level from here (jira/security.py).
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column

from ticketmate.models.base import Base, UTCDateTime


class IssueSecurity(Base):
    __tablename__ = "issue_security_levels"

    workspace_id: Mapped[str] = mapped_column(
        ForeignKey("workspaces.id", ondelete="CASCADE"), primary_key=True
    )
    issue_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    issue_key: Mapped[str | None] = mapped_column(String(100), nullable=True)
    # Null level: the issue was seen unrestricted (which is knowledge too).
    level_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    level_name: Mapped[str | None] = mapped_column(String(255), nullable=True)
    # When Jira says the change happened (else when it arrived): an older event arriving late
    # never overwrites a newer one's level.
    observed_at: Mapped[datetime] = mapped_column(UTCDateTime(), nullable=False)
