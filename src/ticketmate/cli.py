"""The `ticketmate` command line. Errors are one line on stderr and a non-zero exit."""

from __future__ import annotations

import json
import sys
from typing import Annotated

import typer

# Typer (0.29, pinned in constraints.txt) carries its own copy of Click; its errors are these.
from typer._click.exceptions import ClickException, NoArgsIsHelpError, UsageError

from ticketmate.accounts.service import (
    create_api_token,
    ensure_user,
    get_user_by_email,
    set_membership,
)
from ticketmate.bootstrap import DEMO_SLUG
from ticketmate.cli_support import chosen_log_format, cli_errors, fail, settings, with_services
from ticketmate.config import ConfigError
from ticketmate.errors import CommandError
from ticketmate.logging_setup import announce
from ticketmate.state import Services
from ticketmate.workspaces.service import (
    create_workspace,
    get_by_slug,
    jira_credentials,
    jira_webhook_url,
)

app = typer.Typer(
    help="Ticket MATE: Jira activity delivered to Microsoft Teams channels.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
db_app = typer.Typer(help="Database schema.", no_args_is_help=True)
workspace_app = typer.Typer(help="Workspaces.", no_args_is_help=True)
user_app = typer.Typer(help="Users and their roles.", no_args_is_help=True)
token_app = typer.Typer(help="API tokens.", no_args_is_help=True)
app.add_typer(db_app, name="db")
app.add_typer(workspace_app, name="workspace")
app.add_typer(user_app, name="user")
app.add_typer(token_app, name="token")


def _add_part_commands() -> None:
    # Each part of the product keeps its commands beside its code.
    from ticketmate.audit.cli import app as audit_app
    from ticketmate.config_cli import app as config_app
    from ticketmate.delivery.cli import app as deliveries_app
    from ticketmate.delivery.cli import register as register_worker
    from ticketmate.dev.cli import app as dev_app
    from ticketmate.security.keys_cli import app as keys_app
    from ticketmate.teams.cli import app as teams_app

    app.add_typer(keys_app, name="keys", help="Encryption keys for secrets at rest.")
    app.add_typer(teams_app, name="teams", help="Teams webhooks and subscriptions.")
    app.add_typer(deliveries_app, name="deliveries", help="The delivery log: retry and purge.")
    app.add_typer(audit_app, name="audit", help="The audit log.")
    app.add_typer(dev_app, name="dev", help="Local tools: a Teams stand-in for demos.")
    app.add_typer(
        config_app, name="config", help="The settings reference and .env.example, generated."
    )
    register_worker(app)


_add_part_commands()


@app.command()
def serve(
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8000,
    no_worker: Annotated[
        bool,
        typer.Option("--no-worker", help="Serve the web app only; run `ticketmate worker` apart."),
    ] = False,
) -> None:
    """Start the web app and, unless --no-worker, the embedded delivery worker."""
    import uvicorn

    from ticketmate.app import build_services, create_app
    from ticketmate.bootstrap import bootstrap_if_empty
    from ticketmate.logging_setup import configure_logging
    from ticketmate.serve import background_parts, require_schema_at_head

    with cli_errors():
        config = settings()
        if "base_url" not in config.model_fields_set:
            shown_host = "127.0.0.1" if host in ("0.0.0.0", "::") else host  # noqa: S104
            config = config.model_copy(update={"base_url": f"http://{shown_host}:{port}"})
        configure_logging(config.log_level, config.log_format)
        svc = build_services(config)
        require_schema_at_head(svc)
        first = bootstrap_if_empty(svc)
    if first is not None and config.log_format == "json":
        # JSON lines are log lines, and no password appears in a log line: an operator sets
        # the administrator's password with the CLI instead.
        announce(
            f"Ticket MATE is set up with a workspace '{DEMO_SLUG}' and its administrator "
            f"{first.email}, whose password is not shown in JSON logs. Set it with "
            f"`{set_password_command(first.email)}`, giving the password as the first line "
            f"of its standard input, then sign in at {first.sign_in_url}.",
            sign_in_url=first.sign_in_url,
            email=first.email,
        )
    elif first is not None:
        typer.echo("")
        typer.echo("Ticket MATE is set up with a workspace 'demo'. Sign in once with:")
        typer.echo(f"  URL:      {first.sign_in_url}")
        typer.echo(f"  Email:    {first.email}")
        typer.echo(f"  Password: {first.password}")
        typer.echo("This password is shown only now.")
        typer.echo("")
    announce(f"Serving on {config.base_url} (Ctrl+C to stop)")
    application = create_app(config, services=svc, background=background_parts(not no_worker))
    # uvloop and httptools are dependencies: named here so that uvicorn never falls back to
    # asyncio's loop and h11 (about half the throughput) without saying so.
    uvicorn.run(
        application,
        host=host,
        port=port,
        loop="uvloop",
        http="httptools",
        log_config=None,
        access_log=False,
        # uvicorn believes X-Forwarded-* from 127.0.0.1 unless told otherwise; only the
        # configured proxies may speak for a client.
        proxy_headers=bool(config.trusted_proxies.strip()),
        forwarded_allow_ips=config.trusted_proxies.strip() or None,
    )


@db_app.command("upgrade")
def db_upgrade() -> None:
    """Apply every pending migration."""
    from ticketmate.logging_setup import configure_logging
    from ticketmate.migrate import upgrade

    with cli_errors():
        config = settings()
        configure_logging(config.log_level, config.log_format)
        upgrade(config.database_url)
    announce("database is up to date", err=True)


@workspace_app.command("create")
def workspace_create(
    slug: Annotated[str, typer.Argument(help="Short name used in URLs, e.g. acme.")],
    name: Annotated[str | None, typer.Option(help="Display name.")] = None,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print one JSON object on stdout.")
    ] = False,
) -> None:
    """Create a workspace and print its Jira connection details."""
    with cli_errors():

        def action(svc: Services) -> dict[str, str]:
            with svc.db.transaction() as session:
                workspace = create_workspace(session, svc.keyring, slug, name)
                creds = jira_credentials(svc.keyring, workspace)
                return {
                    "id": workspace.id,
                    "slug": workspace.slug,
                    "name": workspace.name,
                    "jira_webhook_url": jira_webhook_url(svc.settings.base_url, workspace),
                    "jira_secret": creds.secret,
                    "jira_ingest_token": creds.ingest_token,
                }

        result = with_services(action)
    if as_json:
        typer.echo(json.dumps(result))
        announce(f"created workspace {result['slug']}", err=True)
        return
    typer.echo(f"Created workspace {result['slug']} ({result['name']}).")
    typer.echo(f"Jira webhook URL:  {result['jira_webhook_url']}")
    typer.echo(f"Jira secret:       {result['jira_secret']}")
    typer.echo(f"Jira ingest token: {result['jira_ingest_token']}")


def set_password_command(email: str, workspace: str = DEMO_SLUG, role: str = "admin") -> str:
    """The command that sets (or resets) a user's password, read from stdin."""
    return f"ticketmate user create {email} --workspace {workspace} --role {role} --password-stdin"


@user_app.command("create")
def user_create(
    email: Annotated[str, typer.Argument(help="The user's e-mail address.")],
    workspace: Annotated[str, typer.Option("--workspace", help="Workspace slug.")],
    role: Annotated[str, typer.Option("--role", help="admin or member.")],
    password_stdin: Annotated[
        bool,
        typer.Option("--password-stdin", help="Read the password from the first line of stdin."),
    ] = False,
) -> None:
    """Create the user when new and give them a role in the workspace.

    With --password-stdin, the password is set, for a new user or an existing one.
    """
    password = None
    if password_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
        if not password:
            raise fail("no password on stdin")
    with cli_errors():

        def action(svc: Services) -> tuple[bool, str | None]:
            with svc.db.transaction() as session:
                found = get_by_slug(session, workspace)
                if found is None:
                    raise CommandError(f"there is no workspace {workspace!r}")
                created = ensure_user(session, email, password)
                set_membership(session, created.user, found, role)
                return created.created, created.generated_password

        created, generated = with_services(action)
    typer.echo(
        f"{'created' if created else 'updated'} {email.strip().lower()} as {role} of {workspace}"
    )
    if generated:
        typer.echo(f"password (shown once): {generated}")


@token_app.command("create")
def token_create(email: Annotated[str, typer.Argument(help="The user's e-mail address.")]) -> None:
    """Create an API token for the user; it is printed once, alone on the last line."""
    with cli_errors():

        def action(svc: Services) -> str:
            with svc.db.transaction() as session:
                user = get_user_by_email(session, email)
                if user is None:
                    raise CommandError(f"there is no user {email!r}")
                return create_api_token(session, user)

        token = with_services(action)
    announce("API token (shown once; send it as 'Authorization: Bearer <token>'):", err=True)
    typer.echo(token)


def main() -> None:
    from ticketmate.logging_setup import configure_logging

    # Commands other than serve, worker and db upgrade log warnings only, in the chosen format
    # (read alone, so that even a wrong setting is reported in it); a bad setting is reported
    # by the command that reads it.
    log_format = chosen_log_format()
    configure_logging("WARNING", log_format)
    try:
        if log_format == "json":
            _run_with_json_errors()
        else:
            app()
    except ConfigError as exc:
        raise SystemExit(fail(str(exc)).exit_code) from None


def _run_with_json_errors() -> None:
    """app(), with Click's own errors (a usage error is a box of several lines) as one JSON
    line each, as fail() writes; --help, asked for by a person, stays text."""
    try:
        code = app(standalone_mode=False)
    except NoArgsIsHelpError as exc:
        exc.show()
        raise SystemExit(exc.exit_code) from None
    except UsageError as exc:
        where = f"; see `{exc.ctx.command_path} --help`" if exc.ctx is not None else ""
        fail(f"{exc.format_message().rstrip('.')}{where}")
        raise SystemExit(exc.exit_code) from None
    except ClickException as exc:
        fail(exc.format_message())
        raise SystemExit(exc.exit_code) from None
    except typer.Abort:
        fail("aborted")
        raise SystemExit(1) from None
    # Not standalone, Click returns the exit status of typer.Exit (and None on success).
    raise SystemExit(code if isinstance(code, int) else 0)
