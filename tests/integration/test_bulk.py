"""insert_rows and update_rows store what SQLAlchemy's own statements store, on both databases.

The intake writes its events and deliveries through insert_rows (on PostgreSQL as binary
arrays through unnest). A row must read back exactly as if `insert(table)` had written it:
JSON None as JSON null, text with quotes, backslashes, braces, commas and NUL-free Unicode
(what array literals would have to escape), 4 KB bodies, UTC times.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any, cast

import pytest
from sqlalchemy import Table, insert, select

from tests.support.factories import make_workspace
from ticketmate.bulk import insert_rows, update_rows
from ticketmate.db import AsyncDatabase
from ticketmate.ids import new_id
from ticketmate.models import JiraEventRecord
from ticketmate.state import Services
from ticketmate.timeutil import utcnow

EVENTS = cast(Table, JiraEventRecord.__table__)
BASE = utcnow().replace(microsecond=123456)
AWKWARD = 'quote " backslash \\ braces {a,b} comma, NULL null \u00e9\u6f22 \U0001f600 \t\n'


def _event(workspace_id: str, identifier: str | None, n: int) -> dict[str, Any]:
    now = BASE - timedelta(minutes=n)
    return {
        "id": new_id(),
        "workspace_id": workspace_id,
        "received_at": now,
        "jira_event_id": identifier,
        "jira_event": "jira:issue_updated",
        "status": "routed",
        "reason": None if n % 2 else AWKWARD,
        "event_types": ["issue_updated", "status_changed"] if n % 2 else [],
        "issue_key": "TES-1",
        "summary": AWKWARD * 3,
        "raw_body": '{"text": "' + AWKWARD.replace("\\", "\\\\") + '"}' + " " * 4096,
        "headers": {"user-agent": AWKWARD},
        "envelope": None if n % 2 else {"nested": {"list": [1, 2.5, None, AWKWARD]}},
        "dedupe_key": None,
        "matched_subscription_ids": None if n % 2 else ["a", "b"],
        "matched_count": n,
        "not_matched_count": None,
        "created_at": now,
        "updated_at": now,
    }


def _read(svc: Services, ids: list[str]) -> list[dict[str, Any]]:
    table = EVENTS
    with svc.db.engine.connect() as conn:
        rows = conn.execute(select(table).where(table.c.id.in_(ids))).mappings().all()
        nulls = conn.execute(
            select(table.c.id).where(table.c.id.in_(ids), table.c.envelope.is_(None))
        ).scalars()
        null_ids = set(nulls)
    found = {row["id"]: {**row, "envelope_is_sql_null": row["id"] in null_ids} for row in rows}
    return [found[i] for i in ids]


def test_rows_read_back_as_through_sqlalchemys_insert(svc: Services) -> None:
    workspace = make_workspace(svc)
    ours = [_event(workspace.id, f"ours-{n}", n) for n in range(5)]
    theirs = [_event(workspace.id, f"theirs-{n}", n) for n in range(5)]

    async def write() -> list[Any]:
        adb = AsyncDatabase(svc.settings, pool_size=1)
        try:
            async with adb.transaction() as conn:
                inserted = await insert_rows(conn, EVENTS, ours, returning="id")
                await conn.execute(insert(EVENTS), theirs)
            return inserted
        finally:
            await adb.dispose()

    inserted = asyncio.run(write())
    assert sorted(inserted) == sorted(row["id"] for row in ours)

    def comparable(row: dict[str, Any]) -> dict[str, Any]:
        return {k: v for k, v in row.items() if k not in {"id", "jira_event_id"}}

    for mine, reference in zip(
        _read(svc, [r["id"] for r in ours]), _read(svc, [r["id"] for r in theirs]), strict=True
    ):
        assert comparable(mine) == comparable(reference)
    # And both are what was given.
    first = _read(svc, [ours[0]["id"]])[0]
    assert first["raw_body"] == ours[0]["raw_body"]
    assert first["summary"] == AWKWARD * 3
    assert first["envelope"] == ours[0]["envelope"]
    assert first["received_at"] == ours[0]["received_at"]


def test_conflicting_rows_are_left_out_and_not_returned(svc: Services) -> None:
    workspace = make_workspace(svc)
    first = [_event(workspace.id, "same", 0), _event(workspace.id, "other", 1)]
    second = [_event(workspace.id, "same", 2), _event(workspace.id, "new", 3)]

    async def write() -> tuple[list[Any], list[Any]]:
        adb = AsyncDatabase(svc.settings, pool_size=1)
        try:
            async with adb.transaction() as conn:
                a = await insert_rows(
                    conn,
                    EVENTS,
                    first,
                    skip_conflicts_on=("workspace_id", "jira_event_id"),
                    returning="id",
                )
            async with adb.transaction() as conn:
                b = await insert_rows(
                    conn,
                    EVENTS,
                    second,
                    skip_conflicts_on=("workspace_id", "jira_event_id"),
                    returning="id",
                )
            return a, b
        finally:
            await adb.dispose()

    a, b = asyncio.run(write())
    assert sorted(a) == sorted(r["id"] for r in first)
    assert b == [second[1]["id"]]
    with svc.db.engine.connect() as conn:
        stored = conn.execute(
            select(EVENTS.c.jira_event_id, EVENTS.c.id).order_by(EVENTS.c.jira_event_id)
        ).all()
    assert [tuple(r) for r in stored] == [
        ("new", second[1]["id"]),
        ("other", first[1]["id"]),
        ("same", first[0]["id"]),
    ]


def test_a_column_with_a_default_must_be_given(svc: Services) -> None:
    workspace = make_workspace(svc)
    row = _event(workspace.id, "x", 0)
    del row["created_at"]

    async def write() -> None:
        adb = AsyncDatabase(svc.settings, pool_size=1)
        try:
            async with adb.transaction() as conn:
                await insert_rows(conn, EVENTS, [row])
        finally:
            await adb.dispose()

    with pytest.raises(ValueError, match="created_at"):
        asyncio.run(write())


def test_update_rows_sets_each_rows_columns_and_nothing_else(svc: Services) -> None:
    workspace = make_workspace(svc)
    rows = [_event(workspace.id, f"u-{n}", n) for n in range(3)]
    later = BASE + timedelta(hours=1)
    changes = [
        {
            "id": rows[0]["id"],
            "status": "ignored",
            "reason": AWKWARD,
            "envelope": None,
            "matched_count": 7,
            "updated_at": later,
        },
        {
            "id": rows[2]["id"],
            "status": "rejected",
            "reason": None,
            "envelope": {"changed": [AWKWARD]},
            "matched_count": None,
            "updated_at": later,
        },
    ]

    async def write() -> None:
        adb = AsyncDatabase(svc.settings, pool_size=1)
        try:
            async with adb.transaction() as conn:
                await insert_rows(conn, EVENTS, rows)
            async with adb.transaction() as conn:
                await update_rows(conn, EVENTS, changes)
        finally:
            await adb.dispose()

    asyncio.run(write())
    first, untouched, third = _read(svc, [r["id"] for r in rows])
    for stored, change in ((first, changes[0]), (third, changes[1])):
        for name, value in change.items():
            assert stored[name] == value, name
    assert first["envelope_is_sql_null"] is False  # JSON null, as SQLAlchemy's JSON writes it
    assert first["raw_body"] == rows[0]["raw_body"]  # columns not named stay as they were
    assert {k: v for k, v in untouched.items() if k != "envelope_is_sql_null"} == rows[1]


def test_update_rows_needs_the_key_in_every_row(svc: Services) -> None:
    async def write() -> None:
        adb = AsyncDatabase(svc.settings, pool_size=1)
        try:
            async with adb.transaction() as conn:
                await update_rows(conn, EVENTS, [{"status": "ignored"}])
        finally:
            await adb.dispose()

    with pytest.raises(ValueError, match="needs its id"):
        asyncio.run(write())
