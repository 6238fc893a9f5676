"""docs/configuration.md and .env.example: generated from Settings, checked in, never stale."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated

import pytest
from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from ticketmate.config import ENCRYPTION_KEYS_PLACEHOLDER, Settings, load_settings
from ticketmate.config_docs import (
    DOCS_FILE,
    ENV_EXAMPLE_FILE,
    UndocumentedSettings,
    describe,
    documentation_gaps,
    render_env_example,
    render_markdown,
)

ROOT = Path(__file__).resolve().parents[2]
REGENERATE = (
    "is out of date with the Settings class in src/ticketmate/config.py: run "
    "`make config-docs` (or `ticketmate config docs --write` and "
    "`ticketmate config env-example --write`) and commit the result"
)
EXAMPLE_LINE = re.compile(r"^# (TICKETMATE_[A-Z0-9_]+)=(.*)$")


def variables() -> list[str]:
    return [f"TICKETMATE_{name.upper()}" for name in Settings.model_fields]


def example_lines(text: str) -> dict[str, str]:
    found: dict[str, str] = {}
    for line in text.splitlines():
        match = EXAMPLE_LINE.match(line)
        if match:
            assert match[1] not in found, f"{match[1]} appears twice in .env.example"
            found[match[1]] = match[2]
    return found


def test_every_setting_has_a_description() -> None:
    gaps = documentation_gaps(Settings)
    assert not gaps, "every setting needs documenting:\n" + "\n".join(gaps)


def test_the_checked_in_reference_is_what_the_settings_class_produces() -> None:
    assert (ROOT / DOCS_FILE).read_text(encoding="utf-8") == render_markdown(), (
        f"{DOCS_FILE} {REGENERATE}"
    )


def test_the_checked_in_env_example_is_what_the_settings_class_produces() -> None:
    assert (ROOT / ENV_EXAMPLE_FILE).read_text(encoding="utf-8") == render_env_example(), (
        f"{ENV_EXAMPLE_FILE} {REGENERATE}"
    )


def test_every_setting_appears_in_both_files() -> None:
    markdown = (ROOT / DOCS_FILE).read_text(encoding="utf-8")
    env_example = (ROOT / ENV_EXAMPLE_FILE).read_text(encoding="utf-8")
    for variable in variables():
        assert markdown.count(f"\n### `{variable}`\n") == 1, variable
        assert f"[`{variable}`](#{variable.lower()})" in markdown, variable
    assert list(example_lines(env_example)) == variables()


def test_the_reference_says_where_settings_come_from() -> None:
    intro = " ".join(render_markdown().split("| Variable |")[0].split())
    assert "`TICKETMATE_`" in intro
    assert "`.env` file in the working directory" in intro  # Settings reads env_file=".env"
    assert "an environment variable wins" in intro


def test_each_section_gives_type_default_meaning_and_example() -> None:
    sections = render_markdown().split("\n### ")[1:]
    by_variable = {s.split("`")[1]: s for s in sections}
    lease = by_variable["TICKETMATE_DELIVERY_LEASE_SECONDS"]
    assert "- Type: number, or unset\n" in lease
    assert "- Default: unset\n" in lease
    assert "- Example: `TICKETMATE_DELIVERY_LEASE_SECONDS=120`" in lease
    assert "after a worker crashes" in lease
    schedule = by_variable["TICKETMATE_RETRY_SCHEDULE_SECONDS"]
    assert "- Default: `10,30,120,600,1800,3600,7200`\n" in schedule
    assert "- Default: `var/encryption.key`\n" in by_variable["TICKETMATE_KEY_FILE"]
    assert "- Default: empty\n" in by_variable["TICKETMATE_ENCRYPTION_KEYS"]
    assert "- Default: `false`\n" in by_variable["TICKETMATE_ALLOW_LOOPBACK_WEBHOOKS"]


def test_defaults_are_the_class_defaults_as_the_environment_writes_them() -> None:
    shown = {doc.field: doc.default for doc in describe()}
    assert shown["worker_poll_seconds"] == "5"
    assert shown["retry_schedule_seconds"] == "10,30,120,600,1800,3600,7200"
    # Each default, read back the way the service reads the environment, is the default.
    defaults = Settings.model_fields
    for field, text in shown.items():
        if text is None:
            assert defaults[field].get_default() is None, field
            continue
        read = load_settings(_env_file=None, **{field: text})
        assert getattr(read, field) == defaults[field].get_default(), field


def test_the_env_example_as_it_is_changes_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / ".env").write_text(render_env_example(), encoding="utf-8")
    copied = load_settings()
    assert copied.model_fields_set == set()
    assert copied == load_settings(_env_file=None)


def test_every_example_line_uncommented_gives_valid_settings(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    examples = example_lines((ROOT / ENV_EXAMPLE_FILE).read_text(encoding="utf-8"))
    # The one example that must not work: the encryption key's placeholder, which Settings
    # refuses (tests/cli/test_example_key.py).
    assert examples.pop("TICKETMATE_ENCRYPTION_KEYS") == ENCRYPTION_KEYS_PLACEHOLDER
    monkeypatch.chdir(tmp_path)
    (tmp_path / ".env").write_text(
        "".join(f"{variable}={value}\n" for variable, value in examples.items()), encoding="utf-8"
    )
    # Read as the service reads it; a bad example stops here naming its variable.
    settings = load_settings()
    every_other = set(Settings.model_fields) - {"encryption_keys"}
    assert settings.model_fields_set == every_other, "an example line was not read"
    for name, field in Settings.model_fields.items():
        if name == "encryption_keys":
            continue
        example = field.examples[0] if field.examples else field.get_default()
        value = getattr(settings, name)
        shown = value.get_secret_value() if isinstance(value, SecretStr) else value
        assert shown == example or str(shown) == str(example), name


def test_secrets_have_examples_that_are_plainly_placeholders() -> None:
    examples = {doc.field: doc.example for doc in describe()}
    assert "CHANGE-ME" in examples["database_url"]
    assert examples["encryption_keys"].startswith("replace-me:REPLACE+ME")


class Partial(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="DEMO_", env_file=".env", extra="ignore")

    documented: int = Field(default=3, description="Documented.")
    silent: int = 4
    optional: float | None = Field(default=None, description="No example to show.")


def test_a_setting_without_description_or_example_is_named() -> None:
    gaps = documentation_gaps(Partial)
    assert gaps == [
        "DEMO_SILENT (silent) has no description: "
        "give it Field(description=...) in src/ticketmate/config.py",
        "DEMO_OPTIONAL (optional) has no example: "
        "give it Field(examples=[...]) in src/ticketmate/config.py",
    ]
    with pytest.raises(UndocumentedSettings, match="DEMO_SILENT"):
        render_markdown(Partial)
    with pytest.raises(UndocumentedSettings, match="DEMO_SILENT"):
        render_env_example(Partial)


class Shapes(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="DEMO_")

    delays: Annotated[tuple[float, ...], NoDecode] = Field(
        default=(1.0, 2.5), description="Comma-separated, parsed by the class."
    )
    ports: list[int] = Field(default=[80, 443], description="Read by pydantic-settings as JSON.")
    path: Path = Field(default=Path("var/x"), description="A path.")
    token: SecretStr | None = Field(default=None, description="A secret.", examples=["x y#z"])
    flag: bool = Field(default=True, description="A switch.")


def test_values_are_written_as_the_environment_takes_them() -> None:
    docs = {doc.field: doc for doc in describe(Shapes)}
    assert (docs["delays"].default, docs["delays"].kind) == (
        "1,2.5",
        "comma-separated list of numbers",
    )
    assert (docs["ports"].default, docs["ports"].kind) == (
        "[80, 443]",
        "JSON list of whole numbers",
    )
    assert (docs["path"].default, docs["path"].kind) == ("var/x", "file path")
    assert (docs["token"].default, docs["token"].kind) == (None, "secret text, or unset")
    assert (docs["flag"].default, docs["flag"].kind) == ("true", "true or false")
    env_example = render_env_example(Shapes)
    assert "# A secret. (default: unset)\n# DEMO_TOKEN='x y#z'\n" in env_example
    assert "# DEMO_PORTS='[80, 443]'\n" in env_example
    # Settings without an env file: only the environment is mentioned.
    assert "`.env`" not in render_markdown(Shapes)


def test_the_readme_points_to_the_reference_and_names_only_real_settings() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    section = readme.split("\n## Configuration\n", 1)[1].split("\n## ", 1)[0]
    assert "(docs/configuration.md)" in section
    assert "make config-docs" in section
    named = set(re.findall(r"TICKETMATE_[A-Z0-9_]*[A-Z0-9]", section))
    assert named, "the Configuration section names no setting"
    assert named <= set(variables()), f"not settings: {sorted(named - set(variables()))}"
