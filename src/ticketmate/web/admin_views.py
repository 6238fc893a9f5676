"""Admin > Integrations: the Microsoft Teams card and the Jira card (URL, secret, ingest token,
the Jira base URL that Open in Jira links are pinned to, and whether comments on issues whose
security level is unknown are withheld).

This module's `router` also carries the other admin pages (Teams, Delivery Log, Audit Log) and,
last, a catch-all so that every address under /w/{slug}/ answers as an admin page does: the
sign-in page, 404 for non-members, 403 for members who are not administrators.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Form, Query, Request
from pydantic import ValidationError
from starlette.responses import Response

from ticketmate.jira import api as jira_api
from ticketmate.security.auth import load_workspace
from ticketmate.web.audit_views import router as audit_pages
from ticketmate.web.delivery_views import router as delivery_pages
from ticketmate.web.forms import FormErrors, checkbox
from ticketmate.web.guard import AdminAction, AdminView, PageRoute, Svc, not_found
from ticketmate.web.pages import AdminPage, fragment, is_htmx, page, redirect
from ticketmate.web.queries import teams_status
from ticketmate.web.teams_views import router as teams_pages
from ticketmate.workspaces.service import jira_webhook_url

router = APIRouter(route_class=PageRoute, include_in_schema=False)

Which = Literal["secret", "ingest_token"]
WHICH_LABELS = {"secret": "secret", "ingest_token": "ingest token"}


@router.get("/w/{slug}")
@router.get("/w/{slug}/admin")
def workspace_home(p: AdminView) -> Response:
    return redirect(p.integrations_url)


def _jira_card_context(
    svc: Svc, p: AdminPage, site_form: tuple[str, FormErrors] | None = None
) -> dict[str, Any]:
    """What the Jira card shows besides the credentials: the URL and the Jira base URL form
    (with what was typed and its error, after a refused submission)."""
    workspace = load_workspace(svc, p.ctx)
    typed, errors = site_form or (workspace.jira_base_url or "", FormErrors())
    return {
        "jira_url": jira_webhook_url(svc.settings.base_url, workspace),
        "jira_site": workspace.jira_base_url,
        "site_value": typed,
        "site_errors": errors,
        "withhold_unknown": workspace.withhold_unknown_security,
    }


def _jira_card(
    request: Request,
    svc: Svc,
    p: AdminPage,
    *,
    revealed: dict[str, str] | None = None,
    notice: str | None = None,
    site_form: tuple[str, FormErrors] | None = None,
    status_code: int = 200,
) -> Response:
    """The Jira card alone, for HTMX to swap in."""
    return fragment(
        request,
        "_jira_card.html",
        p,
        status_code=status_code,
        revealed=revealed or {},
        notice=notice,
        **_jira_card_context(svc, p, site_form),
    )


def _integrations(
    request: Request,
    svc: Svc,
    p: AdminPage,
    revealed: dict[str, str] | None = None,
    *,
    site_form: tuple[str, FormErrors] | None = None,
    status_code: int = 200,
) -> Response:
    with svc.db.transaction() as session:
        status = teams_status(session, p.workspace_id)
    return page(
        request,
        "integrations.html",
        p,
        status_code=status_code,
        teams=status,
        revealed=revealed or {},
        notice=None,
        **_jira_card_context(svc, p, site_form),
    )


@router.get("/w/{slug}/admin/integrations")
def integrations(request: Request, p: AdminView, svc: Svc) -> Response:
    return _integrations(request, svc, p)


@router.get("/w/{slug}/admin/integrations/jira/reveal")
def reveal_jira_credential(
    request: Request, p: AdminView, svc: Svc, which: Annotated[Which, Query()]
) -> Response:
    """The secret or ingest token in clear, for the person who clicked Reveal (never cached).

    HTMX swaps the value into the Jira card; without JavaScript the whole page comes back
    with the value shown.
    """
    connection = jira_api.get_jira_connection(p.ctx, svc)
    value = connection.secret if which == "secret" else connection.ingest_token
    if is_htmx(request):
        return fragment(request, "_jira_value.html", p, which=which, value=value)
    return _integrations(request, svc, p, revealed={which: value})


@router.post("/w/{slug}/admin/integrations/jira/regenerate")
def regenerate_jira_credential(
    request: Request,
    p: AdminAction,
    svc: Svc,
    which: Annotated[Which, Form()],
    confirmed: Annotated[str, Form(max_length=8)] = "",
) -> Response:
    label = WHICH_LABELS[which]
    if confirmed != "1":
        # Reached without JavaScript (no confirm dialog ran): ask on a page of its own.
        return page(
            request,
            "confirm.html",
            p,
            title=f"Regenerate the Jira {label}?",
            message=f"The current {label} stops working at once: Jira requests that use it "
            f"are refused until you enter the new {label} in Jira.",
            action=f"{p.integrations_url}/jira/regenerate",
            fields={"which": which},
            button=f"Regenerate {label}",
            cancel=p.integrations_url,
        )
    connection = jira_api.regenerate_jira_credential(
        p.ctx, svc, jira_api.RegenerateIn(which=which), request
    )
    notice = f"New {label} created; the old one no longer works. Enter it in Jira now."
    if is_htmx(request):
        value = connection.secret if which == "secret" else connection.ingest_token
        return _jira_card(request, svc, p, revealed={which: value}, notice=notice)
    return redirect(f"{p.integrations_url}#jira", f"{notice} Click Reveal to copy it.")


@router.post("/w/{slug}/admin/integrations/jira/base-url")
def save_jira_base_url(
    request: Request,
    p: AdminAction,
    svc: Svc,
    jira_base_url: Annotated[str, Form(max_length=2000)] = "",
) -> Response:
    """Set, change or (empty) clear the Jira base URL, through the API's handler."""
    typed = jira_base_url.strip()
    try:
        body = jira_api.JiraSiteIn(jira_base_url=typed or None)
    except ValidationError as exc:
        refused = (typed, FormErrors.of_validation(exc, {}))
        if is_htmx(request):
            return _jira_card(request, svc, p, site_form=refused, status_code=422)
        return _integrations(request, svc, p, site_form=refused, status_code=422)
    site = jira_api.put_jira_site(p.ctx, svc, body, request).jira_base_url
    notice = (
        f"Jira base URL saved: Open in Jira links go only to {site}."
        if site
        else "Jira base URL cleared: the next event signed with the secret sets it again."
    )
    if is_htmx(request):
        return _jira_card(request, svc, p, notice=notice)
    return redirect(f"{p.integrations_url}#jira", notice)


@router.post("/w/{slug}/admin/integrations/jira/security")
def save_jira_security(
    request: Request,
    p: AdminAction,
    svc: Svc,
    withhold_unknown_levels: Annotated[str, Form(max_length=8)] = "",
) -> Response:
    """ "Withhold comments on issues whose security level is unknown", through the API's
    handler (audit-logged as jira.security.updated when it changes)."""
    withhold = checkbox(withhold_unknown_levels)
    body = jira_api.JiraSecurityIn(withhold_unknown_levels=withhold)
    jira_api.put_jira_security(p.ctx, svc, body, request)
    notice = (
        "Saved: comments on issues whose security level is unknown are withheld."
        if withhold
        else "Saved: comments on issues whose security level is unknown are posted."
    )
    if is_htmx(request):
        return _jira_card(request, svc, p, notice=notice)
    return redirect(f"{p.integrations_url}#jira", notice)


router.include_router(teams_pages)
router.include_router(delivery_pages)
router.include_router(audit_pages)


# Last: any other address under a workspace is an admin page that does not exist, after the
# same checks as the others (so a member sees the 403 page on every admin URL).
@router.api_route("/w/{slug}/{rest:path}", methods=["GET", "POST"])
def unknown_admin_page(request: Request, p: AdminView, slug: str) -> Response:
    raise not_found(request, p.principal, slug)
