"""The project's error shape: {"error": {"code", "message", "details"?}} for every 4xx and 5xx."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.routing import iter_route_contexts
from pydantic import BaseModel, Field
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import compile_path

from ticketmate.web.headers import error_headers

log = logging.getLogger(__name__)


class CommandError(Exception):
    """A command-line failure: the message is printed on one line and the exit status is 1."""


class ApiError(Exception):
    """An error a client can act on; raised anywhere below a route, rendered by the handler."""

    def __init__(
        self,
        status_code: int,
        code: str,
        message: str,
        details: list[dict[str, Any]] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status_code = status_code
        self.code = code
        self.message = message
        self.details = details
        self.headers = headers


def error_body(
    code: str, message: str, details: list[dict[str, Any]] | None = None
) -> dict[str, Any]:
    error: dict[str, Any] = {"code": code, "message": message}
    if details:
        error["details"] = details
    return {"error": error}


def error_response(exc: ApiError) -> JSONResponse:
    return JSONResponse(
        error_body(exc.code, exc.message, exc.details),
        status_code=exc.status_code,
        headers=exc.headers,
    )


_STATUS_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "payload_too_large",
    415: "unsupported_media_type",
    422: "validation_error",
    429: "too_many_requests",
}


def _field_name(loc: tuple[Any, ...]) -> str:
    parts = [str(p) for p in loc if p not in ("body", "query", "path", "header")]
    return ".".join(parts) or "body"


def validation_details(errors: list[Any]) -> list[dict[str, Any]]:
    details = []
    for err in errors:
        message = str(err.get("msg", "is not valid")).removeprefix("Value error, ")
        details.append({"field": _field_name(tuple(err.get("loc", ()))), "message": message})
    return details


def allowed_methods(request: Request) -> str | None:
    """The Allow header of a 405: every method of the address's own routes.

    Starlette names only the first route whose path matches, but one address is often served
    by several routes (GET, PATCH and DELETE of a webhook). When templates overlap
    (`/deliveries/retry` and `/deliveries/{delivery_id}`), the one with fewer parameters is the
    address's own, as in the OpenAPI description. None when no route has the address.
    """
    path = request.url.path
    matching: list[tuple[int, set[str]]] = []
    for route in iter_route_contexts(request.app.router.routes):
        if route.path is None or not route.methods:
            continue
        regex, _format, convertors = compile_path(route.path)
        if regex.match(path):
            matching.append((len(convertors), route.methods))
    if not matching:
        return None
    fewest = min(count for count, _methods in matching)
    methods = {m for count, route_methods in matching if count == fewest for m in route_methods}
    return ", ".join(sorted(methods))


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(ApiError)
    async def _api_error(_request: Request, exc: ApiError) -> JSONResponse:
        return error_response(exc)

    @app.exception_handler(RequestValidationError)
    async def _validation(_request: Request, exc: RequestValidationError) -> JSONResponse:
        details = validation_details(list(exc.errors()))
        first = details[0] if details else {"field": "body", "message": "is not valid"}
        if first["field"] == "body" and "JSON" in first["message"]:
            message = "The request body is not valid JSON."
        else:
            message = f"{first['field']}: {first['message']}."
            if len(details) > 1:
                message = f"{message} ({len(details) - 1} more problem(s) in details.)"
        return JSONResponse(error_body("validation_error", message, details), status_code=422)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = _STATUS_CODES.get(exc.status_code, "error")
        message = exc.detail if isinstance(exc.detail, str) else "The request failed."
        headers = getattr(exc, "headers", None)
        if exc.status_code == 404:
            message = "Nothing exists at this address."
        elif exc.status_code == 405:
            message = "This address does not accept that method."
            allowed = allowed_methods(request)
            if allowed is not None:
                headers = {**(headers or {}), "Allow": allowed}
        return JSONResponse(error_body(code, message), status_code=exc.status_code, headers=headers)

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        # The traceback goes to the server log only; the client gets the error shape.
        log.error("unhandled error on %s %s", request.method, request.url.path, exc_info=exc)
        # Starlette answers this from its outermost layer, outside the middleware that adds
        # the browser headers, so the answer carries them itself.
        return JSONResponse(
            error_body("internal_error", "Something went wrong on our side; try again shortly."),
            status_code=500,
            headers=error_headers(request.url.path),
        )


# -- The error answers in the OpenAPI description ----------------------------------------------


class ErrorInfo(BaseModel):
    code: str = Field(description="What went wrong, for programs: a snake_case code.")
    message: str = Field(description="One sentence a person can act on.")
    details: list[dict[str, Any]] | None = Field(
        default=None,
        description="Present when there is more to say, e.g. one {field, message} per invalid "
        "field.",
    )


class ErrorResponse(BaseModel):
    """The body of every 4xx and 5xx answer."""

    error: ErrorInfo


# Every code an operation can answer, with its status and what it means. The routes name the
# codes they can answer (error_responses), so the description lists exactly those.
ERROR_CODES: dict[str, tuple[int, str]] = {
    "bad_request": (400, "the body could not be read (it is not UTF-8)"),
    "invalid_cursor": (400, "the cursor is not one this list gave out"),
    "invalid_json": (400, "the body is not UTF-8 JSON, or nests too deep"),
    "not_json_object": (400, "the body is JSON but not an object"),
    "client_disconnected": (400, "the request body ended early"),
    "unauthorized": (401, "no credentials, or unknown ones"),
    "admin_required": (403, "a member of the workspace who is not an administrator"),
    "csrf_failed": (403, "a browser session's change without the page's X-CSRF-Token header"),
    "workspace_not_found": (404, "no such workspace for you (also when you are not a member)"),
    "event_not_found": (404, "no such Jira event in this workspace"),
    "delivery_not_found": (404, "no such delivery in this workspace"),
    "webhook_not_found": (404, "no such webhook in this workspace"),
    "subscription_not_found": (404, "no such subscription in this workspace"),
    "channel_name_taken": (409, "another webhook of the workspace has this channel name"),
    "duplicate_webhook_url": (409, "this URL is already saved as another webhook"),
    "conflict": (409, "another change to the same channel name or URL happened at once"),
    "webhook_in_use": (409, "subscriptions use the webhook (`details` lists them)"),
    "webhook_url_unreadable": (409, "the saved URL cannot be decrypted with the configured keys"),
    "not_retryable": (409, "the delivery is not a dead letter or skipped"),
    "payload_too_large": (413, "the body is larger than 1 MiB"),
    "unsupported_media_type": (415, "the content type is not JSON"),
    "validation_error": (422, "the request is not valid; `details` names each field"),
    "invalid_webhook_url": (422, "not a Teams webhook URL the product accepts"),
    "webhook_test_failed": (
        422,
        "Teams did not accept the sample card at the new URL, so it was not saved "
        "(`details` has Teams' answer; send `save_untested: true` to save it anyway)",
    ),
    "unavailable": (503, "the event could not be stored right now; send it again"),
}

# What every workspace endpoint can answer, reading or changing.
WORKSPACE_READ = ("unauthorized", "admin_required", "workspace_not_found", "validation_error")
WORKSPACE_CHANGE = (*WORKSPACE_READ, "csrf_failed")
# A list (limit and cursor), and an operation that reads a JSON body.
LIST = ("invalid_cursor",)
BODY = ("bad_request",)

_UNAUTHORIZED_HEADERS = {
    "WWW-Authenticate": {
        "description": "`Bearer`: send an API token as `Authorization: Bearer <token>`.",
        "schema": {"type": "string"},
    }
}


def error_responses(*codes: str) -> dict[int | str, dict[str, Any]]:
    """The `responses=` of a route: each status its codes can answer, with the error shape."""
    by_status: dict[int, list[str]] = {}
    for code in dict.fromkeys(codes):  # each once, in the order given
        status, _meaning = ERROR_CODES[code]
        by_status.setdefault(status, []).append(code)
    responses: dict[int | str, dict[str, Any]] = {}
    for status in sorted(by_status):
        listed = by_status[status]
        described = "; ".join(f"`{code}`: {ERROR_CODES[code][1]}" for code in listed)
        answer: dict[str, Any] = {
            "model": ErrorResponse,
            "description": described + ".",
            "content": {
                "application/json": {
                    "example": error_body(listed[0], "One sentence saying what to do.")
                }
            },
        }
        if status == 401:
            answer["headers"] = _UNAUTHORIZED_HEADERS
        responses[status] = answer
    return responses
