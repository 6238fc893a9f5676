"""`ticketmate teams subscription add|update|list` with security levels, as a real subprocess."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from tests.support.factories import make_user, make_workspace
from tests.support.processes import cli_env, run_cli
from tests.support.teams import make_webhook
from ticketmate.models import AuditEntry, TeamsSubscription
from ticketmate.state import Services

HOOK_URL = "http://127.0.0.1:9/workflows/eng"


@pytest.fixture
def env(database_url: str, client: TestClient, svc: Services) -> dict[str, str]:
    # `client` empties the tables after the test, as for every database test.
    workspace = make_workspace(svc, "acme", "Acme Corp")
    make_user(svc, "admin@acme.test", {"acme": "admin"})
    make_webhook(svc, workspace.id, "#eng", HOOK_URL)
    return cli_env(database_url)


def teams(env: dict[str, str], tmp_path: Path, *args: str) -> Any:
    return run_cli(
        ["teams", "subscription", *args, "--workspace", "acme", "--as", "admin@acme.test"],
        env,
        tmp_path,
    )


def stored_levels(svc: Services, subscription_id: str) -> list[str] | None:
    with svc.db.transaction() as session:
        row = session.get(TeamsSubscription, subscription_id)
        assert row is not None
        levels = row.filters.get("security_levels")
        return None if levels is None else list(levels)


def test_add_with_named_levels_and_list_shows_them(
    env: dict[str, str], tmp_path: Path, svc: Services
) -> None:
    added = teams(
        env, tmp_path, "add", "--event-type", "issue_created", "--webhook", "#eng",
        "--security-level", "Staff only", "--security-level", "Developers", "--json",
    )  # fmt: skip
    assert added.returncode == 0, added.stderr
    view = json.loads(added.stdout)
    assert view["filters"]["security_levels"] == ["Staff only", "Developers"]
    assert stored_levels(svc, view["id"]) == ["Staff only", "Developers"]
    # The warning goes to stderr, so that --json's stdout stays one JSON object.
    assert "#eng's members will see the summaries of issues with security levels" in added.stderr

    plain = teams(env, tmp_path, "add", "--event-type", "comment_created", "--webhook", "#eng")
    assert plain.returncode == 0, plain.stderr
    assert plain.stderr == ""

    listed = teams(env, tmp_path, "list")
    assert listed.returncode == 0, listed.stderr
    lines = {line.split()[0]: line for line in listed.stdout.splitlines()}
    assert lines[view["id"]].endswith("filters: any  security levels: Staff only,Developers")
    [other] = [line for key, line in lines.items() if key != view["id"]]
    assert other.endswith("security levels: none")
    as_json = json.loads(teams(env, tmp_path, "list", "--json").stdout)
    assert sorted(str(v["filters"]["security_levels"]) for v in as_json) == [
        "['Staff only', 'Developers']",
        "[]",
    ]


def test_add_with_any_level(env: dict[str, str], tmp_path: Path, svc: Services) -> None:
    added = teams(
        env, tmp_path, "add", "--event-type", "issue_created", "--webhook", "#eng",
        "--any-security-level", "--json",
    )  # fmt: skip
    assert added.returncode == 0, added.stderr
    view = json.loads(added.stdout)
    assert view["filters"]["security_levels"] == "any"
    assert stored_levels(svc, view["id"]) == ["*"]
    assert "any security level" in added.stderr
    assert "security levels: any" in teams(env, tmp_path, "list").stdout


def test_refusals_are_one_line(env: dict[str, str], tmp_path: Path, svc: Services) -> None:
    both = teams(
        env, tmp_path, "add", "--event-type", "issue_created", "--webhook", "#eng",
        "--security-level", "Staff only", "--any-security-level",
    )  # fmt: skip
    assert both.returncode != 0
    assert both.stderr.strip() == ("error: give --security-level or --any-security-level, not both")
    star = teams(
        env, tmp_path, "add", "--event-type", "issue_created", "--webhook", "#eng",
        "--security-level", "*",
    )  # fmt: skip
    assert star.returncode != 0
    assert "is not a level name" in star.stderr
    assert len(star.stderr.strip().splitlines()) == 1
    with svc.db.transaction() as session:
        assert session.scalars(select(TeamsSubscription)).all() == []


def test_update_changes_only_the_levels_and_is_audited(
    env: dict[str, str], tmp_path: Path, svc: Services
) -> None:
    added = teams(
        env, tmp_path, "add", "--event-type", "issue_created", "--webhook", "#eng",
        "--project", "NOVA", "--json",
    )  # fmt: skip
    sub = json.loads(added.stdout)["id"]
    assert stored_levels(svc, sub) is None

    named = teams(env, tmp_path, "update", sub, "--security-level", "Staff only")
    assert named.returncode == 0, named.stderr
    assert "filters: projects=NOVA  security levels: Staff only" in named.stdout
    assert stored_levels(svc, sub) == ["Staff only"]
    assert teams(env, tmp_path, "update", sub, "--any-security-level").returncode == 0
    assert stored_levels(svc, sub) == ["*"]
    none = teams(env, tmp_path, "update", sub, "--no-security-level", "--json")
    assert none.returncode == 0, none.stderr
    after = json.loads(none.stdout)
    assert after["filters"]["security_levels"] == []
    assert after["filters"]["projects"] == ["NOVA"]
    assert none.stderr == ""

    nothing = teams(env, tmp_path, "update", sub)
    assert nothing.returncode != 0
    assert nothing.stderr.startswith("error: give one of --security-level")

    with svc.db.transaction() as session:
        details = session.scalars(
            select(AuditEntry.details)
            .where(AuditEntry.action == "teams.subscription.updated")
            .order_by(AuditEntry.seq)
        ).all()
        agents = set(
            session.scalars(
                select(AuditEntry.user_agent).where(
                    AuditEntry.action == "teams.subscription.updated"
                )
            )
        )
    assert [d["security_levels"] for d in details] == [
        {"from": [], "to": ["Staff only"]},
        {"from": ["Staff only"], "to": "any"},
        {"from": "any", "to": []},
    ]
    assert agents == {"ticketmate-cli"}
