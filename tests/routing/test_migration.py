"""Migration 0006: stored explanations go, matched ids and counts stay; and back again."""

from __future__ import annotations

import os
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from alembic import command
from sqlalchemy import MetaData, select, text

from tests.support.databases import POSTGRES_ENV, postgres_database
from ticketmate.db import make_engine
from ticketmate.migrate import alembic_config, upgrade

NOW = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)


@pytest.fixture(params=["sqlite", "postgresql"])
def database_at_0005(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "postgresql":
        if not os.environ.get(POSTGRES_ENV):
            pytest.skip(f"set {POSTGRES_ENV} to run the PostgreSQL half")
        with postgres_database() as url:
            command.downgrade(alembic_config(url), "0005")
            yield url
    else:
        url = f"sqlite:///{tmp_path / 'old.db'}"
        upgrade(url, "0005")
        yield url


def _old_routing(matched: list[str], not_matched: int) -> dict[str, Any]:
    def entry(subscription_id: str) -> dict[str, str]:
        return {
            "subscription_id": subscription_id,
            "webhook_id": "w1",
            "channel_name": "#eng",
            "event_type": "issue_created",
        }

    return {
        "deliveries": 1 if matched else 0,
        "matched": [entry(i) for i in matched],
        "not_matched": [
            {**entry(f"other{n:04d}"), "reason": "project DEMO not in [OPS]"}
            for n in range(not_matched)
        ],
    }


def test_stored_routing_becomes_ids_and_counts_and_back(database_at_0005: str) -> None:
    engine = make_engine(database_at_0005)
    tables = MetaData()
    tables.reflect(engine)
    workspaces, webhooks, subscriptions, events, log = (
        tables.tables[name]
        for name in (
            "workspaces",
            "teams_webhooks",
            "teams_subscriptions",
            "jira_events",
            "integration_delivery_log",
        )
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
                **common,
            )
        )
        connection.execute(
            webhooks.insert().values(
                id="w1",
                workspace_id="ws1",
                channel_name="#eng",
                url_ciphertext=b"x",
                url_digest="d",
                url_masked="https://…/abcd",
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
        for event_id, routing in (
            ("e1", _old_routing(["s1", "s-deleted"], 100)),  # ~15 KB of explanations
            ("e2", _old_routing([], 3)),
            ("e3", None),  # ignored: never routed
        ):
            connection.execute(
                events.insert().values(
                    id=event_id,
                    workspace_id="ws1",
                    received_at=NOW,
                    status="routed" if routing else "ignored",
                    event_types=["issue_created"],
                    raw_body="{}",
                    headers={},
                    routing=routing,
                    **common,
                )
            )
        connection.execute(
            log.insert().values(
                id="d1",
                workspace_id="ws1",
                event_id="e1",
                webhook_id="w1",
                channel_name="#eng",
                subscription_ids=["s1"],
                event_type="issue_created",
                message="{}",
                status="delivered",
                attempt_count=1,
                attempts_before_replay=0,
                next_attempt_at=NOW,
                **common,
            )
        )
    engine.dispose()

    upgrade(database_at_0005, "0006")
    # Nothing that refers to the changed tables is lost on the way (SQLite's table copies
    # would cascade-delete it).
    assert _counts(database_at_0005) == (1, 1, 1, 3, 1)
    engine = make_engine(database_at_0005)
    tables = MetaData()
    tables.reflect(engine)
    events = tables.tables["jira_events"]
    assert "routing" not in events.c
    with engine.connect() as connection:
        rows = {
            row.id: row
            for row in connection.execute(
                select(
                    events.c.id,
                    events.c.matched_subscription_ids,
                    events.c.matched_count,
                    events.c.not_matched_count,
                )
            )
        }
        generation = connection.scalar(select(tables.tables["workspaces"].c.config_generation))
    assert rows["e1"].matched_subscription_ids == ["s1", "s-deleted"]
    assert (rows["e1"].matched_count, rows["e1"].not_matched_count) == (2, 100)
    assert rows["e2"].matched_subscription_ids == []
    assert (rows["e2"].matched_count, rows["e2"].not_matched_count) == (0, 3)
    assert rows["e3"].matched_subscription_ids is None
    assert rows["e3"].not_matched_count is None
    assert generation == 0
    engine.dispose()

    command.downgrade(alembic_config(database_at_0005), "0005")
    assert _counts(database_at_0005) == (1, 1, 1, 3, 1)
    engine = make_engine(database_at_0005)
    tables = MetaData()
    tables.reflect(engine)
    events = tables.tables["jira_events"]
    assert "matched_subscription_ids" not in events.c
    assert "config_generation" not in tables.tables["workspaces"].c
    with engine.connect() as connection:
        routing = dict(connection.execute(select(events.c.id, events.c.routing)).all())
    assert routing["e1"] == {
        "deliveries": 1,
        "matched": [
            {
                "subscription_id": "s1",
                "webhook_id": "w1",
                "channel_name": "#eng",
                "event_type": "issue_created",
            },
            {
                "subscription_id": "s-deleted",
                "webhook_id": None,
                "channel_name": "",
                "event_type": "",
            },
        ],
        "not_matched": [],
    }
    assert routing["e2"] == {"deliveries": 0, "matched": [], "not_matched": []}
    assert routing["e3"] is None
    engine.dispose()


def _counts(url: str) -> tuple[int, ...]:
    engine = make_engine(url)
    try:
        with engine.connect() as connection:
            return tuple(
                int(connection.scalar(text(f"SELECT count(*) FROM {name}")) or 0)
                for name in (
                    "workspaces",
                    "teams_webhooks",
                    "teams_subscriptions",
                    "jira_events",
                    "integration_delivery_log",
                )
            )
    finally:
        engine.dispose()
