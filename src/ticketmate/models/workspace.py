"""Workspace: a tenant. Holds its Jira inbound credentials, encrypted."""

from __future__ import annotations

from sqlalchemy import LargeBinary, String
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
