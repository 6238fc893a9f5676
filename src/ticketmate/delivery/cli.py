"""`ticketmate worker` and `ticketmate deliveries ...`."""

from __future__ import annotations

import asyncio
import signal
from datetime import UTC, datetime, timedelta
from typing import Annotated

import typer
import uvloop

from ticketmate.delivery import service
from ticketmate.errors import CommandError
from ticketmate.state import Services
from ticketmate.timeutil import utcnow

app = typer.Typer(no_args_is_help=True)


def run_worker(concurrency: int, once: bool, metrics_port: int | None = None) -> None:
    """Run a TeamsDeliveryWorker in this process until SIGTERM/SIGINT (or, with once, idle)."""
    from ticketmate.app import build_services
    from ticketmate.cli_support import cli_errors, settings
    from ticketmate.delivery.worker import TeamsDeliveryWorker
    from ticketmate.logging_setup import announce, configure_logging
    from ticketmate.serve import require_schema_at_head

    with cli_errors():
        config = settings()
        configure_logging(config.log_level, config.log_format)
        svc = build_services(config)
        require_schema_at_head(svc)

    if metrics_port is not None:
        from ticketmate.metrics import serve_worker_metrics

        serve_worker_metrics(metrics_port, svc.db, config.metrics_token)

    async def main() -> None:
        worker = TeamsDeliveryWorker(svc, concurrency=concurrency)
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, worker.stop)
        stats = await worker.run(once=once)
        announce(
            f"worker {worker.worker_id} stopped: {stats.sent} sent, {stats.delivered} delivered, "
            f"{stats.retried} to retry, {stats.dead_lettered} dead letters",
            err=True,
        )

    try:
        # uvloop, as `serve` uses: the worker's loop spends its time on sockets (Teams, the
        # database), where uvloop's are measurably cheaper than asyncio's.
        uvloop.run(main())
    finally:
        svc.db.dispose()


def _as_of(value: str | None, option: str) -> datetime | None:
    if value is None:
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise CommandError(
            f"{option} must be an ISO 8601 time, e.g. 2026-11-28T06:00:00Z"
        ) from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


@app.command("retry")
def retry(
    workspace: Annotated[str, typer.Option("--workspace", help="Workspace slug.")],
    acting_as: Annotated[
        str, typer.Option("--as", help="E-mail of the administrator retrying (audit log).")
    ],
    delivery_id: Annotated[
        str | None, typer.Option("--id", help="One delivery; without it, every dead letter.")
    ] = None,
    webhook_id: Annotated[str | None, typer.Option("--webhook", help="Only this webhook.")] = None,
    since: Annotated[str | None, typer.Option(help="Only deliveries queued at or after.")] = None,
    until: Annotated[str | None, typer.Option(help="Only deliveries queued before.")] = None,
) -> None:
    """Put dead letters back in the queue; their attempt history is kept."""
    from ticketmate.cli_support import CLI_REQUEST, acting_admin, command_errors, with_services

    with command_errors():
        window = (_as_of(since, "--since"), _as_of(until, "--until"))

        def action(svc: Services) -> int:
            with svc.db.transaction() as session:
                workspace_id, actor = acting_admin(session, workspace, acting_as)
                if delivery_id:
                    service.retry_one(
                        session,
                        workspace_id=workspace_id,
                        delivery_id=delivery_id,
                        actor=actor,
                        request=CLI_REQUEST,
                        now=utcnow(),
                    )
                    return 1
                return service.retry_bulk(
                    session,
                    workspace_id=workspace_id,
                    f=service.DeliveryFilter("dead_letter", webhook_id, None, *window),
                    actor=actor,
                    request=CLI_REQUEST,
                    now=utcnow(),
                )

        try:
            count = with_services(action)
        except service.DeliveryNotFound:
            raise CommandError(f"there is no delivery {delivery_id!r} in {workspace}") from None
        except service.DeliveryNotRetryable as exc:
            raise CommandError(str(exc).rstrip(".")) from None
    typer.echo(f"requeued {count} deliveries")


@app.command("purge")
def purge(
    workspace: Annotated[
        str | None, typer.Option("--workspace", help="Only this workspace (default: all).")
    ] = None,
    older_than_days: Annotated[
        int | None, typer.Option(min=0, help="Only dead letters older than this many days.")
    ] = None,
    yes: Annotated[bool, typer.Option("--yes", help="Do it without asking.")] = False,
) -> None:
    """Delete dead letters (and their attempts) for good."""
    from ticketmate.cli_support import cli_errors, with_services
    from ticketmate.workspaces.service import get_by_slug

    if not yes and not typer.confirm("Delete these dead letters for good?"):
        raise typer.Exit(1)
    before = utcnow() - timedelta(days=older_than_days) if older_than_days is not None else None
    with cli_errors():

        def action(svc: Services) -> int:
            with svc.db.transaction() as session:
                workspace_id = None
                if workspace:
                    found = get_by_slug(session, workspace)
                    if found is None:
                        raise CommandError(f"there is no workspace {workspace!r}")
                    workspace_id = found.id
                return service.purge_dead_letters(session, workspace_id=workspace_id, before=before)

        count = with_services(action)
    typer.echo(f"purged {count} dead letters")


def register(root: typer.Typer) -> None:
    @root.command()
    def worker(
        concurrency: Annotated[
            int, typer.Option(min=1, max=256, help="Channels served side by side.")
        ] = 16,
        once: Annotated[
            bool, typer.Option("--once", help="Send what is due now, then exit (tests, cron).")
        ] = False,
        metrics_port: Annotated[
            int | None,
            typer.Option(help="Serve this worker's Prometheus metrics on 127.0.0.1:PORT."),
        ] = None,
    ) -> None:
        """Run the TeamsDeliveryWorker on its own (several may run against PostgreSQL)."""
        run_worker(concurrency, once, metrics_port)
