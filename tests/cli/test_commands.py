"""The CLI as a subprocess: workspace, user and token commands, and one-line errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from tests.support.processes import cli_env, run_cli
from tests.support.web import sign_in


@pytest.fixture
def env(database_url: str, client: TestClient) -> dict[str, str]:
    # `client` empties the tables after the test, as for every database test.
    return cli_env(database_url)


def test_workspace_user_and_token_from_the_command_line(
    env: dict[str, str], tmp_path: Path, client: TestClient
) -> None:
    made = run_cli(["workspace", "create", "acme", "--name", "Acme Corp", "--json"], env, tmp_path)
    assert made.returncode == 0, made.stderr
    body = json.loads(made.stdout)  # stdout holds the JSON object and nothing else
    assert body["slug"] == "acme"
    assert body["name"] == "Acme Corp"
    assert body["jira_webhook_url"] == "http://tm.test/api/webhooks/jira?workspace=acme"
    assert len(body["jira_secret"]) >= 32
    assert body["jira_ingest_token"].startswith("tmi_")

    user = run_cli(
        [
            "user",
            "create",
            "Ada@Example.com",
            "--workspace",
            "acme",
            "--role",
            "admin",
            "--password-stdin",
        ],
        env,
        tmp_path,
        stdin="a long password\n",
    )
    assert user.returncode == 0, user.stderr
    assert "password" not in user.stdout.lower()

    token = run_cli(["token", "create", "ada@example.com"], env, tmp_path)
    assert token.returncode == 0, token.stderr
    secret = token.stdout.strip().splitlines()[-1]
    assert secret.startswith("tm_")

    headers = {"Authorization": f"Bearer {secret}"}
    assert client.get("/api/v1/workspaces/acme", headers=headers).json()["name"] == "Acme Corp"
    sign_in(client, "ada@example.com", "a long password")


def test_user_without_password_gets_a_random_one_once(
    env: dict[str, str], tmp_path: Path, client: TestClient
) -> None:
    assert run_cli(["workspace", "create", "acme"], env, tmp_path).returncode == 0
    first = run_cli(
        ["user", "create", "bo@example.com", "--workspace", "acme", "--role", "member"],
        env,
        tmp_path,
    )
    assert first.returncode == 0, first.stderr
    password = first.stdout.split("password (shown once): ")[1].strip()
    sign_in(client, "bo@example.com", password)
    # Running it again changes the role and prints no password.
    again = run_cli(
        ["user", "create", "bo@example.com", "--workspace", "acme", "--role", "admin"],
        env,
        tmp_path,
    )
    assert again.returncode == 0
    assert "password" not in again.stdout
    assert "updated bo@example.com as admin of acme" in again.stdout


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["workspace", "create", "Not A Slug!"], "error: A workspace slug is"),
        (
            ["user", "create", "x@example.com", "--workspace", "nope", "--role", "admin"],
            "error: there is no workspace 'nope'",
        ),
        (["token", "create", "ghost@example.com"], "error: there is no user 'ghost@example.com'"),
    ],
)
def test_errors_are_one_line_and_exit_non_zero(
    env: dict[str, str], tmp_path: Path, args: list[str], message: str
) -> None:
    result = run_cli(args, env, tmp_path)
    assert result.returncode == 1
    assert result.stderr.startswith(message)
    assert result.stderr.count("\n") == 1
    assert "Traceback" not in result.stderr


def test_bad_role_and_duplicate_workspace(env: dict[str, str], tmp_path: Path) -> None:
    assert run_cli(["workspace", "create", "acme"], env, tmp_path).returncode == 0
    duplicate = run_cli(["workspace", "create", "acme"], env, tmp_path)
    assert duplicate.returncode == 1
    assert "already exists" in duplicate.stderr
    role = run_cli(
        ["user", "create", "x@example.com", "--workspace", "acme", "--role", "owner"], env, tmp_path
    )
    assert role.returncode == 1
    assert "The role must be one of: admin, member." in role.stderr


def test_bad_setting_is_one_line_naming_the_variable(tmp_path: Path, database_url: str) -> None:
    env = cli_env(database_url, TICKETMATE_WORKER_POLL_SECONDS="0")
    result = run_cli(["db", "upgrade"], env, tmp_path)
    assert result.returncode == 1
    assert result.stderr == "error: TICKETMATE_WORKER_POLL_SECONDS: must be a positive number\n"


def test_unreachable_database_is_one_line(tmp_path: Path) -> None:
    env = cli_env("postgresql://nobody@127.0.0.1:1/none")
    result = run_cli(["workspace", "create", "acme"], env, tmp_path)
    assert result.returncode == 1
    assert result.stderr.startswith("error: the database cannot be used:")
    assert "Traceback" not in result.stderr


def test_every_command_has_help(tmp_path: Path) -> None:
    env = cli_env("sqlite:///unused.db")
    for args in (
        [],
        ["serve"],
        ["db"],
        ["db", "upgrade"],
        ["workspace", "create"],
        ["user", "create"],
        ["token", "create"],
    ):
        result = run_cli([*args, "--help"], env, tmp_path)
        assert result.returncode == 0, (args, result.stderr)
        assert "Usage:" in result.stdout
