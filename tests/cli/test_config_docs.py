"""`ticketmate config docs|env-example` as a real process: what it prints, writes and checks."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from tests.support.processes import cli_env, run_cli
from ticketmate.config_docs import render_env_example, render_markdown

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    # Settings that could not start the service: the reference comes from the class alone, so
    # neither the environment nor a database plays any part.
    return cli_env(
        f"sqlite:///{tmp_path}/absent/none.db",
        TICKETMATE_WORKER_POLL_SECONDS="0",
        TICKETMATE_LOG_LEVEL="LOUD",
    )


@pytest.mark.parametrize(
    ("command", "render"),
    [("docs", render_markdown), ("env-example", render_env_example)],
)
def test_prints_what_the_generator_produces(
    env: dict[str, str], tmp_path: Path, command: str, render: Callable[[], str]
) -> None:
    printed = run_cli(["config", command], env, tmp_path)
    assert printed.returncode == 0, printed.stderr
    assert printed.stdout == render()
    assert printed.stderr == ""


@pytest.mark.parametrize(
    ("command", "checked_in"), [("docs", "docs/configuration.md"), ("env-example", ".env.example")]
)
def test_check_passes_on_the_checked_in_files(
    env: dict[str, str], tmp_path: Path, command: str, checked_in: str
) -> None:
    checked = run_cli(["config", command, "--check"], env, tmp_path)
    assert checked.returncode == 0, checked.stderr
    assert checked.stderr.strip() == f"{checked_in} is up to date"
    assert checked.stdout == ""


def test_output_writes_the_file_and_check_catches_a_stale_one(
    env: dict[str, str], tmp_path: Path
) -> None:
    target = tmp_path / "out" / "configuration.md"
    written = run_cli(["config", "docs", "--output", str(target)], env, tmp_path)
    assert written.returncode == 0, written.stderr
    assert target.read_text(encoding="utf-8") == render_markdown()

    assert (
        run_cli(["config", "docs", "--check", "--output", str(target)], env, tmp_path).returncode
        == 0
    )
    target.write_text(render_markdown().replace("`900`", "`600`"), encoding="utf-8")
    stale = run_cli(["config", "docs", "--check", "--output", str(target)], env, tmp_path)
    assert stale.returncode == 1
    assert stale.stderr == (
        f"error: {target} differs from the Settings class; "
        "run `make config-docs` to regenerate it\n"
    )
    missing = run_cli(
        ["config", "env-example", "--check", "--output", str(tmp_path / "none")], env, tmp_path
    )
    assert missing.returncode == 1
    assert "is missing; run `make config-docs`" in missing.stderr


def test_write_goes_alone(env: dict[str, str], tmp_path: Path) -> None:
    both = run_cli(["config", "docs", "--write", "--check"], env, tmp_path)
    assert both.returncode == 1
    assert both.stderr.startswith("error: give --write alone")
    assert (ROOT / "docs" / "configuration.md").read_text(encoding="utf-8") == render_markdown()
