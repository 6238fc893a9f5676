"""Sign-in and sign-out pages, with CSRF protection and the per-e-mail lock-out."""

from __future__ import annotations

import logging
import secrets
from typing import Annotated

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import RedirectResponse
from sqlalchemy.orm import Session
from starlette.responses import Response

from ticketmate.accounts import service as accounts
from ticketmate.audit.http import request_info
from ticketmate.audit.service import Actor, record
from ticketmate.models import User
from ticketmate.security.auth import SESSION_COOKIE, Principal, resolve_principal
from ticketmate.security.tokens import same
from ticketmate.state import Services, services
from ticketmate.web.templating import render

log = logging.getLogger(__name__)
router = APIRouter(include_in_schema=False)

LOGIN_CSRF_COOKIE = "tm_login_csrf"


def _safe_next(target: str | None) -> str:
    # Only same-site paths: an open redirect after sign-in would help phishing.
    if target and target.startswith("/") and not target.startswith("//") and "\\" not in target:
        return target
    return "/"


def _login_page(
    request: Request, *, error: str | None = None, email: str = "", status: int = 200
) -> Response:
    csrf = secrets.token_urlsafe(32)
    response = render(
        request,
        "login.html",
        status_code=status,
        csrf_token=csrf,
        error=error,
        email=email,
        next=_safe_next(request.query_params.get("next")),
    )
    svc: Services = request.app.state.services
    response.set_cookie(
        LOGIN_CSRF_COOKIE,
        csrf,
        httponly=True,
        samesite="lax",
        secure=svc.settings.use_secure_cookies,
        max_age=3600,
    )
    return response


@router.get("/login")
def login_form(request: Request) -> Response:
    return _login_page(request)


@router.post("/login")
def login(
    request: Request,
    svc: Annotated[Services, Depends(services)],
    email: Annotated[str, Form(max_length=254)] = "",
    password: Annotated[str, Form(max_length=1024)] = "",
    csrf_token: Annotated[str, Form(max_length=128)] = "",
    next: Annotated[str, Form(max_length=2048)] = "/",
) -> Response:
    cookie = request.cookies.get(LOGIN_CSRF_COOKIE, "")
    if not cookie or not csrf_token or not same(cookie, csrf_token):
        return _login_page(
            request, error="Your sign-in form expired; please try again.", email=email, status=403
        )
    with svc.db.transaction() as session:
        result = accounts.sign_in(
            session,
            email,
            password,
            max_failures=svc.settings.signin_max_failures,
            lockout_seconds=svc.settings.signin_lockout_seconds,
        )
        new_session = accounts.start_session(session, result.user) if result.user else None
        _record_signin(session, request, email, result.user, locked=result.locked_until is not None)
    if new_session is None:
        if result.locked_until is not None:
            message = "Too many failed sign-ins for this e-mail; try again in 15 minutes."
            return _login_page(request, error=message, email=email, status=429)
        return _login_page(request, error="Wrong e-mail or password.", email=email, status=401)
    response = RedirectResponse(_safe_next(next), status_code=303)
    response.set_cookie(
        SESSION_COOKIE,
        new_session.token,
        httponly=True,
        samesite="lax",
        secure=svc.settings.use_secure_cookies,
        max_age=int(accounts.SESSION_LIFETIME.total_seconds()),
    )
    response.delete_cookie(LOGIN_CSRF_COOKIE)
    return response


def _record_signin(
    session: Session, request: Request, email: str, user: User | None, *, locked: bool
) -> None:
    """Audit the outcome: `auth.signin.succeeded|failed`, never the password.

    A known user's sign-in is recorded in each workspace they belong to (its admins see it);
    an unknown e-mail's in the global chain. What was typed as the e-mail is kept only when it
    looks like one: people sometimes type their password into the e-mail field.
    """
    typed = email.strip().lower()[:254]
    shown = typed if accounts.EMAIL_PATTERN.match(typed) else None
    log.info("sign-in %s for %s", "succeeded" if user else "failed", shown or "(not an e-mail)")
    known = user or accounts.get_user_by_email(session, typed)
    action = "auth.signin.succeeded" if user else "auth.signin.failed"
    details: dict[str, object] = {}
    if user is None:
        details["reason"] = "locked" if locked else "wrong_email_or_password"
    if known is None:
        actor = Actor("user", None, shown)
        workspace_ids: list[str | None] = [None]
    else:
        actor = Actor("user", known.id, known.email)
        workspace_ids = [w.id for w, _role in accounts.workspaces_of(session, known.id)] or [None]
    for workspace_id in workspace_ids:
        record(
            session,
            workspace_id=workspace_id,
            actor=actor,
            action=action,
            target_type="user",
            target_id=known.id if known else None,
            details=details,
            request=request_info(request),
        )


def current_web_user(
    request: Request, svc: Annotated[Services, Depends(services)]
) -> Principal | None:
    return resolve_principal(request, svc)


@router.post("/logout")
def logout(
    request: Request,
    svc: Annotated[Services, Depends(services)],
    csrf_token: Annotated[str, Form(max_length=128)] = "",
) -> Response:
    principal = resolve_principal(request, svc)
    if principal is not None and principal.via == "session":
        if not principal.csrf_token or not same(csrf_token, principal.csrf_token):
            return render(
                request,
                "error.html",
                status_code=403,
                title="Request refused",
                message="The form's CSRF token is missing or wrong; reload the page and try again.",
            )
        with svc.db.transaction() as session:
            accounts.end_session(session, request.cookies.get(SESSION_COOKIE, ""))
    response = RedirectResponse("/login", status_code=303)
    response.delete_cookie(SESSION_COOKIE)
    return response
