"""`ticketmate keys generate|rotate`: new encryption keys, and moving stored secrets onto one."""

from __future__ import annotations

import sys
from typing import Annotated

import typer

from ticketmate.security.crypto import generate_key_line
from ticketmate.security.rotation import DEFAULT_BATCH_SIZE, RotationError, RotationReport
from ticketmate.state import Services

app = typer.Typer(no_args_is_help=True)


@app.command()
def generate(
    kid: Annotated[
        str | None, typer.Option("--kid", help="The key id to use (default: a random one).")
    ] = None,
) -> None:
    """Print a new `kid:base64key` line for TICKETMATE_ENCRYPTION_KEYS.

    Put it first in the list, keep the old keys, then run `ticketmate keys rotate`.
    """
    from ticketmate.cli_support import fail

    if kid is not None and (not kid.strip() or ":" in kid or "," in kid or len(kid) > 64):
        raise fail("a key id is 1-64 characters without ':' or ','")
    typer.echo(generate_key_line(kid.strip() if kid else None))


@app.command()
def rotate(
    batch_size: Annotated[
        int, typer.Option("--batch-size", min=1, max=10_000, help="Rows per committed batch.")
    ] = DEFAULT_BATCH_SIZE,
) -> None:
    """Re-encrypt every stored secret with the first configured key.

    Covers Teams webhook URLs and each workspace's Jira secret and ingest token.

    Safe to interrupt and run again: secrets already on the first key are skipped.
    """
    from ticketmate.cli_support import cli_errors, fail, with_services
    from ticketmate.security.rotation import rotate as rotate_secrets
    from ticketmate.security.rotation import rows_to_examine

    def action(svc: Services) -> RotationReport:
        total = rows_to_examine(svc.db)
        with typer.progressbar(
            length=total, label="Re-encrypting secrets", file=sys.stderr, show_pos=True
        ) as bar:
            return rotate_secrets(svc.db, svc.keyring, batch_size=batch_size, progress=bar.update)

    with cli_errors():
        try:
            report = with_services(action)
        except RotationError as exc:
            raise fail(f"{exc} (rows before it were re-encrypted; run again once fixed)") from None
    totals = report.totals
    typer.echo(
        f"keys rotated to {report.primary_kid!r}: {totals['webhook_urls']} webhook URL(s), "
        f"{totals['jira_secrets']} Jira secret(s), {totals['jira_ingest_tokens']} ingest "
        f"token(s) re-encrypted; {report.examined} row(s) examined"
    )
