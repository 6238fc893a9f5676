"""The encryption key shown in .env.example is a placeholder, never a key: Settings refuses it
(and the working example key published before it), and so do the commands, in one line."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from tests.conftest import TEST_KEY_LINE
from tests.support.processes import cli_env, run_cli
from ticketmate.config import (
    ENCRYPTION_KEYS_PLACEHOLDER,
    ConfigError,
    Settings,
    load_settings,
    parse_key_list,
)

ROOT = Path(__file__).resolve().parents[2]
# The example of TICKETMATE_ENCRYPTION_KEYS that .env.example held first: a working key.
PUBLISHED = "replace-me:REPLACE+ME+run+ticketmate+keys+generate+xxx="
HOW_TO_MAKE_ONE = "run `ticketmate keys generate` and put the line it prints here instead"


def env_example_line() -> str:
    """The TICKETMATE_ENCRYPTION_KEYS line of .env.example, uncommented."""
    text = (ROOT / ".env.example").read_text(encoding="utf-8")
    (line,) = [
        line.removeprefix("# ")
        for line in text.splitlines()
        if line.startswith("# TICKETMATE_ENCRYPTION_KEYS=")
    ]
    return line


def test_the_env_example_shows_the_placeholder_and_it_is_not_a_key() -> None:
    assert env_example_line() == f"TICKETMATE_ENCRYPTION_KEYS={ENCRYPTION_KEYS_PLACEHOLDER}"
    with pytest.raises(ValueError, match=r"not valid base64|must decode to 32 bytes"):
        parse_key_list(ENCRYPTION_KEYS_PLACEHOLDER)


@pytest.mark.parametrize(
    "keys",
    [
        ENCRYPTION_KEYS_PLACEHOLDER,
        f" {ENCRYPTION_KEYS_PLACEHOLDER} ",
        f"{TEST_KEY_LINE},{ENCRYPTION_KEYS_PLACEHOLDER}",
    ],
)
def test_settings_refuse_the_placeholder(keys: str) -> None:
    with pytest.raises(ValueError, match=re.escape("the placeholder of .env.example, not a key")):
        Settings(_env_file=None, encryption_keys=keys)  # type: ignore[call-arg]
    with pytest.raises(ConfigError) as refused:
        load_settings(_env_file=None, encryption_keys=keys)
    assert str(refused.value) == (
        "TICKETMATE_ENCRYPTION_KEYS: holds the placeholder of .env.example, not a key; "
        + HOW_TO_MAKE_ONE
    )


@pytest.mark.parametrize("keys", [PUBLISHED, "mine:" + PUBLISHED.split(":")[1]])
def test_settings_refuse_the_published_example_key_as_the_first_key(keys: str) -> None:
    with pytest.raises(ConfigError) as refused:
        load_settings(_env_file=None, encryption_keys=f"{keys},{TEST_KEY_LINE}")
    message = str(refused.value)
    assert message.startswith(
        "TICKETMATE_ENCRYPTION_KEYS: the first key is the example key once published in "
        ".env.example, which anyone can read; " + HOW_TO_MAKE_ONE
    )
    assert "`ticketmate keys rotate`" in message
    # After a real key it only decrypts, so that what it encrypted can be moved off it.
    settings = load_settings(_env_file=None, encryption_keys=f"{TEST_KEY_LINE},{keys}")
    assert [kid for kid, _ in settings.configured_keys] == ["test1", keys.split(":")[0]]


@pytest.mark.parametrize("command", [["serve", "--port", "9"], ["db", "upgrade"]])
@pytest.mark.parametrize("log_format", ["text", "json"])
def test_commands_refuse_the_placeholder_copied_from_the_env_example(
    tmp_path: Path, command: list[str], log_format: str
) -> None:
    # As an operator would: .env.example copied to .env with the key line uncommented.
    (tmp_path / ".env").write_text(
        f"{env_example_line()}\nTICKETMATE_LOG_FORMAT={log_format}\n", encoding="utf-8"
    )
    env = cli_env(f"sqlite:///{tmp_path / 'never.db'}")
    del env["TICKETMATE_ENCRYPTION_KEYS"]
    refused = run_cli(command, env, tmp_path)
    assert refused.returncode == 1
    assert refused.stdout == ""
    assert refused.stderr.count("\n") == 1, refused.stderr
    assert "Traceback" not in refused.stderr
    message = (
        "TICKETMATE_ENCRYPTION_KEYS: holds the placeholder of .env.example, not a key; "
        + HOW_TO_MAKE_ONE
    )
    if log_format == "text":
        assert refused.stderr == f"error: {message}\n"
    else:
        line = json.loads(refused.stderr)
        assert (line["level"], line["logger"], line["msg"]) == ("ERROR", "ticketmate.cli", message)
    assert not (tmp_path / "never.db").exists()
