"""The Microsoft Teams page: the Webhooks and Subscriptions tabs.

The views only translate between forms and the Teams service (teams/service.py); Test
Connection goes through the API's own handlers (teams/api.py), so a test from the page is the
test the API runs — same card, same client, same audit entry. Every form posts and redirects
(303) without JavaScript; HTMX swaps the Test Connection result and the Enabled switches in
place. Preview on Add/Edit Subscription (the API's preview, routing/preview.py) saves nothing:
it comes back as the form with what its settings would have sent below it, swapped in place by
HTMX. Grouping on that form (combining updates to an issue within a window, or a digest hourly
or daily at a time in a time zone) is checked by the form first, so that a wrong time or zone
is named by its own field, then by the service's models as the API checks it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Form, Query, Request
from pydantic import ValidationError
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response

from ticketmate.audit.http import actor_of, request_info
from ticketmate.pagination import MAX_LIMIT, Page, decode_cursor
from ticketmate.routing.preview import preview_days
from ticketmate.security.urls import URL_FAMILIES
from ticketmate.teams import api as teams_api
from ticketmate.teams import service
from ticketmate.teams.digest_schedule import (
    COMBINE_WINDOWS,
    HOURLY,
    ScheduleError,
    parse_schedule,
)
from ticketmate.teams.subscriptions import (
    DIGEST_OFF,
    FILTER_NAMES,
    SubscriptionCreate,
    SubscriptionFilters,
    SubscriptionUpdate,
    SubscriptionView,
)
from ticketmate.teams.webhooks import (
    STORM_SUGGESTED,
    TeamsError,
    WebhookCreate,
    WebhookUpdate,
    WebhookView,
    count_needing_new_url,
)
from ticketmate.web.forms import FormErrors, checkbox, join_values, split_values
from ticketmate.web.guard import AdminAction, AdminView, PageRoute, Svc
from ticketmate.web.labels import FILTER_LABELS, event_label, event_type_choices
from ticketmate.web.pages import AdminPage, fragment, is_htmx, page, redirect
from ticketmate.web.queries import filter_suggestions, webhook_choices

router = APIRouter(route_class=PageRoute, include_in_schema=False)

TEAMS = "/w/{slug}/admin/integrations/teams"
Text = Annotated[str, Form(max_length=4000)]
Cursor = Annotated[str | None, Query(max_length=128)]

# Form field names where they differ from the service's field names.
WEBHOOK_FIELDS: dict[str, str] = {}
StormSwitch = Annotated[str, Form(max_length=8)]
StormText = Annotated[str, Form(max_length=16)]
WEBHOOK_EDIT_FIELDS = {"url": "replace_url"}
SUBSCRIPTION_FIELDS = {
    **{f"filters.{name}": name for name in FILTER_NAMES},
    "filters.security_levels": "security_levels",
}


def _window_label(seconds: int) -> str:
    return f"{seconds} s" if seconds < 60 or seconds % 60 else f"{seconds // 60} min"


# Grouping on Add/Edit Subscription: the combining windows in the form's words, in the order
# the select offers them ("off" first: a card for each event).
COMBINE_LABELS: dict[str, str] = {
    "off": "Off",
    **{name: _window_label(seconds) for name, seconds in COMBINE_WINDOWS.items()},
}
DIGEST_CHOICES = ("off", "hourly", "daily")
DIGEST_FIELDS = frozenset({"digest", "digest_time", "digest_zone"})
DEFAULT_DIGEST_TIME = "09:00"
DEFAULT_DIGEST_ZONE = "UTC"
# Suggested in the time zone field (a datalist); any IANA name the server knows is accepted.
COMMON_TIME_ZONES = (
    "UTC",
    "Europe/London",
    "Europe/Dublin",
    "Europe/Lisbon",
    "Europe/Paris",
    "Europe/Berlin",
    "Europe/Amsterdam",
    "Europe/Brussels",
    "Europe/Zurich",
    "Europe/Vienna",
    "Europe/Madrid",
    "Europe/Rome",
    "Europe/Stockholm",
    "Europe/Oslo",
    "Europe/Copenhagen",
    "Europe/Warsaw",
    "Europe/Prague",
    "Europe/Helsinki",
    "Europe/Athens",
    "Europe/Bucharest",
    "Europe/Kyiv",
    "Europe/Istanbul",
    "Europe/Moscow",
    "Africa/Lagos",
    "Africa/Cairo",
    "Africa/Nairobi",
    "Africa/Johannesburg",
    "Asia/Dubai",
    "Asia/Karachi",
    "Asia/Kolkata",
    "Asia/Dhaka",
    "Asia/Bangkok",
    "Asia/Jakarta",
    "Asia/Singapore",
    "Asia/Shanghai",
    "Asia/Hong_Kong",
    "Asia/Taipei",
    "Asia/Manila",
    "Asia/Seoul",
    "Asia/Tokyo",
    "Australia/Perth",
    "Australia/Adelaide",
    "Australia/Brisbane",
    "Australia/Sydney",
    "Australia/Melbourne",
    "Pacific/Auckland",
    "Pacific/Honolulu",
    "America/Anchorage",
    "America/Los_Angeles",
    "America/Vancouver",
    "America/Phoenix",
    "America/Denver",
    "America/Chicago",
    "America/Mexico_City",
    "America/New_York",
    "America/Toronto",
    "America/Halifax",
    "America/Bogota",
    "America/Lima",
    "America/Santiago",
    "America/Sao_Paulo",
    "America/Argentina/Buenos_Aires",
)
_TIME_OF_DAY = re.compile(r"(\d{1,2}):(\d{2})(?::00)?")


def _page_of(cursor: str | None) -> Page:
    return Page(limit=MAX_LIMIT, after_id=decode_cursor(cursor) if cursor else None)


@router.get(TEAMS)
def teams_home(p: AdminView) -> Response:
    return redirect(f"{p.teams_url}/webhooks")


# -- Webhooks tab -------------------------------------------------------------------------------


@router.get(f"{TEAMS}/webhooks")
def webhooks_tab(request: Request, p: AdminView, svc: Svc, cursor: Cursor = None) -> Response:
    with svc.db.transaction() as session:
        rows, next_cursor = service.list_webhooks(session, p.workspace_id, _page_of(cursor))
        counts = service.count_subscriptions(session, [w.id for w in rows])
        webhooks = [WebhookView.of(w) for w in rows]
        # Over all the workspace's webhooks, not only this page's.
        needing_new_url = count_needing_new_url(session, p.workspace_id)
    return page(
        request,
        "teams/webhooks.html",
        p,
        tab="webhooks",
        webhooks=webhooks,
        counts=counts,
        needing_new_url=needing_new_url,
        url_families=URL_FAMILIES,
        next_cursor=next_cursor,
        cursor=cursor,
    )


@dataclass
class WebhookForm:
    channel_name: str = ""
    url: str = ""
    enabled: bool = True
    errors: FormErrors = field(default_factory=FormErrors)
    test: teams_api.ConnectionTestOut | None = None
    # The Replace URL failed its test: the form offers "Save anyway".
    offer_untested: bool = False
    # Storm control: the switch, and the threshold as typed (40 suggested while it is off).
    storm: bool = False
    storm_threshold: str = str(STORM_SUGGESTED)

    def with_storm(self, storm: str, storm_threshold: str) -> WebhookForm:
        self.storm = checkbox(storm)
        self.storm_threshold = storm_threshold.strip() or str(STORM_SUGGESTED)
        return self

    def storm_value(self) -> int | str | None:
        """What the API takes: null (off), or the number; text that is not one is passed on
        as typed, for the body's validation to name."""
        if not self.storm:
            return None
        text = self.storm_threshold
        return int(text) if text.isascii() and text.isdigit() and len(text) < 9 else text


def _webhook_form(
    request: Request,
    p: AdminPage,
    form: WebhookForm,
    webhook: WebhookView | None = None,
    status_code: int = 200,
) -> Response:
    return page(
        request,
        "teams/webhook_form.html",
        p,
        tab="webhooks",
        form=form,
        webhook=webhook,
        url_families=URL_FAMILIES,
        status_code=status_code,
    )


@router.get(f"{TEAMS}/webhooks/new")
def new_webhook(request: Request, p: AdminView) -> Response:
    return _webhook_form(request, p, WebhookForm())


@router.post(f"{TEAMS}/webhooks")
def create_webhook(
    request: Request,
    p: AdminAction,
    svc: Svc,
    channel_name: Text = "",
    url: Text = "",
    enabled: Annotated[str, Form(max_length=8)] = "",
    storm: StormSwitch = "",
    storm_threshold: StormText = "",
) -> Response:
    form = WebhookForm(channel_name, url, checkbox(enabled)).with_storm(storm, storm_threshold)
    try:
        data = WebhookCreate(
            channel_name=channel_name,
            url=url.strip(),
            enabled=form.enabled,
            storm_threshold=form.storm_value(),  # type: ignore[arg-type]  # validated here
        )
        with svc.db.transaction() as session:
            webhook = service.create_webhook(
                session,
                svc.keyring,
                p.workspace_id,
                data,
                allow_loopback=svc.settings.allow_loopback_webhooks,
                actor=actor_of(p.principal),
                request=request_info(request),
            )
            name, masked = webhook.channel_name, webhook.url_masked
    except ValidationError as exc:
        form.errors = FormErrors.of_validation(exc, WEBHOOK_FIELDS)
        return _webhook_form(request, p, form, status_code=422)
    except TeamsError as exc:
        form.errors = FormErrors.of_api_error(exc, WEBHOOK_FIELDS)
        return _webhook_form(request, p, form, status_code=exc.status_code)
    return redirect(
        f"{p.teams_url}/webhooks",
        f"Webhook “{name}” saved. Its URL is stored encrypted and shown only masked ({masked}).",
    )


async def _test_url(
    request: Request, p: AdminPage, svc: Svc, url: str
) -> teams_api.ConnectionTestOut:
    """Test Connection for a URL typed in a form, through the API's handler."""
    if not url.strip():
        return _failed("Enter the Webhook URL first, then test it.")
    try:
        body = teams_api.WebhookTestIn(url=url.strip())
    except ValidationError:
        return _failed("This URL is too long to be a Teams webhook URL.")
    try:
        return await teams_api.run_url_test(body, p.ctx, svc, request)
    except TeamsError as exc:
        return _failed(exc.message)


def _failed(message: str) -> teams_api.ConnectionTestOut:
    return teams_api.ConnectionTestOut(ok=False, status_code=None, latency_ms=0, message=message)


def _test_answer(request: Request, p: AdminPage, result: teams_api.ConnectionTestOut) -> Response:
    return fragment(request, "teams/_test_result.html", p, test=result)


@router.post(f"{TEAMS}/webhooks/test")
async def run_test_of_new_webhook(
    request: Request,
    p: AdminAction,
    svc: Svc,
    channel_name: Text = "",
    url: Text = "",
    enabled: Annotated[str, Form(max_length=8)] = "",
    storm: StormSwitch = "",
    storm_threshold: StormText = "",
) -> Response:
    """Test Connection on the Add Webhook form: the sample card to the URL typed, unsaved."""
    result = await _test_url(request, p, svc, url)
    if is_htmx(request):
        return _test_answer(request, p, result)
    # Without JavaScript the form comes back as it was typed, with the result under it.
    form = WebhookForm(channel_name, url, checkbox(enabled), test=result)
    form.with_storm(storm, storm_threshold)
    return _webhook_form(request, p, form)


def _load_webhook(svc: Svc, p: AdminPage, webhook_id: str) -> WebhookView:
    with svc.db.transaction() as session:
        return WebhookView.of(service.get_webhook(session, p.workspace_id, webhook_id))


@router.get(f"{TEAMS}/webhooks/{{webhook_id}}/edit")
def edit_webhook(request: Request, p: AdminView, svc: Svc, webhook_id: str) -> Response:
    webhook = _load_webhook(svc, p, webhook_id)
    form = WebhookForm(webhook.channel_name, "", webhook.enabled)
    if webhook.storm_threshold is not None:
        form.with_storm("on", str(webhook.storm_threshold))
    return _webhook_form(request, p, form, webhook)


URL_NOT_REPLACED = (
    "Teams did not accept the sample card at this URL, so the saved URL was kept. "
    "Check the URL and save again, or click Save anyway to replace it untested."
)


@router.post(f"{TEAMS}/webhooks/{{webhook_id}}")
async def update_webhook(
    request: Request,
    p: AdminAction,
    svc: Svc,
    webhook_id: str,
    channel_name: Text = "",
    replace_url: Text = "",
    enabled: Annotated[str, Form(max_length=8)] = "",
    save_untested: Annotated[str, Form(max_length=8)] = "",
    storm: StormSwitch = "",
    storm_threshold: StormText = "",
) -> Response:
    """Save the edit form. A Replace URL is tested with the sample card first, through the
    API's own PATCH, and saved only when Teams accepts it, or after "Save anyway"."""
    webhook = await run_in_threadpool(_load_webhook, svc, p, webhook_id)
    form = WebhookForm(channel_name, replace_url, checkbox(enabled))
    form.with_storm(storm, storm_threshold)
    try:
        # An empty "Replace URL" keeps the saved URL: it is never shown, so never re-sent.
        changes: dict[str, Any] = {
            "channel_name": channel_name,
            "enabled": form.enabled,
            "storm_threshold": form.storm_value(),
        }
        if replace_url.strip():
            changes["url"] = replace_url.strip()
            changes["save_untested"] = checkbox(save_untested)
        data = WebhookUpdate(**changes)
        saved, tested = await teams_api.change_webhook(svc, p.ctx, request, webhook_id, data)
    except ValidationError as exc:
        form.errors = FormErrors.of_validation(exc, WEBHOOK_EDIT_FIELDS)
        return _webhook_form(request, p, form, webhook, status_code=422)
    except teams_api.UrlTestFailed as exc:
        form.test = teams_api.answer_of(exc.result)
        form.errors = FormErrors(fields={"replace_url": URL_NOT_REPLACED})
        form.offer_untested = True
        return _webhook_form(request, p, form, webhook, status_code=exc.status_code)
    except TeamsError as exc:
        if exc.status_code == 404:
            raise
        form.errors = FormErrors.of_api_error(exc, WEBHOOK_EDIT_FIELDS)
        return _webhook_form(request, p, form, webhook, status_code=exc.status_code)
    message = f"Webhook “{saved.channel_name}” saved."
    if tested is True:
        message += " Teams accepted the sample card at the new URL."
    elif tested is False:
        message += " The new URL was saved without a test: use Test to check it."
    return redirect(f"{p.teams_url}/webhooks", message)


@router.post(f"{TEAMS}/webhooks/{{webhook_id}}/test")
async def run_test_of_saved_webhook(
    request: Request,
    p: AdminAction,
    svc: Svc,
    webhook_id: str,
    channel_name: Text = "",
    replace_url: Text = "",
    enabled: Annotated[str, Form(max_length=8)] = "",
    origin: Annotated[str, Form(max_length=8)] = "form",
    storm: StormSwitch = "",
    storm_threshold: StormText = "",
) -> Response:
    """Test Connection on a saved webhook: its saved URL, or the "Replace URL" typed."""
    webhook = await run_in_threadpool(_load_webhook, svc, p, webhook_id)
    if replace_url.strip():
        result = await _test_url(request, p, svc, replace_url)
    else:
        try:
            result = await teams_api.run_webhook_test(webhook_id, p.ctx, svc, request)
        except TeamsError as exc:
            result = _failed(exc.message)
    if is_htmx(request):
        return _test_answer(request, p, result)
    if origin == "list":
        kind = "ok" if result.ok else "error"
        return redirect(
            f"{p.teams_url}/webhooks", f"Test of “{webhook.channel_name}”: {result.message}", kind
        )
    form = WebhookForm(channel_name, replace_url, checkbox(enabled), test=result)
    form.with_storm(storm, storm_threshold)
    return _webhook_form(request, p, form, webhook)


@router.post(f"{TEAMS}/webhooks/{{webhook_id}}/enabled")
def set_webhook_enabled(
    request: Request,
    p: AdminAction,
    svc: Svc,
    webhook_id: str,
    enabled: Annotated[str, Form(max_length=8)] = "",
) -> Response:
    """The Enabled switch in the table."""
    with svc.db.transaction() as session:
        saved = service.update_webhook(
            session,
            svc.keyring,
            p.workspace_id,
            webhook_id,
            WebhookUpdate(enabled=checkbox(enabled)),
            allow_loopback=svc.settings.allow_loopback_webhooks,
            actor=actor_of(p.principal),
            request=request_info(request),
        )
        view = WebhookView.of(saved)
    state = "enabled" if view.enabled else "disabled"
    return _switched(
        request,
        p,
        f"{p.teams_url}/webhooks",
        f"{p.teams_url}/webhooks/{view.id}/enabled",
        view.enabled,
        label=f"Enabled: {view.channel_name}",
        message=f"Webhook “{view.channel_name}” {state}.",
    )


def _switched(
    request: Request,
    p: AdminPage,
    back: str,
    action: str,
    enabled: bool,
    *,
    label: str,
    message: str,
) -> Response:
    """After an Enabled switch: the switch itself for HTMX, else back to the table."""
    if is_htmx(request):
        return fragment(
            request, "teams/_switch.html", p, action=action, enabled=enabled, label=label
        )
    return redirect(back, message)


def _subscription_views(
    svc: Svc, p: AdminPage, webhook_id: str
) -> tuple[WebhookView, list[SubscriptionView]]:
    with svc.db.transaction() as session:
        webhook = service.get_webhook(session, p.workspace_id, webhook_id)
        using = service.subscriptions_of_webhook(session, webhook.id)
        views = [SubscriptionView.of(s, webhook.channel_name) for s in using]
        return WebhookView.of(webhook), views


@router.get(f"{TEAMS}/webhooks/{{webhook_id}}/delete")
def confirm_delete_webhook(request: Request, p: AdminView, svc: Svc, webhook_id: str) -> Response:
    """The confirmation, naming the subscriptions that would be deleted with the webhook."""
    webhook, subscriptions = _subscription_views(svc, p, webhook_id)
    return page(
        request,
        "teams/webhook_delete.html",
        p,
        tab="webhooks",
        webhook=webhook,
        subscriptions=subscriptions,
    )


@router.post(f"{TEAMS}/webhooks/{{webhook_id}}/delete")
def delete_webhook(request: Request, p: AdminAction, svc: Svc, webhook_id: str) -> Response:
    with svc.db.transaction() as session:
        webhook = service.get_webhook(session, p.workspace_id, webhook_id)
        name = webhook.channel_name
        # The person saw the subscriptions that go with it on the confirmation page.
        gone = service.delete_webhook(
            session,
            p.workspace_id,
            webhook_id,
            cascade=True,
            actor=actor_of(p.principal),
            request=request_info(request),
        )
    also = f" with its {len(gone)} subscription(s)" if gone else ""
    return redirect(f"{p.teams_url}/webhooks", f"Webhook “{name}” deleted{also}.")


# -- Subscriptions tab --------------------------------------------------------------------------


def filters_summary(view: SubscriptionView) -> list[tuple[str, str]]:
    """(label, "A, B") for each filter that narrows the subscription."""
    stored = view.filters.model_dump()
    return [(FILTER_LABELS[n], ", ".join(stored[n])) for n in FILTER_NAMES if stored[n]]


def combine_summary(view: SubscriptionView) -> str | None:
    """ "Combines updates within 30 s", None when the subscription does not combine."""
    if view.combine == "off":
        return None
    return f"Combines updates within {COMBINE_LABELS.get(view.combine) or view.combine}"


def digest_summary(view: SubscriptionView) -> str | None:
    """ "Daily digest at 09:00 (Europe/Berlin)", "Hourly digest, on the hour"; None: no digest."""
    if view.digest == DIGEST_OFF:
        return None
    try:
        schedule = parse_schedule(view.digest)
    except ScheduleError:
        return f"Digest: {view.digest}"
    if schedule.hourly or schedule.at is None:
        return "Hourly digest, on the hour"
    return f"Daily digest at {schedule.at:%H:%M} ({schedule.zone})"


def security_summary(view: SubscriptionView) -> str | None:
    """The restricted issues a subscription may post ("Staff only, Developers" or "any level"),
    None when it posts none."""
    levels = view.filters.security_levels
    if levels == "any":
        return "any level"
    return ", ".join(levels) or None


@router.get(f"{TEAMS}/subscriptions")
def subscriptions_tab(request: Request, p: AdminView, svc: Svc, cursor: Cursor = None) -> Response:
    with svc.db.transaction() as session:
        rows, next_cursor = service.list_subscriptions(session, p.workspace_id, _page_of(cursor))
        subscriptions = [SubscriptionView.of(s, channel) for s, channel in rows]
        has_webhooks = bool(webhook_choices(session, p.workspace_id))
    return page(
        request,
        "teams/subscriptions.html",
        p,
        tab="subscriptions",
        subscriptions=subscriptions,
        summaries={s.id: filters_summary(s) for s in subscriptions},
        restricted={s.id: security_summary(s) for s in subscriptions},
        combining={s.id: combine_summary(s) for s in subscriptions},
        digests={s.id: digest_summary(s) for s in subscriptions},
        has_webhooks=has_webhooks,
        next_cursor=next_cursor,
        cursor=cursor,
    )


@dataclass
class SubscriptionForm:
    event_type: str = ""
    webhook_id: str = ""
    enabled: bool = True
    filters: dict[str, str] = field(default_factory=lambda: dict.fromkeys(FILTER_NAMES, ""))
    errors: FormErrors = field(default_factory=FormErrors)
    # "Security levels": none (the default: no restricted issue is posted), the levels typed
    # in `security_levels`, or any level.
    security_choice: str = "none"
    security_levels: str = ""
    # Posted by the Preview button: show what these settings would send, save nothing.
    preview: bool = False
    # Grouping: a combining window (COMBINE_LABELS), or a digest: off, hourly, or daily at a
    # time of day (HH:MM) in a time zone, as typed.
    combine: str = "off"
    digest_choice: str = "off"
    digest_time: str = DEFAULT_DIGEST_TIME
    digest_zone: str = DEFAULT_DIGEST_ZONE

    def digest(self) -> str:
        """The digest as the service takes it: "off", "hourly" or "daily@HH:MM/Zone"."""
        if self.digest_choice == "hourly":
            return HOURLY
        if self.digest_choice == "daily":
            at = _time_of_day(self.digest_time) or self.digest_time.strip()
            return f"daily@{at}/{self.digest_zone.strip()}"
        return DIGEST_OFF

    def with_grouping_of(self, view: SubscriptionView) -> SubscriptionForm:
        """The form's grouping fields as the subscription has them saved."""
        self.combine = view.combine
        if view.digest != DIGEST_OFF:
            schedule = parse_schedule(view.digest)
            if schedule.hourly or schedule.at is None:
                self.digest_choice = "hourly"
            else:
                self.digest_choice = "daily"
                self.digest_time = f"{schedule.at:%H:%M}"
                self.digest_zone = schedule.zone or DEFAULT_DIGEST_ZONE
        return self


SECURITY_CHOICES = ("none", "levels", "any")


def _time_of_day(text: str) -> str | None:
    """ "9:00", "09:00" or "09:00:00" → "09:00"; None when it is not a time of day."""
    found = _TIME_OF_DAY.fullmatch(text.strip())
    if found is None:
        return None
    hour, minute = int(found[1]), int(found[2])
    if hour > 23 or minute > 59:
        return None
    return f"{hour:02d}:{minute:02d}"


def _known_zone(zone: str) -> bool:
    try:
        parse_schedule(f"daily@00:00/{zone}")
    except ScheduleError:
        return False
    return True


GROUPING_BOTH = (
    "Choose either combining or a digest, not both: a digest already gathers every update "
    "into one card."
)


def _grouping_problems(form: SubscriptionForm) -> dict[str, str]:
    """What is wrong with the combining window and the digest as posted, by form field."""
    problems: dict[str, str] = {}
    if form.combine not in COMBINE_LABELS:
        problems["combine"] = f"Choose {', '.join(COMBINE_LABELS.values())}."
    if form.digest_choice not in DIGEST_CHOICES:
        problems["digest"] = "Choose Off, Hourly or Daily."
        return problems
    if form.digest_choice == "daily":
        if _time_of_day(form.digest_time) is None:
            problems["digest_time"] = "Enter the time of day as HH:MM (24-hour), e.g. 09:00."
        zone = form.digest_zone.strip()
        if not _known_zone(zone):
            problems["digest_zone"] = (
                f"“{zone[:60]}” is not a time zone this server knows: use an IANA name "
                "such as Europe/Berlin or UTC."
            )
    if form.digest_choice != "off" and form.combine != "off" and "combine" not in problems:
        problems["digest"] = GROUPING_BOTH
    return problems


def _form_problems(form: SubscriptionForm) -> dict[str, str]:
    """The form's own checks (Security levels, grouping), by field; empty when it passes."""
    problems = _grouping_problems(form)
    security = _security_problem(form)
    if security is not None:
        problems["security_levels"] = security
    return problems


def _security_problem(form: SubscriptionForm) -> str | None:
    """What is wrong with the Security levels choice as posted, in the person's words."""
    typed = split_values(form.security_levels)
    if form.security_choice not in SECURITY_CHOICES:
        return "Choose None, These levels or Any level."
    if form.security_choice == "levels" and not typed:
        return "Enter the names of the security levels to post, or choose None."
    if form.security_choice == "none" and typed:
        # Typing names is not an opt-in: the choice is, so nothing restricted goes by mistake.
        return "To post issues of these levels, choose These levels; to post none, empty the list."
    return None


def _subscription_form(
    request: Request,
    p: AdminPage,
    svc: Svc,
    form: SubscriptionForm,
    subscription: SubscriptionView | None = None,
    status_code: int = 200,
    preview: teams_api.SubscriptionPreviewOut | None = None,
) -> Response:
    with svc.db.transaction() as session:
        webhooks = webhook_choices(session, p.workspace_id)
        suggestions = filter_suggestions(session, p.workspace_id)
    return page(
        request,
        "teams/subscription_form.html",
        p,
        tab="subscriptions",
        form=form,
        subscription=subscription,
        preview=preview,
        preview_days=preview_days(svc.settings.retention_days),
        webhooks=webhooks,
        event_types=event_type_choices(),
        suggestions=suggestions,
        filter_names=FILTER_NAMES,
        combine_choices=COMBINE_LABELS,
        time_zones=COMMON_TIME_ZONES,
        status_code=status_code,
    )


@router.get(f"{TEAMS}/subscriptions/new")
def new_subscription(
    request: Request,
    p: AdminView,
    svc: Svc,
    webhook_id: Annotated[str, Query(max_length=64)] = "",
) -> Response:
    return _subscription_form(request, p, svc, SubscriptionForm(webhook_id=webhook_id))


def _subscription_errors(exc: ValidationError | None, form: SubscriptionForm) -> FormErrors:
    errors = FormErrors.of_validation(exc, SUBSCRIPTION_FIELDS) if exc else FormErrors()
    # An untouched select says so in words, not as the validator's list of known values.
    if not form.event_type:
        errors.fields["event_type"] = "Select an event type."
    if not form.webhook_id:
        errors.fields["webhook_id"] = "Select a webhook."
    # An error of the body as a whole (both ways of grouping at once) belongs to no field,
    # and the model's word on the digest to all three of its fields: the form's own checks
    # say them by the field they concern.
    whole = errors.fields.pop("body", None)
    problems = _form_problems(form)
    if problems.keys() & DIGEST_FIELDS:
        errors.fields.pop("digest", None)
    errors.fields.update(problems)
    if whole and not errors:
        errors.general.append(whole)
    return errors


FilterField = Annotated[str, Form(max_length=30000)]


def posted_subscription(
    event_type: Text = "",
    webhook_id: Text = "",
    enabled: Annotated[str, Form(max_length=8)] = "",
    projects: FilterField = "",
    issue_types: FilterField = "",
    statuses: FilterField = "",
    priorities: FilterField = "",
    labels: FilterField = "",
    components: FilterField = "",
    security_choice: Annotated[str, Form(max_length=16)] = "none",
    security_levels: FilterField = "",
    preview: Annotated[str, Form(max_length=8)] = "",
    combine: Text = "off",
    digest_choice: Text = "off",
    digest_time: Text = "",
    digest_zone: Text = "",
) -> SubscriptionForm:
    """The Add/Edit Subscription form as posted, the filter fields as typed."""
    typed = (projects, issue_types, statuses, priorities, labels, components)
    filters = dict(zip(FILTER_NAMES, typed, strict=True))
    return SubscriptionForm(
        event_type,
        webhook_id,
        checkbox(enabled),
        filters,
        security_choice=security_choice,
        security_levels=security_levels,
        preview=bool(preview),
        combine=combine.strip() or "off",
        digest_choice=digest_choice.strip() or "off",
        digest_time=digest_time.strip(),
        # An empty time zone is the default one, UTC (an empty field is not posted apart
        # from a missing one).
        digest_zone=digest_zone.strip() or DEFAULT_DIGEST_ZONE,
    )


PostedSubscription = Annotated[SubscriptionForm, Depends(posted_subscription)]


def _filters_of(form: SubscriptionForm) -> SubscriptionFilters:
    levels: list[str] | Literal["any"] | None = None
    if form.security_choice == "any":
        levels = "any"
    elif form.security_choice == "levels":
        levels = split_values(form.security_levels)
    return SubscriptionFilters(
        **{name: split_values(form.filters[name]) for name in FILTER_NAMES},
        security_levels=levels,
    )


class _Refused(Exception):
    """The form's own checks (Security levels, grouping) failed; its errors say why."""


@router.post(f"{TEAMS}/subscriptions")
def create_subscription(
    request: Request, p: AdminAction, svc: Svc, form: PostedSubscription
) -> Response:
    if form.preview:
        return _previewed(request, p, svc, form)
    try:
        data = SubscriptionCreate(
            event_type=form.event_type,
            webhook_id=form.webhook_id,
            enabled=form.enabled,
            filters=_filters_of(form),
            combine=form.combine,  # type: ignore[arg-type]  # validated by the model
            digest=form.digest(),
        )
        if _form_problems(form):
            raise _Refused
        with svc.db.transaction() as session:
            subscription, channel = service.create_subscription(
                session,
                p.workspace_id,
                data,
                actor=actor_of(p.principal),
                request=request_info(request),
            )
            label = event_label(subscription.event_type)
    except (ValidationError, _Refused) as exc:
        form.errors = _subscription_errors(exc if isinstance(exc, ValidationError) else None, form)
        return _subscription_form(request, p, svc, form, status_code=422)
    except TeamsError as exc:
        form.errors = FormErrors.of_api_error(exc, SUBSCRIPTION_FIELDS)
        return _subscription_form(request, p, svc, form, status_code=exc.status_code)
    return redirect(
        f"{p.teams_url}/subscriptions", f"Subscription saved: {label} events go to “{channel}”."
    )


def _previewed(
    request: Request,
    p: AdminPage,
    svc: Svc,
    form: SubscriptionForm,
    subscription: SubscriptionView | None = None,
) -> Response:
    """The form as posted, with what its settings would have sent below it (the API's own
    preview); nothing is saved. Invalid settings show their errors as Save shows them."""
    try:
        data = SubscriptionCreate(
            event_type=form.event_type,
            webhook_id=form.webhook_id,
            enabled=form.enabled,
            filters=_filters_of(form),
            combine=form.combine,  # type: ignore[arg-type]  # validated by the model
            digest=form.digest(),
        )
        if _form_problems(form):
            raise _Refused
        result = teams_api.run_subscription_preview(data, p.ctx, svc)
    except (ValidationError, _Refused) as exc:
        form.errors = _subscription_errors(exc if isinstance(exc, ValidationError) else None, form)
        return _subscription_form(request, p, svc, form, subscription, status_code=422)
    except TeamsError as exc:
        if exc.status_code == 404:
            raise
        form.errors = FormErrors.of_api_error(exc, SUBSCRIPTION_FIELDS)
        return _subscription_form(request, p, svc, form, subscription, status_code=exc.status_code)
    return _subscription_form(request, p, svc, form, subscription, preview=result)


# Registered before `/subscriptions/{subscription_id}`, which would otherwise take "preview"
# for a subscription's id.
@router.post(f"{TEAMS}/subscriptions/preview")
def preview_new_subscription(
    request: Request, p: AdminAction, svc: Svc, form: PostedSubscription
) -> Response:
    """Preview on Add Subscription (HTMX swaps the form and its preview; without JavaScript
    the page comes back whole)."""
    return _previewed(request, p, svc, form)


@router.post(f"{TEAMS}/subscriptions/{{subscription_id}}/preview")
def preview_subscription_change(
    request: Request, p: AdminAction, svc: Svc, subscription_id: str, form: PostedSubscription
) -> Response:
    """Preview on Edit Subscription: the settings as typed, not as saved."""
    return _previewed(request, p, svc, form, _load_subscription(svc, p, subscription_id))


def _load_subscription(svc: Svc, p: AdminPage, subscription_id: str) -> SubscriptionView:
    with svc.db.transaction() as session:
        subscription = service.get_subscription(session, p.workspace_id, subscription_id)
        return SubscriptionView.of(subscription, service.channel_name_of(session, subscription))


@router.get(f"{TEAMS}/subscriptions/{{subscription_id}}/edit")
def edit_subscription(request: Request, p: AdminView, svc: Svc, subscription_id: str) -> Response:
    view = _load_subscription(svc, p, subscription_id)
    stored = view.filters.model_dump()
    levels = view.filters.security_levels
    form = SubscriptionForm(
        view.event_type,
        view.webhook_id,
        view.enabled,
        {name: join_values(stored[name]) for name in FILTER_NAMES},
        security_choice="any" if levels == "any" else "levels" if levels else "none",
        security_levels="" if levels == "any" else join_values(levels),
    ).with_grouping_of(view)
    return _subscription_form(request, p, svc, form, view)


@router.post(f"{TEAMS}/subscriptions/{{subscription_id}}")
def update_subscription(
    request: Request, p: AdminAction, svc: Svc, subscription_id: str, form: PostedSubscription
) -> Response:
    view = _load_subscription(svc, p, subscription_id)
    if form.preview:
        return _previewed(request, p, svc, form, view)
    try:
        data = SubscriptionUpdate(
            event_type=form.event_type,
            webhook_id=form.webhook_id,
            enabled=form.enabled,
            filters=_filters_of(form),
            combine=form.combine,  # type: ignore[arg-type]  # validated by the model
            digest=form.digest(),
        )
        if _form_problems(form):
            raise _Refused
        with svc.db.transaction() as session:
            service.update_subscription(
                session,
                p.workspace_id,
                subscription_id,
                data,
                actor=actor_of(p.principal),
                request=request_info(request),
            )
    except (ValidationError, _Refused) as exc:
        form.errors = _subscription_errors(exc if isinstance(exc, ValidationError) else None, form)
        return _subscription_form(request, p, svc, form, view, status_code=422)
    except TeamsError as exc:
        if exc.status_code == 404:
            raise
        form.errors = FormErrors.of_api_error(exc, SUBSCRIPTION_FIELDS)
        return _subscription_form(request, p, svc, form, view, status_code=exc.status_code)
    return redirect(f"{p.teams_url}/subscriptions", "Subscription saved.")


@router.post(f"{TEAMS}/subscriptions/{{subscription_id}}/enabled")
def set_subscription_enabled(
    request: Request,
    p: AdminAction,
    svc: Svc,
    subscription_id: str,
    enabled: Annotated[str, Form(max_length=8)] = "",
) -> Response:
    with svc.db.transaction() as session:
        subscription, channel = service.update_subscription(
            session,
            p.workspace_id,
            subscription_id,
            SubscriptionUpdate(enabled=checkbox(enabled)),
            actor=actor_of(p.principal),
            request=request_info(request),
        )
        view = SubscriptionView.of(subscription, channel)
    state = "enabled" if view.enabled else "disabled"
    return _switched(
        request,
        p,
        f"{p.teams_url}/subscriptions",
        f"{p.teams_url}/subscriptions/{view.id}/enabled",
        view.enabled,
        label=f"Enabled: {view.event_label} to {view.channel_name}",
        message=f"Subscription {state}.",
    )


@router.post(f"{TEAMS}/subscriptions/{{subscription_id}}/delete")
def delete_subscription(
    request: Request,
    p: AdminAction,
    svc: Svc,
    subscription_id: str,
    confirmed: Annotated[str, Form(max_length=8)] = "",
) -> Response:
    view = _load_subscription(svc, p, subscription_id)
    what = f"{view.event_label} events to “{view.channel_name}”"
    if confirmed != "1":
        return page(
            request,
            "confirm.html",
            p,
            title="Delete this subscription?",
            message=f"{what} will no longer be sent to Teams.",
            action=f"{p.teams_url}/subscriptions/{view.id}/delete",
            fields={},
            button="Delete subscription",
            cancel=f"{p.teams_url}/subscriptions",
        )
    with svc.db.transaction() as session:
        service.delete_subscription(
            session,
            p.workspace_id,
            subscription_id,
            actor=actor_of(p.principal),
            request=request_info(request),
        )
    return redirect(f"{p.teams_url}/subscriptions", f"Subscription deleted: {what}.")
