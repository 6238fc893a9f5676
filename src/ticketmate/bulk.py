"""insert_rows, update_rows: many rows of one table in one statement, on the asynchronous engine.

The intake stores a batch of events and their deliveries per transaction. A multi-row
`INSERT … VALUES (…), (…)` has a new text for every batch size and every row adds bind
parameters, so on PostgreSQL each batch cost SQLAlchemy's per-row parameter work plus
psycopg parsing a statement too long for its cache (a third of the intake's CPU under load).
On PostgreSQL the rows go instead as one array per column through `unnest`:

    INSERT INTO t (a, b) SELECT * FROM unnest(CAST(%(a)s AS varchar(26)[]), …)

one short statement whatever the batch size, parsed and prepared once. Values are bound as
the column types would bind them (their bind processors; JSON as `json.dumps`, which is what
SQLAlchemy's JSON type sends, None included as JSON null), so a row reads back the same as
through `insert(table)`. SQLite (the embedded default, one writer) takes SQLAlchemy's
executemany, where none of this costs much.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from functools import lru_cache
from typing import Any

from sqlalchemy import JSON, ColumnElement, Table, any_, bindparam, update
from sqlalchemy.dialects import sqlite
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.engine import Dialect
from sqlalchemy.ext.asyncio import AsyncConnection


async def insert_rows(
    conn: AsyncConnection,
    table: Table,
    rows: Sequence[dict[str, Any]],
    *,
    skip_conflicts_on: Sequence[str] | None = None,
    returning: str | None = None,
) -> list[Any]:
    """Insert `rows` (dicts with the same keys); rows that hit the unique index over
    `skip_conflicts_on` are left out (ON CONFLICT DO NOTHING). Returns the `returning` column
    of the rows inserted (empty when `returning` is None)."""
    if not rows:
        return []
    columns = tuple(rows[0])
    _check_defaults(table, columns)
    if conn.dialect.name == "postgresql":
        statement = _unnest_statement(
            table, columns, tuple(skip_conflicts_on or ()), returning, conn.dialect
        )
        found = await _execute_binary(
            conn, statement, _arrays(table, columns, rows, conn.dialect), fetch=bool(returning)
        )
        return [row[0] for row in found]
    insert = sqlite.insert(table)
    if skip_conflicts_on:
        insert = insert.on_conflict_do_nothing(index_elements=list(skip_conflicts_on))
    if returning is not None:
        result = await conn.execute(insert.returning(table.c[returning]), list(rows))
    else:
        await conn.execute(insert, list(rows))
        return []
    return list(result.scalars())


async def update_rows(
    conn: AsyncConnection, table: Table, rows: Sequence[dict[str, Any]], *, key: str = "id"
) -> None:
    """Set each row's columns on the table row whose `key` column equals the row's `key`
    (dicts with the same keys). PostgreSQL: one `UPDATE … FROM unnest(…)`; SQLite: one
    UPDATE per row through executemany."""
    if not rows:
        return
    columns = tuple(rows[0])
    if key not in columns:
        raise ValueError(f"update_rows on {table.name}: every row needs its {key}")
    if conn.dialect.name == "postgresql":
        statement = _unnest_update(table, columns, key, conn.dialect)
        await _execute_binary(conn, statement, _arrays(table, columns, rows, conn.dialect))
        return
    changed = [name for name in columns if name != key]
    await conn.execute(
        update(table)
        .where(table.c[key] == bindparam(f"old_{key}"))
        .values({name: bindparam(f"new_{name}") for name in changed}),
        [
            {f"old_{key}": row[key], **{f"new_{name}": row[name] for name in changed}}
            for row in rows
        ],
    )


async def _execute_binary(
    conn: AsyncConnection, statement: str, arrays: dict[str, list[Any]], *, fetch: bool = False
) -> list[Any]:
    # Straight to psycopg, in the transaction SQLAlchemy began on this connection: its %b
    # placeholders send the arrays in binary, where text arrays would be quoted and escaped
    # value by value in Python (4 KB bodies, rendered cards).
    raw = await conn.get_raw_connection()
    driver: Any = raw.driver_connection
    async with driver.cursor() as cursor:
        await cursor.execute(statement, arrays)
        return list(await cursor.fetchall()) if fetch else []


def id_in(column: Any, ids: Sequence[str], dialect_name: str) -> ColumnElement[bool]:
    """`column IN ids` as one statement text whatever the number of ids: on PostgreSQL
    `= ANY(array)` (one parameter), elsewhere SQLAlchemy's expanding IN."""
    if dialect_name == "postgresql":
        return column == any_(bindparam("ids", list(ids), type_=ARRAY(column.type)))  # type: ignore[no-any-return]
    return column.in_(list(ids))  # type: ignore[no-any-return]


def _check_defaults(table: Table, columns: tuple[str, ...]) -> None:
    # Python-side defaults are not applied on the unnest path: callers must give those columns.
    missing = [c.name for c in table.columns if c.default is not None and c.name not in columns]
    if missing:
        raise ValueError(f"insert_rows into {table.name}: give values for {', '.join(missing)}")


@lru_cache(maxsize=64)
def _unnest_statement(
    table: Table,
    columns: tuple[str, ...],
    skip_conflicts_on: tuple[str, ...],
    returning: str | None,
    dialect: Dialect,
) -> str:
    # Every name is looked up in the table (KeyError otherwise) and quoted by the dialect:
    # the statement is built from the schema, never from values.
    quote = dialect.identifier_preparer.quote

    def named(names: Sequence[str]) -> str:
        return ", ".join(quote(table.c[name].name) for name in names)

    arrays = ", ".join(
        f"CAST(%({name})b AS {table.c[name].type.compile(dialect=dialect)}[])" for name in columns
    )
    sql = f"INSERT INTO {quote(table.name)} ({named(columns)}) SELECT * FROM unnest({arrays})"  # noqa: S608
    if skip_conflicts_on:
        sql += f" ON CONFLICT ({named(skip_conflicts_on)}) DO NOTHING"
    if returning:
        sql += f" RETURNING {named([returning])}"
    return sql


@lru_cache(maxsize=64)
def _unnest_update(table: Table, columns: tuple[str, ...], key: str, dialect: Dialect) -> str:
    quote = dialect.identifier_preparer.quote
    names = [quote(table.c[name].name) for name in columns]  # looked up: KeyError if unknown
    arrays = ", ".join(
        f"CAST(%({name})b AS {table.c[name].type.compile(dialect=dialect)}[])" for name in columns
    )
    assignments = ", ".join(
        f"{quoted} = v.{quoted}" for name, quoted in zip(columns, names, strict=True) if name != key
    )
    target, key_name = quote(table.name), quote(table.c[key].name)
    return (
        f"UPDATE {target} SET {assignments} FROM unnest({arrays}) AS v({', '.join(names)}) "  # noqa: S608
        f"WHERE {target}.{key_name} = v.{key_name}"
    )


def _arrays(
    table: Table, columns: tuple[str, ...], rows: Sequence[dict[str, Any]], dialect: Dialect
) -> dict[str, list[Any]]:
    arrays: dict[str, list[Any]] = {}
    for name in columns:
        column_type = table.c[name].type
        values = [row[name] for row in rows]
        if isinstance(column_type, JSON):
            arrays[name] = [json.dumps(value) for value in values]
            continue
        process = column_type._cached_bind_processor(dialect)
        arrays[name] = [process(value) for value in values] if process else values
    return arrays
