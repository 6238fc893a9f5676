"""The migrations make exactly the schema the models describe, and undo it, on both databases."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from alembic import command
from alembic.runtime.migration import MigrationContext

from tests.support.databases import POSTGRES_ENV, postgres_database
from ticketmate.db import make_engine
from ticketmate.migrate import alembic_config, head_revision, upgrade


@pytest.fixture(params=["sqlite", "postgresql"])
def empty_database(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "postgresql":
        if not os.environ.get(POSTGRES_ENV):
            pytest.skip(f"set {POSTGRES_ENV} to run the PostgreSQL half")
        with postgres_database() as url:  # already at head; start again from nothing
            command.downgrade(alembic_config(url), "base")
            yield url
    else:
        yield f"sqlite:///{tmp_path / 'fresh.db'}"


def test_models_and_migrations_agree_and_downgrade_cleanly(empty_database: str) -> None:
    config = alembic_config(empty_database)
    upgrade(empty_database)
    command.check(config)  # raises when the models describe something no migration made
    command.downgrade(config, "base")
    upgrade(empty_database)
    engine = make_engine(empty_database)
    with engine.connect() as connection:
        assert MigrationContext.configure(connection).get_current_revision() == head_revision()
    engine.dispose()
