"""Issue security levels at the intake: remember what events say, fill in what they do not.

An issue event says its issue's level (`fields.security`, absent meaning unrestricted); a
comment event often does not (Cloud trims its issue, Server sends none), and posting a comment
of a restricted issue to a wide channel is exactly what must not happen. So, inside the
intake's transaction and in the batch's order:

- every event that says its level records it in `issue_security_levels` by issue id, unless
  a newer observation (by Jira's timestamp) is already there;
- every event that does not takes the last level recorded for its issue ("remembered"),
  earlier events of the same batch included; an issue never seen stays "unknown", and the
  workspace's setting decides whether such comments are withheld (routing/filters.py).

One SELECT when the batch has events without a level, one upsert when it has events with
one; nothing else is added to an event's cost.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection

from ticketmate.jira.events import JiraEvent, SecurityLevel
from ticketmate.models import IssueSecurity

TABLE = IssueSecurity.__table__

REMEMBERED_NOTE = (
    "Jira sent this comment without the issue's security level; the level "
    "'{level}' is the one an earlier event of the issue showed."
)
REMEMBERED_UNRESTRICTED_NOTE = (
    "Jira sent this comment without the issue's security level; an earlier event of the "
    "issue showed it without one."
)


@dataclass
class Sighted:
    """One event of the batch, as far as security levels go."""

    workspace_id: str
    envelope: JiraEvent
    received_at: datetime


def _known(envelope: JiraEvent) -> bool:
    return envelope.security_source in ("payload", "changelog")


def _key(item: Sighted) -> tuple[str, str] | None:
    issue_id = item.envelope.issue_id
    return (item.workspace_id, issue_id) if issue_id else None


async def resolve_levels(conn: AsyncConnection, items: Sequence[Sighted]) -> list[JiraEvent]:
    """The batch's envelopes with remembered levels filled in (same order), after recording
    the levels the batch's events say."""
    memory = await _recorded(
        conn, {k for item in items if not _known(item.envelope) and (k := _key(item))}
    )
    seen: dict[tuple[str, str], dict[str, Any]] = {}
    resolved: list[JiraEvent] = []
    for item in items:
        envelope, key = item.envelope, _key(item)
        if _known(envelope):
            if key is not None:
                memory[key] = envelope.security
                seen[key] = _row(item, key)
        elif envelope.security_source == "unknown":
            envelope = _filled(envelope, memory, key)
        resolved.append(envelope)
    await _record(conn, list(seen.values()))
    return resolved


def _filled(
    envelope: JiraEvent,
    memory: dict[tuple[str, str], SecurityLevel | None],
    key: tuple[str, str] | None,
) -> JiraEvent:
    if key is None or key not in memory:
        # Stays "unknown": the workspace's setting decides when it is routed, and the event's
        # page says so; a note on every such comment would be noise.
        return envelope
    level = memory[key]
    note = (
        REMEMBERED_NOTE.format(level=level.label)
        if level is not None
        else REMEMBERED_UNRESTRICTED_NOTE
    )
    return envelope.model_copy(
        update={
            "security": level,
            "security_source": "remembered",
            "notes": [*envelope.notes, note],
        }
    )


def _row(item: Sighted, key: tuple[str, str]) -> dict[str, Any]:
    level = item.envelope.security
    issue = item.envelope.issue
    return {
        "workspace_id": key[0],
        "issue_id": key[1][:64],
        "issue_key": (issue.key or "")[:100] or None if issue else None,
        "level_id": (level.id or "")[:64] or None if level else None,
        "level_name": (level.name or "")[:255] or None if level else None,
        "observed_at": item.envelope.occurred_at or item.received_at,
    }


async def _recorded(
    conn: AsyncConnection, keys: set[tuple[str, str]]
) -> dict[tuple[str, str], SecurityLevel | None]:
    if not keys:
        return {}
    t = TABLE.c
    rows = await conn.execute(
        select(t.workspace_id, t.issue_id, t.level_id, t.level_name).where(
            t.workspace_id.in_(sorted({k[0] for k in keys})),
            t.issue_id.in_(sorted({k[1] for k in keys})),
        )
    )
    found: dict[tuple[str, str], SecurityLevel | None] = {}
    for row in rows:
        key = (row.workspace_id, row.issue_id)
        if key in keys:
            restricted = row.level_id is not None or row.level_name is not None
            found[key] = SecurityLevel(id=row.level_id, name=row.level_name) if restricted else None
    return found


async def _record(conn: AsyncConnection, rows: list[dict[str, Any]]) -> None:
    if not rows:
        return
    # Sorted, so two processes' batches take the rows' locks in one order.
    rows.sort(key=lambda r: (r["workspace_id"], r["issue_id"]))
    dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
    insert = dialect.insert(TABLE)
    statement = insert.on_conflict_do_update(
        index_elements=["workspace_id", "issue_id"],
        set_={
            "issue_key": insert.excluded.issue_key,
            "level_id": insert.excluded.level_id,
            "level_name": insert.excluded.level_name,
            "observed_at": insert.excluded.observed_at,
        },
        # A late copy of an older event does not undo a newer observation.
        where=TABLE.c.observed_at <= insert.excluded.observed_at,
    )
    await conn.execute(statement, rows)
