"""What every `ticketmate` command shares: one-line errors, settings, services, the acting
administrator. The commands (cli.py and each part's cli.py) import from here; nothing here
imports a command, so the commands form no circle."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TypeVar

import typer
from pydantic import ValidationError
from pydantic_settings import BaseSettings
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session

from ticketmate.accounts.service import AccountError, get_user_by_email, role_in
from ticketmate.audit.service import Actor, RequestInfo
from ticketmate.config import ConfigError, Settings, load_settings
from ticketmate.errors import CommandError, validation_details
from ticketmate.logging_setup import report_error
from ticketmate.security.crypto import DecryptionError
from ticketmate.state import Services
from ticketmate.teams.webhooks import TeamsError
from ticketmate.workspaces.service import WorkspaceError, get_by_slug

T = TypeVar("T")

CLI_REQUEST = RequestInfo(ip=None, user_agent="ticketmate-cli")


def fail(message: str) -> typer.Exit:
    """Write the one-line error (as a JSON line in JSON format) and give the exit to raise."""
    report_error(message)
    return typer.Exit(1)


@contextmanager
def cli_errors() -> Iterator[None]:
    try:
        yield
    except (ConfigError, CommandError, AccountError, WorkspaceError, DecryptionError) as exc:
        raise fail(str(exc)) from None
    except OperationalError as exc:
        reason = str(exc.orig).strip().splitlines()[0] if exc.orig else "unreachable"
        raise fail(f"the database cannot be used: {reason}") from None


@contextmanager
def command_errors() -> Iterator[None]:
    """cli_errors, and the API's own refusals (validation, Teams rules) as one line."""
    with cli_errors():
        try:
            yield
        except TeamsError as exc:
            raise CommandError(_sentence(exc.message)) from None
        except ValidationError as exc:
            first = validation_details(list(exc.errors()))[0]
            raise CommandError(f"{first['field']}: {first['message']}") from None


def _sentence(message: str) -> str:
    # The API's sentences end with a full stop; the CLI's one-line errors do not.
    return message[:-1] if message.endswith(".") else message


def settings() -> Settings:
    return load_settings()


class _LogFormatOnly(BaseSettings):
    # TICKETMATE_LOG_FORMAT read as Settings reads it, alone: so that a wrong value of another
    # setting is reported in the chosen format too.
    model_config = Settings.model_config

    log_format: str = "text"


def chosen_log_format() -> str:
    """`json` or `text`, as TICKETMATE_LOG_FORMAT says, even when another setting is wrong."""
    try:
        return settings().log_format
    except ConfigError:
        pass
    try:
        chosen = _LogFormatOnly().log_format.strip().lower()
    except ValidationError:
        return "text"
    return "json" if chosen == "json" else "text"


def with_services(action: Callable[[Services], T]) -> T:
    from ticketmate.app import build_services

    svc = build_services(settings())
    try:
        return action(svc)
    finally:
        svc.db.dispose()


def acting_admin(session: Session, slug: str, email: str) -> tuple[str, Actor]:
    """The workspace id and the acting administrator, or a one-line reason why not."""
    workspace = get_by_slug(session, slug.strip().lower())
    if workspace is None:
        raise CommandError(f"there is no workspace {slug!r}")
    user = get_user_by_email(session, email)
    if user is None:
        raise CommandError(f"there is no user {email!r}")
    if role_in(session, user.id, workspace.id) != "admin":
        raise CommandError(f"{user.email} is not an administrator of workspace {workspace.slug}")
    return workspace.id, Actor("user", user.id, user.email)
