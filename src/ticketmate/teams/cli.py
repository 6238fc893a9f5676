"""`ticketmate teams webhook|subscription add|update|list|remove`: the API's rules, from a
shell. `webhook update` sets storm control; `subscription update` the security levels a
subscription may post and how its updates are grouped (combined, or sent as a digest).

Every command acts as a named workspace administrator (`--as EMAIL`), so its changes are
audit-logged to that person, with the same validation as the API.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from typing import Annotated, Any, Literal, TypeVar

import typer
from sqlalchemy.orm import Session

from ticketmate.cli_support import CLI_REQUEST, acting_admin, command_errors, with_services
from ticketmate.errors import CommandError
from ticketmate.pagination import MAX_LIMIT, Page
from ticketmate.state import Services
from ticketmate.teams import subscriptions, webhooks
from ticketmate.teams.digest_schedule import ScheduleError, combine_text, parse_combine
from ticketmate.teams.subscriptions import (
    DIGEST_OFF,
    SubscriptionCreate,
    SubscriptionFilters,
    SubscriptionUpdate,
    SubscriptionView,
)
from ticketmate.teams.webhooks import (
    STORM_MAX,
    STORM_MIN,
    STORM_SUGGESTED,
    WebhookCreate,
    WebhookUpdate,
    WebhookView,
)

app = typer.Typer(no_args_is_help=True)
webhook_app = typer.Typer(help="Teams webhooks (one per channel).", no_args_is_help=True)
subscription_app = typer.Typer(help="Which events go to which webhook.", no_args_is_help=True)
app.add_typer(webhook_app, name="webhook")
app.add_typer(subscription_app, name="subscription")

T = TypeVar("T")

WorkspaceOpt = Annotated[str, typer.Option("--workspace", help="Workspace slug.")]
AsOpt = Annotated[
    str, typer.Option("--as", help="E-mail of the administrator making the change (audit log).")
]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON on stdout.")]


def _run(action: Callable[[Services], T]) -> T:
    return with_services(action)


def _read_url(url: str | None, url_stdin: bool) -> str:
    if url_stdin == (url is not None):
        raise CommandError("give the webhook URL with exactly one of --url-stdin or --url")
    if url_stdin:
        line = sys.stdin.readline().strip()
        if not line:
            raise CommandError("no webhook URL on stdin")
        return line
    return url or ""


def _emit(data: Any, as_json: bool, lines: Callable[[], list[str]]) -> None:
    if as_json:
        typer.echo(json.dumps(data, ensure_ascii=False))
        return
    for line in lines():
        typer.echo(line)


# -- webhooks ----------------------------------------------------------------------------------


def _storm_option(help_text: str) -> Any:
    return typer.Option(
        "--storm",
        metavar="N|off",
        help=f"{help_text} When more than N cards are waiting for the channel, combine them "
        f"into summary cards ({STORM_MIN}–{STORM_MAX}; {STORM_SUGGESTED} is about ten seconds "
        "of Teams' pace).",
    )


def _storm_threshold(value: str) -> int | None:
    """`--storm`'s value: a number of waiting cards, or "off" (None)."""
    text = value.strip().casefold()
    if text == "off":
        return None
    try:
        threshold = int(text)
    except ValueError:
        threshold = 0
    if not STORM_MIN <= threshold <= STORM_MAX:
        raise CommandError(
            f"storm_threshold: use a number of waiting cards from {STORM_MIN} to {STORM_MAX}, "
            f"or off, not {value.strip()[:20]!r}"
        )
    return threshold


def _storm_text(view: WebhookView) -> str:
    if view.storm_threshold is None:
        return "storm control off"
    return f"storm control above {view.storm_threshold} waiting cards"


@webhook_app.command("add")
def webhook_add(
    workspace: WorkspaceOpt,
    acting_as: AsOpt,
    channel_name: Annotated[str, typer.Option("--channel-name", help="e.g. #engineering")],
    url_stdin: Annotated[
        bool,
        typer.Option(
            "--url-stdin", help="Read the URL from stdin (keeps it out of shell history)."
        ),
    ] = False,
    url: Annotated[
        str | None, typer.Option("--url", help="The URL (visible to other local users).")
    ] = None,
    disabled: Annotated[bool, typer.Option("--disabled", help="Save it disabled.")] = False,
    storm: Annotated[str | None, _storm_option("Storm control (off when absent).")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Validate, encrypt and save a Teams webhook URL (Workflows, or a legacy connector)."""
    with command_errors():
        threshold = None if storm is None else _storm_threshold(storm)
        data = WebhookCreate(
            channel_name=channel_name,
            url=_read_url(url, url_stdin),
            enabled=not disabled,
            storm_threshold=threshold,
        )

        def action(svc: Services) -> WebhookView:
            with svc.db.transaction() as session:
                workspace_id, actor = acting_admin(session, workspace, acting_as)
                webhook = webhooks.create_webhook(
                    session,
                    svc.keyring,
                    workspace_id,
                    data,
                    allow_loopback=svc.settings.allow_loopback_webhooks,
                    actor=actor,
                    request=CLI_REQUEST,
                )
                return WebhookView.of(webhook)

        view = _run(action)
    _emit(
        view.model_dump(),
        as_json,
        lambda: [
            f"added webhook {view.id} {view.channel_name} ({view.url_kind}) {view.url_masked}"
            + (f", {_storm_text(view)}" if view.storm_threshold is not None else ""),
            *([f"warning: {view.url_warning}"] if view.url_warning else []),
        ],
    )


@webhook_app.command("update")
def webhook_update(
    webhook: Annotated[str, typer.Argument(help="The webhook's id or channel name.")],
    workspace: WorkspaceOpt,
    acting_as: AsOpt,
    storm: Annotated[str | None, _storm_option("Storm control; `off` turns it off.")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Change a webhook's storm control; what is not given is kept."""
    with command_errors():
        if storm is None:
            raise CommandError("nothing to change: give --storm N or --storm off")
        data = WebhookUpdate(storm_threshold=_storm_threshold(storm))

        def action(svc: Services) -> WebhookView:
            with svc.db.transaction() as session:
                workspace_id, actor = acting_admin(session, workspace, acting_as)
                found = webhooks.find_webhook(session, workspace_id, webhook)
                updated = webhooks.update_webhook(
                    session,
                    svc.keyring,
                    workspace_id,
                    found.id,
                    data,
                    allow_loopback=svc.settings.allow_loopback_webhooks,
                    actor=actor,
                    request=CLI_REQUEST,
                )
                return WebhookView.of(updated)

        view = _run(action)
    _emit(
        view.model_dump(),
        as_json,
        lambda: [f"updated webhook {view.id} {view.channel_name}: {_storm_text(view)}"],
    )


@webhook_app.command("list")
def webhook_list(workspace: WorkspaceOpt, acting_as: AsOpt, as_json: JsonOpt = False) -> None:
    """The workspace's webhooks, newest first; URLs only masked."""

    def action(svc: Services) -> list[WebhookView]:
        with svc.db.transaction() as session:
            workspace_id, _actor = acting_admin(session, workspace, acting_as)
            return [WebhookView.of(w) for w in _all_webhooks(session, workspace_id)]

    with command_errors():
        views = _run(action)
    _emit(
        [v.model_dump() for v in views],
        as_json,
        lambda: [
            f"{v.id}  {'enabled ' if v.enabled else 'disabled'}  {v.url_kind:<9}  "
            f"{v.channel_name}  {v.url_masked}"
            + (f"  storm: {v.storm_threshold}" if v.storm_threshold is not None else "")
            + (f"\n    warning: {v.url_warning}" if v.url_warning else "")
            for v in views
        ],
    )


def _all_webhooks(session: Session, workspace_id: str) -> list[Any]:
    found: list[Any] = []
    page = Page(MAX_LIMIT, None)
    while True:
        rows, cursor = webhooks.list_webhooks(session, workspace_id, page)
        found.extend(rows)
        if cursor is None:
            return found
        page = Page(MAX_LIMIT, found[-1].id)


@webhook_app.command("remove")
def webhook_remove(
    webhook: Annotated[str, typer.Argument(help="The webhook's id or channel name.")],
    workspace: WorkspaceOpt,
    acting_as: AsOpt,
    cascade: Annotated[
        bool, typer.Option("--cascade", help="Also delete the subscriptions that use it.")
    ] = False,
) -> None:
    """Delete a webhook; refused while subscriptions use it, unless --cascade."""

    def action(svc: Services) -> tuple[str, list[str]]:
        with svc.db.transaction() as session:
            workspace_id, actor = acting_admin(session, workspace, acting_as)
            found = webhooks.find_webhook(session, workspace_id, webhook)
            deleted = webhooks.delete_webhook(
                session, workspace_id, found.id, cascade=cascade, actor=actor, request=CLI_REQUEST
            )
            return found.channel_name, deleted

    with command_errors():
        channel_name, deleted = _run(action)
    suffix = f" and {len(deleted)} subscription(s)" if deleted else ""
    typer.echo(f"removed webhook {channel_name}{suffix}")


# -- subscriptions -----------------------------------------------------------------------------


def _filter_option(name: str, help_text: str) -> Any:
    return typer.Option(name, help=f"{help_text} (repeat for several; any when absent).")


SecurityLevelOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--security-level",
        help="Also post issues with this issue security level (repeat for several). Without "
        "it, issues with a security level are never posted. The channel's members will see "
        "those issues' summaries.",
    ),
]
AnySecurityLevelOpt = Annotated[
    bool,
    typer.Option(
        "--any-security-level",
        help="Post issues whatever their security level. The channel's members will see "
        "those issues' summaries.",
    ),
]


def _security_levels(names: list[str] | None, any_level: bool) -> list[str] | Literal["any"] | None:
    if names and any_level:
        raise CommandError("give --security-level or --any-security-level, not both")
    return "any" if any_level else names


CombineOpt = Annotated[
    str | None,
    typer.Option(
        "--combine",
        metavar="off|10s|30s|1m|5m",
        help="Combine updates to the same issue within this window (from the first) into one "
        "card, sent when the window closes.",
    ),
]
DigestOpt = Annotated[
    str | None,
    typer.Option(
        "--digest",
        metavar="off|hourly|daily@HH:MM/Area/City",
        help="Send the events as one digest card on this schedule (e.g. "
        "daily@09:00/Europe/Berlin), not one card each. Not together with --combine.",
    ),
]
BOTH_GROUPINGS = "give --combine or --digest, not both: a digest already gathers every update"


def _combine(value: str | None) -> str | None:
    """`--combine`'s value as the API names it ("off", "30s", ...); None when not given."""
    if value is None:
        return None
    try:
        return combine_text(parse_combine(value))
    except ScheduleError as problem:
        raise CommandError(f"combine: {problem}") from None


def _grouping(combine: str | None, digest: str | None) -> dict[str, Any]:
    """The `combine` / `digest` fields to send: only those given."""
    digest_on = digest is not None and digest.strip().casefold() != DIGEST_OFF
    if combine not in (None, "off") and digest_on:
        raise CommandError(BOTH_GROUPINGS)
    given = {"combine": combine, "digest": digest}
    return {name: value for name, value in given.items() if value is not None}


def _check_kept_grouping(current: SubscriptionView, data: SubscriptionUpdate) -> None:
    """Refuse, naming the option that helps, a grouping that clashes with the saved one."""
    combine = current.combine if data.combine is None else data.combine
    digest = current.digest if data.digest is None else data.digest
    if combine == "off" or digest == DIGEST_OFF:
        return
    if data.digest is not None:
        raise CommandError(
            f"digest: this subscription combines updates within {combine}, and a digest "
            "already gathers every update; add --combine off to send it as a digest"
        )
    raise CommandError(
        f"combine: this subscription is sent as a digest ({current.digest_label}), which "
        "already gathers every update; add --digest off to combine its updates instead"
    )


def _security_warning(view: SubscriptionView) -> None:
    levels = view.filters.security_levels
    if levels:
        shown = "any security level" if levels == "any" else "security levels " + ", ".join(levels)
        typer.echo(
            f"note: {view.channel_name}'s members will see the summaries of issues with {shown}",
            err=True,
        )


@subscription_app.command("add")
def subscription_add(
    workspace: WorkspaceOpt,
    acting_as: AsOpt,
    event_type: Annotated[str, typer.Option("--event-type", help="e.g. issue_created")],
    webhook: Annotated[str, typer.Option("--webhook", help="The webhook's id or channel name.")],
    projects: Annotated[list[str] | None, _filter_option("--project", "Project key")] = None,
    issue_types: Annotated[list[str] | None, _filter_option("--issue-type", "Issue type")] = None,
    statuses: Annotated[list[str] | None, _filter_option("--status", "Status")] = None,
    priorities: Annotated[list[str] | None, _filter_option("--priority", "Priority")] = None,
    labels: Annotated[list[str] | None, _filter_option("--label", "Label")] = None,
    components: Annotated[list[str] | None, _filter_option("--component", "Component")] = None,
    security_level: SecurityLevelOpt = None,
    any_security_level: AnySecurityLevelOpt = False,
    disabled: Annotated[bool, typer.Option("--disabled", help="Save it disabled.")] = False,
    combine: CombineOpt = None,
    digest: DigestOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Send one event type to a webhook, narrowed by filters; one card per event unless
    --combine or --digest groups them."""
    with command_errors():
        grouping = _grouping(_combine(combine), digest)
        filters = SubscriptionFilters(
            projects=projects,
            issue_types=issue_types,
            statuses=statuses,
            priorities=priorities,
            labels=labels,
            components=components,
            security_levels=_security_levels(security_level, any_security_level),
        )

        def action(svc: Services) -> SubscriptionView:
            with svc.db.transaction() as session:
                workspace_id, actor = acting_admin(session, workspace, acting_as)
                target = webhooks.find_webhook(session, workspace_id, webhook)
                data = SubscriptionCreate.model_validate(
                    {
                        "event_type": event_type,
                        "webhook_id": target.id,
                        "enabled": not disabled,
                        "filters": filters,
                        **grouping,
                    }
                )
                subscription, channel_name = subscriptions.create_subscription(
                    session, workspace_id, data, actor=actor, request=CLI_REQUEST
                )
                return SubscriptionView.of(subscription, channel_name)

        view = _run(action)
    _emit(
        view.model_dump(),
        as_json,
        lambda: [
            f"added subscription {view.id}: {view.event_type} → {view.channel_name}"
            + _grouping_text(view)
        ],
    )
    _security_warning(view)


@subscription_app.command("update")
def subscription_update(
    subscription_id: Annotated[str, typer.Argument(help="The subscription's id.")],
    workspace: WorkspaceOpt,
    acting_as: AsOpt,
    security_level: SecurityLevelOpt = None,
    any_security_level: AnySecurityLevelOpt = False,
    no_security_level: Annotated[
        bool,
        typer.Option(
            "--no-security-level", help="Post no issue that has a security level (the default)."
        ),
    ] = False,
    combine: CombineOpt = None,
    digest: DigestOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Change the security levels a subscription may post, or how its updates are grouped
    (--combine, --digest; `off` turns either off). What is not given is kept."""
    with command_errors():
        level_options = sum((bool(security_level), any_security_level, no_security_level))
        if level_options > 1:
            raise CommandError(
                "give one of --security-level (repeatable), --any-security-level or "
                "--no-security-level"
            )
        if level_options == 0 and combine is None and digest is None:
            raise CommandError(
                "give one of --security-level (repeatable), --any-security-level or "
                "--no-security-level, or --combine or --digest"
            )
        levels = [] if no_security_level else _security_levels(security_level, any_security_level)
        grouping = _grouping(_combine(combine), digest)
        # Checked before the database is opened, as the API checks a request body.
        SubscriptionUpdate.model_validate(grouping)

        def action(svc: Services) -> SubscriptionView:
            with svc.db.transaction() as session:
                workspace_id, actor = acting_admin(session, workspace, acting_as)
                current = subscriptions.get_subscription(session, workspace_id, subscription_id)
                shown = SubscriptionView.of(current, "")
                changes = dict(grouping)
                if level_options:
                    kept = shown.filters.model_dump()
                    kept["security_levels"] = levels
                    changes["filters"] = SubscriptionFilters(**kept)
                data = SubscriptionUpdate.model_validate(changes)
                _check_kept_grouping(shown, data)
                subscription, channel_name = subscriptions.update_subscription(
                    session, workspace_id, subscription_id, data, actor=actor, request=CLI_REQUEST
                )
                return SubscriptionView.of(subscription, channel_name)

        view = _run(action)
    _emit(view.model_dump(), as_json, lambda: [f"updated subscription {_subscription_line(view)}"])
    _security_warning(view)


@subscription_app.command("list")
def subscription_list(
    workspace: WorkspaceOpt,
    acting_as: AsOpt,
    webhook: Annotated[
        str | None, typer.Option("--webhook", help="Only this webhook's (id or channel name).")
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """The workspace's subscriptions, newest first."""

    def action(svc: Services) -> list[SubscriptionView]:
        with svc.db.transaction() as session:
            workspace_id, _actor = acting_admin(session, workspace, acting_as)
            webhook_id = (
                webhooks.find_webhook(session, workspace_id, webhook).id if webhook else None
            )
            views: list[SubscriptionView] = []
            page = Page(MAX_LIMIT, None)
            while True:
                rows, cursor = subscriptions.list_subscriptions(
                    session, workspace_id, page, webhook_id=webhook_id
                )
                views.extend(SubscriptionView.of(s, channel) for s, channel in rows)
                if cursor is None:
                    return views
                page = Page(MAX_LIMIT, views[-1].id)

    with command_errors():
        views = _run(action)
    _emit([v.model_dump() for v in views], as_json, lambda: [_subscription_line(v) for v in views])


def _subscription_line(view: SubscriptionView) -> str:
    filters = view.filters.model_dump(exclude={"security_levels"})
    narrowed = "; ".join(f"{k}={','.join(v)}" for k, v in filters.items() if v) or "any"
    state = "enabled " if view.enabled else "disabled"
    levels = view.filters.security_levels
    restricted = "any" if levels == "any" else ",".join(levels) or "none"
    return (
        f"{view.id}  {state}  {view.event_type:<16}  {view.channel_name}  filters: {narrowed}"
        f"  security levels: {restricted}{_grouping_text(view)}"
    )


def _grouping_text(view: SubscriptionView) -> str:
    """How the subscription groups its updates, when it does: "  combine: 30s", or
    "  digest: Daily at 09:00 (Europe/Berlin), next 2025-06-02T07:00:00Z"."""
    if view.digest != DIGEST_OFF:
        return f"  digest: {view.digest_label}, next {view.next_digest_at}"
    if view.combine != "off":
        return f"  combine: {view.combine}"
    return ""


@subscription_app.command("remove")
def subscription_remove(
    subscription_id: Annotated[str, typer.Argument(help="The subscription's id.")],
    workspace: WorkspaceOpt,
    acting_as: AsOpt,
) -> None:
    """Delete a subscription."""

    def action(svc: Services) -> None:
        with svc.db.transaction() as session:
            workspace_id, actor = acting_admin(session, workspace, acting_as)
            subscriptions.delete_subscription(
                session, workspace_id, subscription_id, actor=actor, request=CLI_REQUEST
            )

    with command_errors():
        _run(action)
    typer.echo(f"removed subscription {subscription_id}")
