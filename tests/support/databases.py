"""Test databases: a migrated SQLite file, and a fresh PostgreSQL database per test session."""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from ticketmate.db import normalise_database_url
from ticketmate.migrate import upgrade

POSTGRES_ENV = "TICKETMATE_TEST_DATABASE_URL"


def backends() -> list[str]:
    return ["sqlite", "postgresql"] if os.environ.get(POSTGRES_ENV) else ["sqlite"]


@contextmanager
def sqlite_database(folder: Path) -> Iterator[str]:
    url = f"sqlite:///{folder / 'ticketmate-test.db'}"
    upgrade(url)
    yield url


@contextmanager
def postgres_database() -> Iterator[str]:
    """CREATE DATABASE tm_test_<random> on the server named by the variable; DROP it after."""
    server = make_url(normalise_database_url(os.environ[POSTGRES_ENV]))
    name = f"tm_test_{secrets.token_hex(6)}"
    # pre-ping: a test may restart the server (tests/reliability/test_database_restart.py),
    # which leaves this engine's pooled connection dead by the time of the DROP.
    admin = create_engine(server, isolation_level="AUTOCOMMIT", pool_pre_ping=True)
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    url = server.set(database=name).render_as_string(hide_password=False)
    try:
        upgrade(url)
        yield url
    finally:
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()
