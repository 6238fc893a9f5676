"""Sign-in throttle: failed sign-ins per e-mail address, known user or not."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from ticketmate.models.base import Base, Timestamps, UTCDateTime


class SigninThrottle(Timestamps, Base):
    __tablename__ = "signin_throttles"

    # Keyed by the e-mail as typed (lower-cased), so unknown addresses are slowed down alike
    # and the lock-out says nothing about which addresses have accounts.
    email: Mapped[str] = mapped_column(String(254), primary_key=True)
    failures: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    locked_until: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
