"""Appending to the audit log and checking its hash chain.

Each entry's hash covers its own content and the previous entry's hash in the same workspace
(entries of no workspace form a chain of their own), so an edited, removed or reordered row
breaks the chain at that point.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import func, select, text
from sqlalchemy.orm import Session

from ticketmate.models import AuditEntry
from ticketmate.timeutil import utcnow

GENESIS = "0" * 64


@dataclass(frozen=True)
class Actor:
    type: str  # "user" | "system"
    id: str | None = None
    email: str | None = None


SYSTEM = Actor("system")


@dataclass(frozen=True)
class RequestInfo:
    ip: str | None = None
    user_agent: str | None = None


def _hash(entry: AuditEntry) -> str:
    content = {
        "workspace_id": entry.workspace_id,
        "seq": entry.seq,
        "at": entry.at.isoformat(timespec="microseconds"),
        "actor": [entry.actor_type, entry.actor_id, entry.actor_email],
        "action": entry.action,
        "target": [entry.target_type, entry.target_id],
        "ip": entry.ip,
        "user_agent": entry.user_agent,
        "details": entry.details,
        "prev_hash": entry.prev_hash,
    }
    canonical = json.dumps(content, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode()).hexdigest()


def _lock_chain(session: Session, workspace_id: str | None) -> None:
    # On PostgreSQL, writers of one workspace's chain queue up behind a transaction-scoped
    # advisory lock; SQLite transactions here are BEGIN IMMEDIATE, one writer at a time anyway.
    bind = session.get_bind()
    if bind.dialect.name == "postgresql":
        session.execute(
            text("SELECT pg_advisory_xact_lock(hashtext(:key))"),
            {"key": f"audit:{workspace_id or '-'}"},
        )


def record(
    session: Session,
    *,
    workspace_id: str | None,
    actor: Actor,
    action: str,
    target_type: str | None = None,
    target_id: str | None = None,
    details: dict[str, Any] | None = None,
    request: RequestInfo | None = None,
    at: datetime | None = None,
) -> AuditEntry:
    """Append one entry in the caller's transaction. `details` must never hold a secret."""
    _lock_chain(session, workspace_id)
    chain = (
        AuditEntry.workspace_id.is_(None)
        if workspace_id is None
        else (AuditEntry.workspace_id == workspace_id)
    )
    last = session.execute(
        select(AuditEntry.seq, AuditEntry.hash)
        .where(chain)
        .order_by(AuditEntry.seq.desc())
        .limit(1)
    ).first()
    entry = AuditEntry(
        workspace_id=workspace_id,
        seq=(last.seq + 1) if last else 1,
        at=at or utcnow(),
        actor_type=actor.type,
        actor_id=actor.id,
        actor_email=actor.email,
        action=action,
        target_type=target_type,
        target_id=target_id,
        ip=request.ip if request else None,
        user_agent=(request.user_agent or "")[:300] or None if request else None,
        details=details or {},
        prev_hash=last.hash if last else GENESIS,
    )
    entry.hash = _hash(entry)
    session.add(entry)
    session.flush()
    return entry


@dataclass(frozen=True)
class ChainReport:
    ok: bool
    checked: int
    broken_entry_id: str | None = None
    problem: str | None = None


def verify_chain(session: Session, workspace_id: str | None) -> ChainReport:
    """Walk one chain in order; report the first entry whose hash or link does not hold."""
    chain = (
        AuditEntry.workspace_id.is_(None)
        if workspace_id is None
        else (AuditEntry.workspace_id == workspace_id)
    )
    previous = GENESIS
    expected_seq = 1
    checked = 0
    for entry in session.scalars(select(AuditEntry).where(chain).order_by(AuditEntry.seq)):
        if entry.seq != expected_seq:
            return ChainReport(False, checked, entry.id, f"entry {expected_seq} is missing")
        if entry.prev_hash != previous:
            return ChainReport(False, checked, entry.id, "it does not link to the entry before it")
        if _hash(entry) != entry.hash:
            return ChainReport(False, checked, entry.id, "its content does not match its hash")
        previous = entry.hash
        expected_seq += 1
        checked += 1
    return ChainReport(True, checked)


def count(session: Session, workspace_id: str) -> int:
    return int(
        session.scalar(
            select(func.count())
            .select_from(AuditEntry)
            .where(AuditEntry.workspace_id == workspace_id)
        )
        or 0
    )
