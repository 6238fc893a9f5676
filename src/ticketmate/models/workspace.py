"""Workspace: a tenant. Holds its Jira inbound credentials, encrypted, and its Jira site."""

from __future__ import annotations

from sqlalchemy import Boolean, Integer, LargeBinary, String
from sqlalchemy.orm import Mapped, mapped_column

from ticketmate.models.base import Base, Timestamps, id_column


class Workspace(Timestamps, Base):
    __tablename__ = "workspaces"

    id: Mapped[str] = id_column()
    slug: Mapped[str] = mapped_column(String(64), unique=True, nullable=False)
    name: Mapped[str] = mapped_column(String(200), nullable=False)
    # The Jira secret (signs X-Hub-Signature) and the ingest token (bearer for senders that
    # cannot sign). Admins must be able to read them again, so they are encrypted, not hashed.
    jira_secret_ciphertext: Mapped[bytes] = mapped_column(LargeBinary, nullable=False)
    jira_ingest_token_ciphertext: Mapped[bytes] = mapped_column(LargeBinary, nullable=False)
    # The Jira site (scheme://host[:port][/context]) that "Open in Jira" links may point to:
    # learned from the first signed event, or set by an administrator. Null until then.
    jira_base_url: Mapped[str | None] = mapped_column(String(300), nullable=True)
    # Moves on with every change to the workspace's webhooks, subscriptions or Jira
    # credentials, in the same transaction (workspaces/generation.py): what is cached from
    # them in memory is current while this number is.
    config_generation: Mapped[int] = mapped_column(
        Integer, nullable=False, default=0, server_default="0"
    )
    # "Withhold comments on issues whose security level is unknown": a comment event whose
    # issue was never seen with its level is then posted only where any level is allowed.
    withhold_unknown_security: Mapped[bool] = mapped_column(
        Boolean, nullable=False, default=False, server_default="0"
    )
