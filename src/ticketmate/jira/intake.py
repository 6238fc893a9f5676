"""POST /api/webhooks/jira?workspace=<slug>: authenticated, idempotent Jira intake.

The order of checks is part of the contract:
1. body over 1 MiB → 413 (before anything else; the stream is read no further than the limit);
2. a content type that is not JSON → 415. A missing Content-Type is read as JSON: Jira and
   Jira Automation always send `application/json`, and hand-made requests (curl) often omit it;
   the body must still parse as a JSON object;
3. unknown workspace or missing/wrong credentials → 401, one body for every case;
4. not UTF-8, not JSON, not an object, nested absurdly deep → 400 naming the problem;
5. stored (routed / ignored / rejected) in one transaction with routing → 202, or 200
   `{"duplicate": true}` when the X-Atlassian-Webhook-Identifier was already stored.
No network calls happen here; a failure to store answers 503 so that Jira retries.
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
from sqlalchemy.exc import IntegrityError, SQLAlchemyError
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool
from starlette.requests import ClientDisconnect

from ticketmate.errors import ApiError, error_body
from ticketmate.jira import hooks
from ticketmate.jira import service as events
from ticketmate.jira.events import JiraEvent
from ticketmate.jira.signature import burn_comparison, credentials_match
from ticketmate.jira.transform import Outcome, Rejected, Transformed, clean, transform
from ticketmate.metrics import JIRA_EVENTS
from ticketmate.models import JiraEventRecord
from ticketmate.security.auth import bearer_token
from ticketmate.security.crypto import DecryptionError
from ticketmate.state import Services, services
from ticketmate.timeutil import utcnow
from ticketmate.workspaces.service import SLUG_PATTERN, get_by_slug, jira_credentials

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


def _unauthenticated() -> NoReturn:
    # One body for an unknown workspace, a missing and a wrong credential alike.
    raise ApiError(
        401,
        "unauthorized",
        "Send the workspace's Jira signature (X-Hub-Signature) or its ingest token "
        "(Authorization: Bearer or ?token=) with ?workspace=<slug>.",
        headers={"WWW-Authenticate": "Bearer"},
    )


def authenticate(svc: Services, incoming: JiraRequest) -> str:
    """The id of the workspace whose credentials the request carries, or 401."""
    slug = incoming.workspace_slug
    workspace = None
    with svc.db.transaction() as session:
        if slug is not None and SLUG_PATTERN.match(slug):
            workspace = get_by_slug(session, slug)
        if workspace is None:
            burn_comparison(incoming.body, incoming.signature, incoming.tokens)
            _unauthenticated()
        try:
            credentials = jira_credentials(svc.keyring, workspace)
        except DecryptionError as problem:
            log.error("jira intake: cannot decrypt the credentials of %s: %s", slug, problem)
            raise _unavailable() from None
        workspace_id = workspace.id
    if not credentials_match(
        secret=credentials.secret,
        ingest_token=credentials.ingest_token,
        body=incoming.body,
        signature=incoming.signature,
        tokens=incoming.tokens,
    ):
        _unauthenticated()
    return workspace_id


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
    """The body as text (what is stored) and as a JSON object, or 400 saying what is wrong."""
    try:
        text = body.decode("utf-8").removeprefix("\ufeff")
    except UnicodeDecodeError:
        raise _bad_json("The body is not UTF-8 text; send the event as JSON in UTF-8.") from None
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
    return text, value


def safe_transform(payload: dict[str, Any], incoming: JiraRequest) -> Outcome:
    """The transformer never raises by design; if a bug makes it, the event is still kept."""
    try:
        return transform(
            payload,
            jira_event_id=incoming.jira_event_id,
            event_override=incoming.event_override,
        )
    except Exception:
        log.exception("jira intake: the transformer failed on a payload")
        return Rejected("The payload could not be read because of an error in this service.")


# ---------------------------------------------------------------------------------------------
# Storing and routing


def _unavailable() -> ApiError:
    return ApiError(503, "unavailable", "The event could not be stored right now; send it again.")


def _record_fields(outcome: Outcome) -> dict[str, Any]:
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


def _insert(
    session: Session,
    workspace_id: str,
    incoming: JiraRequest,
    raw: str,
    outcome: Outcome,
    duplicate_of: str | None,
) -> JiraEventRecord:
    fields = _record_fields(outcome)
    if duplicate_of is not None:
        fields["reason"] = f"Duplicate of event {duplicate_of} (same comment); not routed again."
    dedupe_key = outcome.envelope.dedupe_key if isinstance(outcome, Transformed) else None
    record = JiraEventRecord(
        workspace_id=workspace_id,
        received_at=incoming.received_at,
        dedupe_key=events.stored_dedupe_key(dedupe_key) if dedupe_key else None,
        jira_event_id=incoming.jira_event_id,
        jira_event=(fields.pop("jira_event") or "")[:100] or None,
        issue_key=(fields.pop("issue_key", None) or "")[:100] or None,
        status=outcome.status,
        raw_body=raw,
        headers=incoming.headers,
        **fields,
    )
    session.add(record)
    # Flushing now makes a repeated X-Atlassian-Webhook-Identifier fail here, on the unique
    # constraint, before any routing work is done.
    session.flush()
    return record


def _earlier_report(session: Session, workspace_id: str, envelope: JiraEvent) -> str | None:
    if envelope.dedupe_key is None:
        return None
    events.lock_dedupe_key(session, workspace_id, envelope.dedupe_key)
    since = utcnow() - events.DEDUPE_WINDOW
    return events.earlier_report(session, workspace_id, envelope.dedupe_key, since)


def _route(session: Session, svc: Services, record: JiraEventRecord, envelope: JiraEvent) -> int:
    try:
        # A savepoint: a routing failure must not lose the event that was just stored.
        with session.begin_nested():
            return hooks.route_event(session, svc, record, envelope)
    except Exception:
        log.exception("jira intake: routing failed for event %s", record.id)
        record.reason = "Routing failed because of an error in this service; see the server log."
        return 0


def _store_and_route(
    svc: Services, workspace_id: str, incoming: JiraRequest, raw: str, outcome: Outcome
) -> IntakeAnswer:
    with svc.db.transaction() as session:
        envelope = outcome.envelope if isinstance(outcome, Transformed) else None
        duplicate_of = _earlier_report(session, workspace_id, envelope) if envelope else None
        record = _insert(session, workspace_id, incoming, raw, outcome, duplicate_of)
        deliveries = 0
        if envelope is not None and duplicate_of is None:
            deliveries = _route(session, svc, record, envelope)
        return IntakeAnswer(record.id, deliveries)


def store_event(
    svc: Services, workspace_id: str, incoming: JiraRequest, raw: str, outcome: Outcome
) -> IntakeAnswer:
    """Store (and route) one event; a repeated identifier answers the stored event instead.

    The unique constraint on (workspace_id, jira_event_id) decides, not a read before the
    write: two copies arriving at once cannot both be stored.
    """
    try:
        return _store_and_route(svc, workspace_id, incoming, raw, outcome)
    except IntegrityError as problem:
        existing = None
        if incoming.jira_event_id is not None:
            with svc.db.transaction() as session:
                existing = events.find_by_jira_event_id(
                    session, workspace_id, incoming.jira_event_id
                )
        if existing is None:
            log.error("jira intake: could not store an event: %s", problem.orig)
            raise _unavailable() from None
        return IntakeAnswer(existing.id, 0, duplicate=True)


def accept(svc: Services, incoming: JiraRequest) -> IntakeAnswer:
    """Authenticate, parse, transform, store and route: the blocking part of intake."""
    try:
        workspace_id = authenticate(svc, incoming)
        raw, payload = parse_json_object(incoming.body)
        outcome = safe_transform(payload, incoming)
        answer = store_event(svc, workspace_id, incoming, raw, outcome)
    except SQLAlchemyError as problem:
        log.error("jira intake: database unavailable: %s", type(problem).__name__)
        raise _unavailable() from None
    JIRA_EVENTS.labels("duplicate" if answer.duplicate else outcome.status).inc()
    if not answer.duplicate:
        log.info(
            "jira intake: stored event %s (%s) for workspace %s",
            answer.event_id,
            outcome.status,
            incoming.workspace_slug,
        )
    return answer


# ---------------------------------------------------------------------------------------------
# The route

_ERRORS: dict[int | str, dict[str, Any]] = {
    status: {"description": description, "content": {"application/json": {"example": example}}}
    for status, description, example in (
        (400, "Not UTF-8, not JSON, or not a JSON object.", error_body("invalid_json", "…")),
        (
            401,
            "Unknown workspace, or missing or wrong credentials.",
            error_body("unauthorized", "…"),
        ),
        (413, "The body is larger than 1 MiB.", error_body("payload_too_large", "…")),
        (415, "The content type is not JSON.", error_body("unsupported_media_type", "…")),
        (503, "The event could not be stored; send it again.", error_body("unavailable", "…")),
    )
}


@router.post(
    "/api/webhooks/jira",
    status_code=202,
    response_model=Accepted,
    responses={
        200: {"model": Duplicate, "description": "Already stored (same identifier)."},
        **_ERRORS,
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
    answer = await run_in_threadpool(accept, svc, incoming)
    if answer.duplicate:
        return JSONResponse(
            Duplicate(duplicate=True, event_id=answer.event_id).model_dump(), status_code=200
        )
    if answer.deliveries > 0:
        hooks.after_commit(svc)
    return JSONResponse(
        Accepted(event_id=answer.event_id, deliveries=answer.deliveries).model_dump(),
        status_code=202,
    )
