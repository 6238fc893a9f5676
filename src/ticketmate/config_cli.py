"""`ticketmate config docs|env-example`: the settings reference and .env.example, from the
Settings class. They read no settings, so they work with any environment and no database."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Annotated

import typer

from ticketmate.config_docs import (
    DOCS_FILE,
    ENV_EXAMPLE_FILE,
    REGENERATE,
    UndocumentedSettings,
    checked_in,
    render_env_example,
    render_markdown,
)

app = typer.Typer(no_args_is_help=True)

WriteOption = Annotated[
    bool, typer.Option("--write", help="Write the checked-in file in the source tree.")
]
OutputOption = Annotated[
    Path | None, typer.Option("--output", help="Write to this file instead.", dir_okay=False)
]
CheckOption = Annotated[
    bool,
    typer.Option(
        "--check",
        help="Exit 1 if the checked-in file (or --output) differs from the Settings class.",
    ),
]


@app.command("docs")
def docs(
    write: WriteOption = False, output: OutputOption = None, check: CheckOption = False
) -> None:
    """Print the settings reference, docs/configuration.md, in Markdown."""
    _emit(render_markdown, DOCS_FILE, write=write, output=output, check=check)


@app.command("env-example")
def env_example(
    write: WriteOption = False, output: OutputOption = None, check: CheckOption = False
) -> None:
    """Print .env.example: every setting commented out, with its meaning and an example."""
    _emit(render_env_example, ENV_EXAMPLE_FILE, write=write, output=output, check=check)


def _emit(
    render: Callable[[], str], default: Path, *, write: bool, output: Path | None, check: bool
) -> None:
    from ticketmate.cli_support import fail

    if write and (output is not None or check):
        raise fail("give --write alone: --output names another file, --check writes nothing")
    try:
        text = render()
        target = checked_in(output, default) if write or check or output else None
    except (UndocumentedSettings, FileNotFoundError) as exc:
        raise fail(str(exc)) from None
    if target is None:
        typer.echo(text, nl=False)
        return
    shown = default if output is None else target
    if check:
        current = target.read_text(encoding="utf-8") if target.is_file() else None
        if current != text:
            state = "is missing" if current is None else "differs from the Settings class"
            raise fail(f"{shown} {state}; run `{REGENERATE}` to regenerate it")
        typer.echo(f"{shown} is up to date", err=True)
        return
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(text, encoding="utf-8", newline="\n")
    typer.echo(f"wrote {shown}", err=True)
