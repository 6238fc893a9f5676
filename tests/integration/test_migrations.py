"""The migrations make exactly the schema the models describe, and undo it, on both databases."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from alembic import command
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import inspect

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


def _schema(url: str) -> dict[str, object]:
    """Tables with their columns (name, type, nullable), indexes and foreign keys."""
    engine = make_engine(url)
    try:
        with engine.connect() as connection:
            found = inspect(connection)
            return {
                table: (
                    sorted(
                        (c["name"], str(c["type"]), c["nullable"]) for c in found.get_columns(table)
                    ),
                    sorted(
                        (i["name"] or "", tuple(i["column_names"]), bool(i["unique"]))
                        for i in found.get_indexes(table)
                    ),
                    sorted(
                        (tuple(f["constrained_columns"]), f["referred_table"])
                        for f in found.get_foreign_keys(table)
                    ),
                )
                for table in sorted(found.get_table_names())
                if table != "alembic_version"
            }
    finally:
        engine.dispose()


def test_each_downgrade_undoes_exactly_its_upgrade(empty_database: str) -> None:
    """Up one revision and down again gives back the schema before it, step by step: an empty
    or partial downgrade() (an index or a column left behind) fails here."""
    config = alembic_config(empty_database)
    script = ScriptDirectory.from_config(config)
    revisions = [rev.revision for rev in reversed(list(script.walk_revisions("base", "head")))]
    assert (revisions[0], revisions[-1]) == ("0001", head_revision())
    before = _schema(empty_database)
    for revision in revisions:
        command.upgrade(config, revision)
        after = _schema(empty_database)
        assert after != before, f"{revision} changes nothing"
        command.downgrade(config, "-1")
        assert _schema(empty_database) == before, f"the downgrade of {revision}"
        command.upgrade(config, revision)
        before = after
