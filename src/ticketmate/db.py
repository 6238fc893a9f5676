"""Database engine, sessions and the transaction helper; the dialect details live here."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine
from sqlalchemy.orm import Session, sessionmaker

from ticketmate.config import Settings


def normalise_database_url(url: str) -> str:
    """Pick the driver: psycopg 3 for PostgreSQL, the standard library for SQLite."""
    if url.startswith("postgres://"):
        url = "postgresql://" + url.removeprefix("postgres://")
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url.removeprefix("postgresql://")
    return url


def ensure_sqlite_folder(url: str) -> None:
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite" and parsed.database not in (None, "", ":memory:"):
        Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    # WAL lets the web requests read while the worker writes; busy_timeout makes a writer
    # wait for the lock instead of failing at once; foreign keys are off by default in SQLite.
    # isolation_level=None hands transaction control to SQLAlchemy's BEGIN below.
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA busy_timeout=10000")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()


def _sqlite_begin(conn: Any) -> None:
    # BEGIN IMMEDIATE takes the write lock up front, so two writers never deadlock on upgrade.
    conn.exec_driver_sql("BEGIN IMMEDIATE")


def make_engine(database_url: str, **kwargs: Any) -> Engine:
    url = normalise_database_url(database_url)
    if url.startswith("sqlite"):
        ensure_sqlite_folder(url)
        engine = create_engine(url, connect_args={"check_same_thread": False}, **kwargs)
        event.listen(engine, "connect", _sqlite_pragmas)
        event.listen(engine, "begin", _sqlite_begin)
        return engine
    if "poolclass" not in kwargs:
        kwargs.setdefault("pool_size", 10)
        kwargs.setdefault("max_overflow", 20)
        kwargs.setdefault("pool_pre_ping", True)
    connect_args = kwargs.pop("connect_args", {})
    connect_args.setdefault("connect_timeout", 5)
    return create_engine(url, connect_args=connect_args, **kwargs)


# Connections older than this are replaced when next checked out: a stale connection (a
# restarted server, a dropped NAT entry) is retired without a ping on every checkout.
POOL_RECYCLE_SECONDS = 600


def make_async_engine(
    database_url: str, *, pool_size: int, application_name: str = "ticketmate"
) -> AsyncEngine:
    """The engine of the hot paths (intake writer, delivery worker): no thread per statement.

    PostgreSQL goes through psycopg 3's own asyncio API. SQLite has no network protocol to
    wait on, so aiosqlite runs each connection's statements on that connection's own thread;
    one writer at a time is SQLite's rule anyway, and batching is what makes it fast.
    """
    url = normalise_database_url(database_url)
    if url.startswith("sqlite"):
        ensure_sqlite_folder(url)
        url = "sqlite+aiosqlite" + url.removeprefix("sqlite")
        engine = create_async_engine(url, pool_size=pool_size, max_overflow=0)
        event.listen(engine.sync_engine, "connect", _sqlite_pragmas)
        event.listen(engine.sync_engine, "begin", _sqlite_begin)
        return engine
    return create_async_engine(
        url,
        pool_size=pool_size,
        max_overflow=0,  # a fixed pool: no connection opened and closed under load
        pool_pre_ping=False,
        pool_recycle=POOL_RECYCLE_SECONDS,
        # Named, so that pg_stat_activity tells the intake's and the worker's connections apart.
        connect_args={"connect_timeout": 5, "application_name": application_name},
    )


class Database:
    """The engine and the session factory of one configured database."""

    def __init__(self, settings: Settings, **engine_kwargs: Any) -> None:
        self.settings = settings
        self.engine = make_engine(settings.database_url, **engine_kwargs)
        self.session_factory = sessionmaker(self.engine, expire_on_commit=False)

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    @contextmanager
    def transaction(self) -> Iterator[Session]:
        """One unit of work: commits when the block ends, rolls back when it raises."""
        with self.session_factory() as session, session.begin():
            yield session

    def dispose(self) -> None:
        self.engine.dispose()


class AsyncDatabase:
    """The asynchronous engine of one event loop (asyncio connections belong to the loop that
    made them): made by whoever runs the loop — the app's lifespan, the worker's run()."""

    def __init__(
        self,
        settings: Settings,
        *,
        pool_size: int | None = None,
        application_name: str = "ticketmate",
    ) -> None:
        self.settings = settings
        self.engine = make_async_engine(
            settings.database_url,
            pool_size=pool_size or settings.database_pool_size,
            application_name=application_name,
        )

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[AsyncConnection]:
        """One unit of work on a Core connection: commits when the block ends, rolls back
        when it raises."""
        async with self.engine.begin() as connection:
            yield connection

    async def dispose(self) -> None:
        await self.engine.dispose()
