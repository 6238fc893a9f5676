"""Going back a revision keeps the data of every other table (SQLite copies tables in batch
mode, and with foreign keys on, dropping the copied table deletes every row that refers to it)."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.script import ScriptDirectory
from sqlalchemy import func, select, text

from tests.conftest import make_settings
from tests.support.factories import MadeWorkspace, make_workspace
from tests.support.teams import event, make_subscription, make_webhook, store_and_route
from ticketmate.db import Database, make_engine
from ticketmate.migrate import alembic_config, upgrade
from ticketmate.models import TeamsSubscription, TeamsWebhook
from ticketmate.security.crypto import Keyring
from ticketmate.state import Services


def _upgraded_with_a_subscription(url: str, tmp_path: Path) -> tuple[Services, MadeWorkspace]:
    """A database at head with a workspace, one webhook and one issue_created subscription."""
    upgrade(url)
    settings = make_settings(url, tmp_path)
    svc = Services(
        settings=settings, db=Database(settings), keyring=Keyring(settings.configured_keys)
    )
    made = make_workspace(svc, "acme")
    webhook_id = make_webhook(svc, made.id, "#eng", "http://127.0.0.1:9/workflows/a")
    make_subscription(svc, made.id, webhook_id, "issue_created")
    return svc, made


def test_downgrade_to_0004_on_sqlite_keeps_workspaces_webhooks_and_subscriptions(
    tmp_path: Path,
) -> None:
    url = f"sqlite:///{tmp_path / 'back.db'}"
    svc, _made = _upgraded_with_a_subscription(url, tmp_path)
    with svc.db.transaction() as session:
        before = (
            session.scalar(select(func.count()).select_from(TeamsWebhook)),
            session.scalar(select(func.count()).select_from(TeamsSubscription)),
        )
    svc.db.dispose()
    assert before == (1, 1)

    command.downgrade(alembic_config(url), "0004")

    engine = make_engine(url)
    with engine.connect() as connection:
        counts = tuple(
            connection.execute(text(f"SELECT count(*) FROM {table}")).scalar_one()
            for table in ("workspaces", "teams_webhooks", "teams_subscriptions")
        )
        columns = [row[1] for row in connection.execute(text("PRAGMA table_info(workspaces)"))]
    engine.dispose()
    assert counts == (1, 1, 1)
    assert "jira_base_url" not in columns


def test_every_downgrade_to_0003_on_sqlite_keeps_events_and_deliveries(tmp_path: Path) -> None:
    """One revision at a time, from the head down to the revision that made the delivery log:
    no step may lose a row of a table that exists on both sides of it."""
    url = f"sqlite:///{tmp_path / 'steps.db'}"
    svc, made = _upgraded_with_a_subscription(url, tmp_path)
    for key in ("DEMO-1", "DEMO-2"):
        store_and_route(svc, made.id, event(["issue_created"], key=key))
    svc.db.dispose()
    tables = (
        "workspaces",
        "teams_webhooks",
        "teams_subscriptions",
        "jira_events",
        "integration_delivery_log",
    )
    config = alembic_config(url)
    script = ScriptDirectory.from_config(config)
    steps = [rev.down_revision for rev in script.walk_revisions("0004", "head")]
    assert steps[-1] == "0003"
    for target in steps:
        assert isinstance(target, str)
        command.downgrade(config, target)
        engine = make_engine(url)
        with engine.connect() as connection:
            counts = tuple(
                connection.execute(text(f"SELECT count(*) FROM {table}")).scalar_one()
                for table in tables
            )
        engine.dispose()
        assert counts == (1, 1, 1, 2, 2), f"after the downgrade to {target}"
