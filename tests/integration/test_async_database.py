"""The asynchronous engine of the hot paths works on both backends, with SQLite's rules."""

from __future__ import annotations

import asyncio
from pathlib import Path

from sqlalchemy import text

from tests.conftest import make_settings
from ticketmate.db import AsyncDatabase


def test_async_transaction_commits_and_rolls_back(database_url: str, tmp_path: Path) -> None:
    settings = make_settings(database_url, tmp_path, database_pool_size=2)

    async def scenario() -> tuple[int, int, str]:
        adb = AsyncDatabase(settings)
        try:
            async with adb.transaction() as conn:
                await conn.execute(text("CREATE TABLE IF NOT EXISTS adb_probe (n INTEGER)"))
                await conn.execute(text("DELETE FROM adb_probe"))
            async with adb.transaction() as conn:
                await conn.execute(text("INSERT INTO adb_probe (n) VALUES (1)"))
            try:
                async with adb.transaction() as conn:
                    await conn.execute(text("INSERT INTO adb_probe (n) VALUES (2)"))
                    raise RuntimeError("abandon this unit of work")
            except RuntimeError:
                pass
            async with adb.transaction() as conn:
                total = (await conn.execute(text("SELECT count(*) FROM adb_probe"))).scalar_one()
                biggest = (await conn.execute(text("SELECT max(n) FROM adb_probe"))).scalar_one()
                await conn.execute(text("DROP TABLE adb_probe"))
            return int(total), int(biggest), adb.dialect
        finally:
            await adb.dispose()

    total, biggest, dialect = asyncio.run(scenario())
    assert (total, biggest) == (1, 1)
    assert dialect in {"sqlite", "postgresql"}


def test_sqlite_async_connections_use_wal_and_foreign_keys(tmp_path: Path) -> None:
    settings = make_settings(f"sqlite:///{tmp_path / 'a.db'}", tmp_path)

    async def pragmas() -> tuple[str, int]:
        adb = AsyncDatabase(settings)
        try:
            async with adb.transaction() as conn:
                mode = (await conn.execute(text("PRAGMA journal_mode"))).scalar_one()
                keys = (await conn.execute(text("PRAGMA foreign_keys"))).scalar_one()
            return str(mode), int(keys)
        finally:
            await adb.dispose()

    assert asyncio.run(pragmas()) == ("wal", 1)
