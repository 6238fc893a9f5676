"""Migration 0007: each webhook's URL family, filled from the masked URL; and back again."""

from __future__ import annotations

import os
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from alembic import command
from sqlalchemy import MetaData, inspect, select, text

from tests.security import webhook_urls as U
from tests.support.databases import POSTGRES_ENV, postgres_database
from ticketmate.db import make_engine
from ticketmate.migrate import alembic_config, upgrade
from ticketmate.security.masking import mask_url

NOW = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)

# (webhook id, url_masked as stored before 0007, the family 0007 must give it)
STORED = [
    ("w1", mask_url(U.LOGIC_APPS), "logic_apps"),
    ("w2", mask_url(U.POWER_PLATFORM_CU), "power_platform"),
    ("w3", mask_url(U.CONNECTOR_V2), "connector"),
    ("w4", mask_url(U.OUTLOOK_CONNECTOR), "connector"),
    ("w5", mask_url("http://127.0.0.1:8765/workflows/eng"), "loopback"),
    ("w6", mask_url("http://[::1]:8765/webhookb2/eng"), "loopback"),
    ("w7", "https://…/abcd", "unknown"),  # a host the mask could not read
    ("w8", "https://prod-27.westeurope.logic.azure.com.evil.example/…abcd", "unknown"),
]


@pytest.fixture(params=["sqlite", "postgresql"])
def database_at_0006(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "postgresql":
        if not os.environ.get(POSTGRES_ENV):
            pytest.skip(f"set {POSTGRES_ENV} to run the PostgreSQL half")
        with postgres_database() as url:
            command.downgrade(alembic_config(url), "0006")
            yield url
    else:
        url = f"sqlite:///{tmp_path / 'old.db'}"
        upgrade(url, "0006")
        yield url


def _columns(url: str) -> list[str]:
    engine = make_engine(url)
    try:
        return [c["name"] for c in inspect(engine).get_columns("teams_webhooks")]
    finally:
        engine.dispose()


def test_url_family_is_filled_from_the_masked_url_and_dropped_on_downgrade(
    database_at_0006: str,
) -> None:
    url = database_at_0006
    engine = make_engine(url)
    tables = MetaData()
    tables.reflect(engine)
    workspaces, webhooks, subscriptions = (
        tables.tables[name] for name in ("workspaces", "teams_webhooks", "teams_subscriptions")
    )
    common = {"created_at": NOW, "updated_at": NOW}
    with engine.begin() as connection:
        connection.execute(
            workspaces.insert().values(
                id="ws1",
                slug="acme",
                name="Acme",
                jira_secret_ciphertext=b"x",
                jira_ingest_token_ciphertext=b"x",
                config_generation=0,
                **common,
            )
        )
        for webhook_id, masked, _family in STORED:
            connection.execute(
                webhooks.insert().values(
                    id=webhook_id,
                    workspace_id="ws1",
                    channel_name=f"#{webhook_id}",
                    url_ciphertext=b"x",
                    url_digest=webhook_id,
                    url_masked=masked,
                    url_kind="workflows",
                    enabled=True,
                    consecutive_failures=0,
                    consecutive_removed=0,
                    recent_sends=[],
                    **common,
                )
            )
        connection.execute(
            subscriptions.insert().values(
                id="s1",
                workspace_id="ws1",
                webhook_id="w1",
                event_type="issue_created",
                enabled=True,
                filters={},
                **common,
            )
        )
    engine.dispose()
    assert "url_family" not in _columns(url)

    command.upgrade(alembic_config(url), "0007")

    engine = make_engine(url)
    tables = MetaData()
    tables.reflect(engine)
    webhooks = tables.tables["teams_webhooks"]
    with engine.connect() as connection:
        found = dict(connection.execute(select(webhooks.c.id, webhooks.c.url_family)).all())
    engine.dispose()
    assert found == {webhook_id: family for webhook_id, _masked, family in STORED}

    command.downgrade(alembic_config(url), "0006")

    assert "url_family" not in _columns(url)
    engine = make_engine(url)
    with engine.connect() as connection:
        counts = tuple(
            connection.execute(text(f"SELECT count(*) FROM {table}")).scalar_one()
            for table in ("workspaces", "teams_webhooks", "teams_subscriptions")
        )
    engine.dispose()
    # Dropped in place: no row of any table goes with the column (SQLite's batch mode would
    # copy the table, and the copy's DROP would cascade to the subscriptions).
    assert counts == (1, len(STORED), 1)
