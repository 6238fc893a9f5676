"""`ticketmate dev teams-sink`: a local Teams stand-in that prints what arrives."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Annotated

import typer

from ticketmate.dev.teams_sink import Received, TeamsSink, describe

app = typer.Typer(no_args_is_help=True)


@app.command("teams-sink")
def teams_sink(
    port: Annotated[int, typer.Option(help="Port to listen on (127.0.0.1).")] = 8765,
    show_json: Annotated[
        bool, typer.Option("--json", help="Print each message body in full.")
    ] = False,
) -> None:
    """Answer like Teams on 127.0.0.1 and print each card that arrives.

    Paths containing /workflows/ answer like a Workflows webhook (202), others like a legacy
    connector (200 "1"). Add it in Ticket MATE as http://127.0.0.1:PORT/workflows/demo with
    TICKETMATE_ALLOW_LOOPBACK_WEBHOOKS=true.
    """
    sink = TeamsSink(port=port)

    def show(record: Received) -> None:
        typer.echo(describe(record))
        if show_json:
            typer.echo(record.body.decode("utf-8", errors="replace"))

    sink.on_receive = show
    typer.echo(f"Teams stand-in listening on http://127.0.0.1:{port}/ — for example")
    typer.echo(f"  Workflows-style URL: http://127.0.0.1:{port}/workflows/demo")
    typer.echo(f"  connector-style URL: http://127.0.0.1:{port}/webhookb2/demo")
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(sink.run_forever())
