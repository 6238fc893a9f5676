"""`ticketmate teams webhook add|list` say when a webhook's URL is retired or retiring."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.security import webhook_urls as U
from tests.support.processes import cli_env, run_cli
from tests.teams.helpers import People


@pytest.fixture
def env(database_url: str) -> dict[str, str]:
    return cli_env(database_url)


def as_admin(*args: str) -> list[str]:
    return [*args, "--workspace", "acme", "--as", "admin@acme.test"]


def add(env: dict[str, str], folder: Path, name: str, url: str, *extra: str) -> str:
    done = run_cli(
        as_admin("teams", "webhook", "add", "--channel-name", name, "--url-stdin", *extra),
        env,
        folder,
        stdin=url + "\n",
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_add_and_list_warn_about_retired_and_retiring_urls(
    people: People, env: dict[str, str], tmp_path: Path
) -> None:
    retired = add(env, tmp_path, "#retired", U.LOGIC_APPS)
    assert "warning: Microsoft stopped honouring Workflows URLs on logic.azure.com" in retired
    current = add(env, tmp_path, "#current", U.POWER_PLATFORM)
    assert "warning" not in current
    made = json.loads(add(env, tmp_path, "#connector", U.CONNECTOR, "--json"))
    assert made["url_family"] == "connector"
    assert "Office 365 connectors" in made["url_warning"]

    listed = run_cli(as_admin("teams", "webhook", "list"), env, tmp_path)
    assert listed.returncode == 0, listed.stderr
    lines = listed.stdout.splitlines()
    warnings = [line for line in lines if line.startswith("    warning: ")]
    assert len(warnings) == 2
    assert all(w.endswith("replace the URL here.") for w in warnings)
    # Each warning follows its own webhook's line.
    retired_line = next(i for i, line in enumerate(lines) if "#retired" in line)
    assert "30 November 2025" in lines[retired_line + 1]
    assert U.LOGIC_APPS not in listed.stdout
