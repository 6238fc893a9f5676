"""POST /api/webhooks/jira?workspace=<slug>: authenticated, idempotent Jira intake.

The order of checks is part of the contract:
1. body over 1 MiB → 413 (before anything else; the stream is read no further than the limit);
2. a content type that is not JSON → 415. A missing Content-Type is read as JSON: Jira and
   Jira Automation always send `application/json`, and hand-made requests (curl) often omit it;
   the body must still parse as a JSON object;
3. unknown workspace or missing/wrong credentials → 401, one body for every case;
4. not UTF-8, not JSON, not an object, nested absurdly deep → 400 naming the problem;
5. stored (routed / ignored / rejected) with its deliveries → 202 once the transaction holding
   it committed, or 200 `{"duplicate": true}` when the X-Atlassian-Webhook-Identifier was
   already stored (or is earlier in the same batch).
Checks 3-5 run in the intake writer (jira/intake_writer.py), one transaction for the events of
many requests. No network calls happen here; a failure to store answers 503 so Jira retries.
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any, NoReturn

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from starlette.requests import ClientDisconnect

from ticketmate.errors import ApiError, error_responses
from ticketmate.jira.signature import credentials_match, signature_matches
from ticketmate.jira.transform import Outcome, Rejected, Transformed, clean, transform
from ticketmate.security.auth import bearer_token
from ticketmate.state import Services, services
from ticketmate.timeutil import utcnow
from ticketmate.workspaces.service import JiraCredentials

log = logging.getLogger(__name__)

router = APIRouter(tags=["jira"])

BODY_LIMIT = 1024 * 1024  # 1 MiB
# Real Jira payloads nest about ten levels (an ADF description a few more); far deeper bodies
# are not Jira's and would only strain every later reader of the stored payload.
MAX_NESTING = 64
IDENTIFIER_HEADER = "x-atlassian-webhook-identifier"
# Headers kept with the event. Never Authorization or X-Hub-Signature: they are credentials.
STORED_HEADERS = (
    "content-type",
    "user-agent",
    IDENTIFIER_HEADER,
    "x-atlassian-webhook-retry",
    "x-atlassian-webhook-flow",
)
MAX_HEADER_LENGTH = 500
MAX_IDENTIFIER_LENGTH = 200  # the jira_events.jira_event_id column


class Accepted(BaseModel):
    event_id: str
    deliveries: int


class Duplicate(BaseModel):
    duplicate: bool
    event_id: str


@dataclass(frozen=True)
class JiraRequest:
    """What intake needs from one HTTP request, read once on the event loop."""

    workspace_slug: str | None
    body: bytes
    signature: str | None
    tokens: list[str]
    jira_event_id: str | None
    event_override: str | None
    headers: dict[str, str]
    received_at: datetime


@dataclass(frozen=True)
class Sender:
    """Whose request it is, and how it proved it."""

    workspace_id: str
    # Signed with the workspace's Jira secret (not just carrying the ingest token): only such
    # events may teach the workspace its Jira base URL. The token travels in Automation rules
    # and URLs, so it vouches less for where the payload's links point.
    signed: bool
    jira_base_url: str | None  # as read while authenticating; checked again when storing


@dataclass(frozen=True)
class IntakeAnswer:
    event_id: str
    deliveries: int
    duplicate: bool = False


# ---------------------------------------------------------------------------------------------
# Reading the request


def _too_large() -> ApiError:
    return ApiError(
        413, "payload_too_large", f"The body is larger than {BODY_LIMIT // 1024} KiB (1 MiB)."
    )


async def read_limited_body(request: Request, limit: int = BODY_LIMIT) -> bytes:
    """The body, or 413 as soon as it is known to exceed `limit` (never reading further)."""
    declared = request.headers.get("content-length", "").strip()
    # A length of more than 18 digits is over any limit (and int() refuses 4300+ digits).
    if declared.isascii() and declared.isdigit() and (len(declared) > 18 or int(declared) > limit):
        raise _too_large()
    body = bytearray()
    try:
        async for chunk in request.stream():
            body += chunk
            if len(body) > limit:
                raise _too_large()
    except ClientDisconnect:
        raise ApiError(400, "client_disconnected", "The request body ended early.") from None
    return bytes(body)


def is_json_content_type(value: str | None) -> bool:
    """application/json (any parameters) or application/*+json; a missing type counts as JSON."""
    if value is None or not value.strip():
        return True
    media_type = value.split(";", 1)[0].strip().lower()
    return media_type == "application/json" or (
        media_type.startswith("application/") and media_type.endswith("+json")
    )


def normalise_identifier(value: str | None) -> str | None:
    """The identifier as stored: trimmed, and hashed when longer than its column."""
    if value is None or not value.strip():
        return None
    value = clean(value.strip())
    if len(value) > MAX_IDENTIFIER_LENGTH:
        # Hashing keeps deduplication exact for absurdly long values that cannot be stored.
        return "sha256:" + hashlib.sha256(value.encode()).hexdigest()
    return value


def stored_headers(request: Request) -> dict[str, str]:
    kept = {}
    for name in STORED_HEADERS:
        value = request.headers.get(name)
        if value is not None:
            kept[name] = clean(value)[:MAX_HEADER_LENGTH]
    return kept


def offered_tokens(request: Request, token_param: str | None) -> list[str]:
    return [token for token in (bearer_token(request), token_param) if token]


# ---------------------------------------------------------------------------------------------
# Authentication


def unauthenticated() -> ApiError:
    # One body for an unknown workspace, a missing and a wrong credential alike.
    return ApiError(
        401,
        "unauthorized",
        "Send the workspace's Jira signature (X-Hub-Signature) or its ingest token "
        "(Authorization: Bearer or ?token=) with ?workspace=<slug>.",
        headers={"WWW-Authenticate": "Bearer"},
    )


def check_credentials(
    workspace_id: str, site: str | None, credentials: JiraCredentials, incoming: JiraRequest
) -> Sender:
    """The sender of a request for a known workspace, or 401. (An unknown workspace is
    refused by the intake writer after burn_comparison, so both take the same time.)"""
    if not credentials_match(
        secret=credentials.secret,
        ingest_token=credentials.ingest_token,
        body=incoming.body,
        signature=incoming.signature,
        tokens=incoming.tokens,
    ):
        raise unauthenticated()
    # Already authenticated: this second look at the signature tells nothing to an attacker.
    signed = signature_matches(credentials.secret, incoming.body, incoming.signature)
    return Sender(workspace_id, signed, site)


# ---------------------------------------------------------------------------------------------
# Parsing


def _bad_json(message: str) -> ApiError:
    return ApiError(400, "invalid_json", message)


class _NotJsonValue(ValueError):
    pass


def _refuse_constant(name: str) -> NoReturn:
    # Python's json module accepts NaN and Infinity; JSON (and PostgreSQL) do not.
    raise _NotJsonValue(f"{name} is not a JSON value")


def _nested_deeper_than(value: Any, limit: int) -> bool:
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        current, depth = stack.pop()
        if depth > limit:
            return True
        children = current.values() if isinstance(current, dict) else current
        stack.extend((child, depth + 1) for child in children if isinstance(child, dict | list))
    return False


def parse_json_object(body: bytes) -> tuple[str, dict[str, Any]]:
    """The body as text (what is stored) and as a JSON object, or 400 saying what is wrong.

    The text is the body exactly as sent (a byte-order mark too): strict UTF-8 decoding is
    lossless, so `text.encode()` gives back Jira's bytes.
    """
    try:
        raw = body.decode("utf-8")
    except UnicodeDecodeError:
        raise _bad_json("The body is not UTF-8 text; send the event as JSON in UTF-8.") from None
    text = raw.removeprefix("\ufeff")
    if not text.strip():
        raise _bad_json("The body is empty; send the event as a JSON object.")
    try:
        value = json.loads(text, parse_constant=_refuse_constant)
    except json.JSONDecodeError as problem:
        raise _bad_json(
            f"The body is not valid JSON: {problem.msg} "
            f"(line {problem.lineno}, column {problem.colno})."
        ) from None
    except RecursionError:
        raise _bad_json(f"The body nests deeper than {MAX_NESTING} levels.") from None
    except _NotJsonValue as problem:
        raise _bad_json(f"The body is not valid JSON: {problem}.") from None
    except ValueError:
        # Python refuses integers of more than 4300 digits (a guard against slow parsing).
        raise _bad_json("The body is not valid JSON here: a number has too many digits.") from None
    if not isinstance(value, dict):
        kind = {list: "an array", str: "a string", bool: "a boolean"}.get(type(value), "a number")
        if value is None:
            kind = "null"
        raise ApiError(
            400, "not_json_object", f"The body is {kind}, not a JSON object; Jira sends objects."
        )
    if _nested_deeper_than(value, MAX_NESTING):
        raise _bad_json(f"The body nests deeper than {MAX_NESTING} levels.")
    return raw, value


def safe_transform(
    payload: dict[str, Any], incoming: JiraRequest, jira_site: str | None = None
) -> Outcome:
    """The transformer never raises by design; if a bug makes it, the event is still kept."""
    try:
        return transform(
            payload,
            jira_event_id=incoming.jira_event_id,
            event_override=incoming.event_override,
            jira_site=jira_site,
        )
    except Exception:
        log.exception(
            "jira intake: the transformer failed on a payload",
            extra={"workspace": incoming.workspace_slug},
        )
        return Rejected("The payload could not be read because of an error in this service.")


# ---------------------------------------------------------------------------------------------
# Storing and routing


def unavailable() -> ApiError:
    return ApiError(503, "unavailable", "The event could not be stored right now; send it again.")


def record_fields(outcome: Outcome) -> dict[str, Any]:
    """The columns of a stored event that its outcome decides."""
    if isinstance(outcome, Transformed):
        envelope = outcome.envelope
        return {
            "jira_event": envelope.jira_event,
            "reason": " ".join(envelope.notes) or None,
            "event_types": [t.value for t in envelope.event_types],
            "issue_key": envelope.issue.key if envelope.issue else None,
            "summary": envelope.issue.summary if envelope.issue else None,
            "envelope": envelope.as_json(),
        }
    return {"jira_event": outcome.jira_event, "reason": outcome.reason, "event_types": []}


# ---------------------------------------------------------------------------------------------
# The route

# Every error intake can answer, in the order of the checks in this module's docstring.
INTAKE_ERRORS = (
    "payload_too_large",
    "unsupported_media_type",
    "unauthorized",
    "invalid_json",
    "not_json_object",
    "client_disconnected",
    # Not reachable through the plain query strings; named so that the 422 FastAPI would
    # describe by itself shows the service's error shape.
    "validation_error",
    "unavailable",
)


@router.post(
    "/api/webhooks/jira",
    status_code=202,
    response_model=Accepted,
    responses={
        200: {"model": Duplicate, "description": "Already stored (same identifier)."},
        **error_responses(*INTAKE_ERRORS),
    },
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": {"type": "object"}}},
        }
    },
    summary="Receive a Jira webhook",
)
async def receive_jira_webhook(
    request: Request,
    svc: Annotated[Services, Depends(services)],
    workspace: Annotated[str | None, Query(description="The workspace's slug.")] = None,
    token: Annotated[
        str | None, Query(description="The workspace's ingest token, for senders that cannot sign.")
    ] = None,
    event: Annotated[
        str | None,
        Query(description="For bodies without webhookEvent (Jira Automation): the event type."),
    ] = None,
) -> JSONResponse:
    """Store a Jira webhook (Cloud, Data Center/Server or Automation) and route it.

    Authenticate with `X-Hub-Signature: sha256=<HMAC of the body with the workspace's Jira
    secret>`, or with the workspace's ingest token as `Authorization: Bearer` or `?token=`.
    """
    received_at = utcnow()
    body = await read_limited_body(request)
    if not is_json_content_type(request.headers.get("content-type")):
        raise ApiError(415, "unsupported_media_type", "Send the event as application/json.")
    incoming = JiraRequest(
        workspace_slug=workspace,
        body=body,
        signature=request.headers.get("x-hub-signature"),
        tokens=offered_tokens(request, token),
        jira_event_id=normalise_identifier(request.headers.get(IDENTIFIER_HEADER)),
        event_override=event,
        headers=stored_headers(request),
        received_at=received_at,
    )
    # Authenticated, parsed, stored and routed by the intake writer, together with whatever
    # else arrived meanwhile; answered once the transaction holding this event committed.
    writer = svc.intake_writer
    if writer is None:
        raise unavailable()
    answer = await writer.submit(incoming)
    if answer.duplicate:
        return JSONResponse(
            Duplicate(duplicate=True, event_id=answer.event_id).model_dump(), status_code=200
        )
    return JSONResponse(
        Accepted(event_id=answer.event_id, deliveries=answer.deliveries).model_dump(),
        status_code=202,
    )
