"""`ticketmate dev teams-sink`: a local Teams stand-in that prints what arrives;
`ticketmate dev demo`: the service, the stand-in and a replay of real Jira events."""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path
from typing import Annotated

import typer

from ticketmate.dev.teams_sink import Received, TeamsSink, describe
from ticketmate.errors import CommandError

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
    typer.echo(f"Open http://127.0.0.1:{port}/ to see the cards drawn as Teams shows them.")
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(sink.run_forever())


@app.command("demo")
def demo(
    port: Annotated[int, typer.Option(help="Port of the service (127.0.0.1).")] = 8000,
    sink_port: Annotated[
        int, typer.Option(help="Port of the Teams stand-in and its page (127.0.0.1).")
    ] = 8765,
    interval: Annotated[
        float, typer.Option(min=0.0, help="Seconds between two replayed Jira events.")
    ] = 3.0,
    folder: Annotated[
        Path,
        typer.Option(help="Folder of the demo's database, key and log; emptied at each start."),
    ] = Path("var/demo"),
    events: Annotated[
        int | None,
        typer.Option(min=0, help="Replay only the first N events (all by default)."),
    ] = None,
    exit_after: Annotated[
        float | None,
        typer.Option(min=0.0, help="Stop everything after this many seconds (e.g. in CI)."),
    ] = None,
) -> None:
    """Run the whole product locally: the service on a fresh database, a Teams stand-in
    with two channels, and a replay of real Jira events.

    It prints the sign-in URL and password. One card is answered 429 and retried; the #ops
    channel answers 410, as a removed connector, so its cards become dead letters. The replay
    goes through the events once; everything keeps running until Ctrl+C.
    """
    from ticketmate.cli_support import cli_errors
    from ticketmate.dev.demo import DemoError, DemoOptions, run_demo

    options = DemoOptions(
        port=port,
        sink_port=sink_port,
        interval=interval,
        folder=folder,
        events=events,
        exit_after=exit_after,
    )
    with cli_errors():
        try:
            code = run_demo(options)
        except DemoError as exc:
            raise CommandError(str(exc)) from None
    raise typer.Exit(code)
