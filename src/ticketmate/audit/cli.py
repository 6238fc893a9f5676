"""`ticketmate audit verify`: check the audit log's hash chains."""

from __future__ import annotations

from typing import Annotated

import typer
from sqlalchemy import select

from ticketmate.audit.service import ChainReport, verify_chain
from ticketmate.errors import CommandError
from ticketmate.models import Workspace
from ticketmate.state import Services

app = typer.Typer(no_args_is_help=True)

# The chain of entries that belong to no workspace (failed sign-ins of unknown e-mails, …).
GLOBAL_CHAIN = "(no workspace)"


def chains_to_check(svc: Services, slug: str | None) -> list[tuple[str, str | None]]:
    """(label, workspace id) of the chains to verify: one workspace, or all and the global one."""
    with svc.db.transaction() as session:
        if slug is not None:
            workspace_id = session.scalar(select(Workspace.id).where(Workspace.slug == slug))
            if workspace_id is None:
                raise CommandError(f"there is no workspace {slug!r}")
            return [(slug, workspace_id)]
        rows = session.execute(select(Workspace.slug, Workspace.id).order_by(Workspace.slug))
        return [(s, i) for s, i in rows] + [(GLOBAL_CHAIN, None)]


def verify_all(svc: Services, slug: str | None) -> list[tuple[str, ChainReport]]:
    results = []
    for label, workspace_id in chains_to_check(svc, slug):
        with svc.db.transaction() as session:
            results.append((label, verify_chain(session, workspace_id)))
    return results


@app.command()
def verify(
    workspace: Annotated[
        str | None,
        typer.Option("--workspace", help="Only this workspace (default: every chain)."),
    ] = None,
) -> None:
    """Check the hash chains: print "ok", or name the first broken entry and exit 1.

    A chain holds when every entry matches its hash and links to the entry before it.
    """
    from ticketmate.cli_support import cli_errors, with_services

    with cli_errors():
        results = with_services(lambda svc: verify_all(svc, workspace))
    broken = [(label, report) for label, report in results if not report.ok]
    for label, report in results:
        state = "intact" if report.ok else "BROKEN"
        entries = "entry" if report.checked == 1 else "entries"
        typer.echo(f"{label}: {report.checked} {entries} checked, {state}", err=True)
    for label, report in broken:
        where = "the global chain" if label == GLOBAL_CHAIN else f"workspace {label}"
        typer.echo(f"broken: {where}, entry {report.broken_entry_id}: {report.problem}")
    if broken:
        typer.echo(f"error: the audit log is broken in {len(broken)} chain(s)", err=True)
        raise typer.Exit(1)
    typer.echo("ok")
