"""Users, memberships, API tokens, web sessions and the sign-in throttle."""

from __future__ import annotations

import logging
import re
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from ticketmate.models import ApiToken, Membership, SigninThrottle, User, WebSession, Workspace
from ticketmate.models.membership import ROLES
from ticketmate.security.passwords import hash_password, random_password, verify_password
from ticketmate.security.tokens import digest, new_api_token
from ticketmate.timeutil import utcnow

log = logging.getLogger(__name__)

EMAIL_PATTERN = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
SESSION_LIFETIME = timedelta(hours=12)
MIN_PASSWORD_LENGTH = 8


class AccountError(ValueError):
    """A user, membership or token request that cannot be carried out; the message says why."""


def normalise_email(email: str) -> str:
    email = email.strip().lower()
    if not EMAIL_PATTERN.match(email) or len(email) > 254:
        raise AccountError(f"{email!r} is not an e-mail address.")
    return email


def get_user_by_email(session: Session, email: str) -> User | None:
    return session.scalar(select(User).where(User.email == email.strip().lower()))


@dataclass(frozen=True)
class CreatedUser:
    user: User
    created: bool
    generated_password: str | None


def ensure_user(session: Session, email: str, password: str | None = None) -> CreatedUser:
    """Create the user when new; with no password given, a random one is generated."""
    email = normalise_email(email)
    existing = get_user_by_email(session, email)
    if existing is not None:
        if password is not None:
            set_password(existing, password)
        return CreatedUser(existing, created=False, generated_password=None)
    generated = None
    if password is None:
        password = generated = random_password()
    _check_password(password)
    user = User(email=email, password_hash=hash_password(password))
    session.add(user)
    session.flush()
    return CreatedUser(user, created=True, generated_password=generated)


def set_password(user: User, password: str) -> None:
    _check_password(password)
    user.password_hash = hash_password(password)


def _check_password(password: str) -> None:
    if len(password) < MIN_PASSWORD_LENGTH:
        raise AccountError(f"A password needs at least {MIN_PASSWORD_LENGTH} characters.")


def set_membership(session: Session, user: User, workspace: Workspace, role: str) -> Membership:
    if role not in ROLES:
        raise AccountError(f"The role must be one of: {', '.join(ROLES)}.")
    membership = session.scalar(
        select(Membership).where(
            Membership.user_id == user.id, Membership.workspace_id == workspace.id
        )
    )
    if membership is None:
        membership = Membership(user_id=user.id, workspace_id=workspace.id, role=role)
        session.add(membership)
    else:
        membership.role = role
    session.flush()
    return membership


def role_in(session: Session, user_id: str, workspace_id: str) -> str | None:
    return session.scalar(
        select(Membership.role).where(
            Membership.user_id == user_id, Membership.workspace_id == workspace_id
        )
    )


def workspaces_of(session: Session, user_id: str) -> list[tuple[Workspace, str]]:
    rows = session.execute(
        select(Workspace, Membership.role)
        .join(Membership, Membership.workspace_id == Workspace.id)
        .where(Membership.user_id == user_id)
        .order_by(Workspace.slug)
    ).all()
    return [(ws, role) for ws, role in rows]


def create_api_token(session: Session, user: User) -> str:
    """A new bearer token for the user; only its digest is stored, so it is shown once."""
    token = new_api_token()
    session.add(ApiToken(user_id=user.id, token_hash=digest(token), prefix=token[:10]))
    session.flush()
    return token


def user_for_api_token(session: Session, token: str) -> User | None:
    row = session.scalar(select(ApiToken).where(ApiToken.token_hash == digest(token)))
    if row is None:
        return None
    now = utcnow()
    # Touch at most once a minute: a write per API call would serialise SQLite for nothing.
    if row.last_used_at is None or now - row.last_used_at > timedelta(minutes=1):
        row.last_used_at = now
    return session.get(User, row.user_id)


@dataclass(frozen=True)
class SigninResult:
    user: User | None
    locked_until: datetime | None = None


def sign_in(
    session: Session, email: str, password: str, *, max_failures: int, lockout_seconds: int
) -> SigninResult:
    """Check a password, counting failures per e-mail; too many lock the address for a while."""
    key = email.strip().lower()[:254]
    now = utcnow()
    throttle = session.get(SigninThrottle, key)
    if throttle is not None and throttle.locked_until is not None and throttle.locked_until > now:
        return SigninResult(None, locked_until=throttle.locked_until)
    user = get_user_by_email(session, key)
    if verify_password(user.password_hash if user else None, password) and user is not None:
        if throttle is not None:
            session.delete(throttle)
        return SigninResult(user)
    if throttle is None:
        throttle = SigninThrottle(email=key, failures=0)
        session.add(throttle)
    if throttle.locked_until is not None and throttle.locked_until <= now:
        throttle.failures = 0
        throttle.locked_until = None
    throttle.failures += 1
    if throttle.failures >= max_failures:
        throttle.locked_until = now + timedelta(seconds=lockout_seconds)
        log.warning("sign-in locked for %s after %d failures", key, throttle.failures)
    session.flush()
    return SigninResult(None, locked_until=throttle.locked_until)


@dataclass(frozen=True)
class NewSession:
    token: str
    csrf_token: str


def start_session(session: Session, user: User) -> NewSession:
    token = secrets.token_urlsafe(32)
    csrf = secrets.token_urlsafe(32)
    session.add(
        WebSession(
            token_hash=digest(token),
            user_id=user.id,
            csrf_token=csrf,
            expires_at=utcnow() + SESSION_LIFETIME,
        )
    )
    session.flush()
    return NewSession(token, csrf)


def find_session(session: Session, token: str) -> WebSession | None:
    row = session.scalar(select(WebSession).where(WebSession.token_hash == digest(token)))
    if row is None or row.expires_at <= utcnow():
        return None
    return row


def end_session(session: Session, token: str) -> None:
    session.execute(delete(WebSession).where(WebSession.token_hash == digest(token)))
