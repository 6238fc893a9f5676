"""`ticketmate teams ...` run as a person or a script would: a real subprocess."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from sqlalchemy import select

from tests.security import webhook_urls as U
from tests.support.processes import cli_env, run_cli
from tests.teams.helpers import People
from ticketmate.models import AuditEntry, TeamsWebhook
from ticketmate.state import Services
from ticketmate.teams.webhooks import decrypt_webhook_url


@pytest.fixture
def env(database_url: str) -> dict[str, str]:
    return cli_env(database_url)


def as_admin(*args: str) -> list[str]:
    return [*args, "--workspace", "acme", "--as", "admin@acme.test"]


def test_webhooks_and_subscriptions_from_the_command_line(
    svc: Services, people: People, env: dict[str, str], tmp_path: Path
) -> None:
    added = run_cli(
        as_admin("teams", "webhook", "add", "--channel-name", "#eng", "--url-stdin", "--json"),
        env,
        tmp_path,
        stdin=U.POWER_PLATFORM_CU + "\n",
    )
    assert added.returncode == 0, added.stderr
    webhook = json.loads(added.stdout)
    assert webhook["url_kind"] == "workflows"
    assert webhook["created_by"] == "admin@acme.test"
    assert U.POWER_PLATFORM_CU not in added.stdout + added.stderr

    with svc.db.transaction() as session:
        row = session.get(TeamsWebhook, webhook["id"])
        assert row is not None
        assert decrypt_webhook_url(svc.keyring, row) == U.POWER_PLATFORM_CU

    listed = run_cli(as_admin("teams", "webhook", "list"), env, tmp_path)
    assert listed.returncode == 0, listed.stderr
    assert "#eng" in listed.stdout
    assert webhook["url_masked"] in listed.stdout
    assert "sig=" not in listed.stdout

    subscribed = run_cli(
        as_admin(
            "teams", "subscription", "add", "--event-type", "status_changed",
            "--webhook", "#eng", "--project", "DEMO", "--status", "Done", "--status", "Closed",
            "--json",
        ),
        env,
        tmp_path,
    )  # fmt: skip
    assert subscribed.returncode == 0, subscribed.stderr
    subscription = json.loads(subscribed.stdout)
    assert subscription["filters"]["statuses"] == ["Done", "Closed"]
    assert subscription["webhook_id"] == webhook["id"]

    subs = run_cli(as_admin("teams", "subscription", "list"), env, tmp_path)
    assert subscription["id"] in subs.stdout
    assert "projects=DEMO" in subs.stdout

    in_use = run_cli(as_admin("teams", "webhook", "remove", webhook["id"]), env, tmp_path)
    assert in_use.returncode == 1
    assert in_use.stderr.startswith("error: The webhook '#eng' is used by 1 subscription(s)")
    assert len(in_use.stderr.strip().splitlines()) == 1

    removed_sub = run_cli(
        as_admin("teams", "subscription", "remove", subscription["id"]), env, tmp_path
    )
    assert removed_sub.returncode == 0, removed_sub.stderr
    removed = run_cli(as_admin("teams", "webhook", "remove", "#ENG"), env, tmp_path)
    assert removed.returncode == 0, removed.stderr

    with svc.db.transaction() as session:
        entries = list(
            session.scalars(
                select(AuditEntry)
                .where(AuditEntry.workspace_id == people.acme.id)
                .order_by(AuditEntry.seq)
            )
        )
    assert [e.action for e in entries] == [
        "teams.webhook.created",
        "teams.subscription.created",
        "teams.subscription.deleted",
        "teams.webhook.deleted",
    ]
    assert {e.actor_email for e in entries} == {"admin@acme.test"}
    assert {e.user_agent for e in entries} == {"ticketmate-cli"}


def test_the_command_line_refuses_what_the_api_refuses(
    people: People, env: dict[str, str], tmp_path: Path
) -> None:
    cases = [
        (
            ["teams", "webhook", "add", "--workspace", "acme", "--as", "member@acme.test",
             "--channel-name", "#x", "--url", U.CONNECTOR],
            "member@acme.test is not an administrator of workspace acme",
        ),
        (
            as_admin("teams", "webhook", "add", "--channel-name", "#x", "--url",
                     U.LOGIC_APPS.replace("&", "&amp;")),
            "&amp;",
        ),
        (
            as_admin("teams", "webhook", "add", "--channel-name", "", "--url", U.CONNECTOR),
            "channel_name: must be 1 to 100 characters",
        ),
        (
            as_admin("teams", "subscription", "add", "--event-type", "nope", "--webhook", "#x"),
            "no such webhook",
        ),
        (
            ["teams", "webhook", "list", "--workspace", "nowhere", "--as", "admin@acme.test"],
            "there is no workspace 'nowhere'",
        ),
    ]  # fmt: skip
    for args, says in cases:
        result = run_cli(args, env, tmp_path)
        assert result.returncode == 1, (args, result.stdout)
        assert result.stderr.startswith("error: "), result.stderr
        assert says in result.stderr, result.stderr
        assert "Traceback" not in result.stderr
