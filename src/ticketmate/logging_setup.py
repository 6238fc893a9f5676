"""Standard-library logging: one line per record, as text or JSON, and nothing secret in any line.

`configure_logging` gives the root logger one handler, and every logger of the process writes
through it: ours, uvicorn's, Alembic's, asyncio's, any library's, warnings and uncaught
exceptions too. The handler's filters add the request's id and scrub secrets
(`ticketmate.log_scrubbing`) whoever logged; its formatter writes `TICKETMATE_LOG_FORMAT`:

- `text`: `2026-11-28 06:41:00,123 INFO ticketmate.access [req=abc-123]: GET /healthz 200 0.4ms`
- `json`: `{"ts": "2026-11-28T06:41:00.123Z", "level": "INFO", "logger": "ticketmate.access",
  "msg": "GET /healthz 200 0.4ms", "request_id": "abc-123"}`, with `workspace`, `delivery_id`
  and `event_id` on the lines about one, and any other `extra=` field.
"""

from __future__ import annotations

import logging
import re
import sys
import threading
import time
import uuid
from contextvars import ContextVar
from types import TracebackType
from typing import IO, Any

from pythonjsonlogger.core import RESERVED_ATTRS
from pythonjsonlogger.json import JsonFormatter
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ticketmate.log_scrubbing import ScrubSecrets

access_log = logging.getLogger("ticketmate.access")
_uncaught = logging.getLogger("ticketmate")
_ANNOUNCER = "ticketmate.cli"  # the `logger` of announce()'s JSON lines

# The id of the request being served, on every line logged while serving it.
request_id: ContextVar[str | None] = ContextVar("request_id", default=None)

REQUEST_ID_HEADER = "X-Request-ID"
_REQUEST_ID_HEADER = REQUEST_ID_HEADER.lower().encode()
# A caller's id is kept when it is of a shape a log line can hold safely; otherwise a new one.
_WELL_FORMED_ID = re.compile(rb"[A-Za-z0-9._:-]{1,128}")

_json_lines = False  # what configure_logging chose, for announce()


class RequestContext(logging.Filter):
    """Puts the request's id on each record logged while serving it (unless `extra=` did)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if "request_id" not in record.__dict__:
            current = request_id.get()
            if current is not None:
                record.request_id = current
        return True


class TextFormatter(logging.Formatter):
    """`time LEVEL logger [req=…]: message`; the request's id only on a request's lines."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s: %(message)s")

    def formatMessage(self, record: logging.LogRecord) -> str:
        current = record.__dict__.get("request_id")
        if not current:
            return super().formatMessage(record)
        head = f"{record.asctime} {record.levelname} {record.name}"
        return f"{head} [req={current}]: {record.message}"


class JsonLineFormatter(JsonFormatter):
    """One JSON object per record: ts (RFC 3339, UTC), level, logger, msg, then the context."""

    def __init__(self) -> None:
        super().__init__(
            "%(asctime)s %(levelname)s %(name)s %(message)s",
            rename_fields={
                "asctime": "ts",
                "levelname": "level",
                "name": "logger",
                "message": "msg",
            },
            # uvicorn repeats its startup lines with terminal colours in `color_message`.
            reserved_attrs=[*RESERVED_ATTRS, "color_message", "taskName"],
        )

    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:
        whole = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
        return f"{whole}.{int(record.msecs):03d}Z"


def configure_logging(level: str, log_format: str = "text", stream: IO[str] | None = None) -> None:
    """Route every logger of the process through one scrubbed handler on stderr (or `stream`)."""
    global _json_lines
    _json_lines = log_format == "json"
    handler = logging.StreamHandler(stream)
    handler.addFilter(RequestContext())
    handler.addFilter(ScrubSecrets())
    handler.setFormatter(JsonLineFormatter() if _json_lines else TextFormatter())
    logging.basicConfig(level=level, handlers=[handler], force=True)
    # Uvicorn's own access line would repeat ours and include the query string, which can
    # carry an ingest token (?token=...); ours logs the path alone.
    logging.getLogger("uvicorn.access").disabled = True
    # Warnings and uncaught exceptions would otherwise be printed raw: unscrubbed, not JSON.
    logging.captureWarnings(True)
    sys.excepthook = _log_uncaught
    threading.excepthook = _log_uncaught_in_thread


def _log_uncaught(
    kind: type[BaseException], error: BaseException, trace: TracebackType | None
) -> None:
    if issubclass(kind, KeyboardInterrupt):
        sys.__excepthook__(kind, error, trace)
        return
    _uncaught.critical("uncaught exception", exc_info=(kind, error, trace))


def _log_uncaught_in_thread(args: threading.ExceptHookArgs) -> None:
    if args.exc_type is SystemExit:
        return
    thread = args.thread.name if args.thread is not None else "?"
    if args.exc_value is None:
        _uncaught.critical("uncaught %s in thread %s", args.exc_type.__name__, thread)
        return
    _uncaught.critical(
        "uncaught exception in thread %s",
        thread,
        exc_info=(args.exc_type, args.exc_value, args.exc_traceback),
    )


def announce(message: str, *, err: bool = False, **fields: Any) -> None:
    """A line for the person running the command: as written in text format, whatever the log
    level; in JSON format one JSON object like every other line, with `fields` in it.

    It is the command's own output, written where text format writes it (stdout, or stderr with
    `err`), not a log record, so it is not scrubbed: never give it a secret. In JSON format it
    reads as a log line, and no secret may appear in one (the first run's password is only
    shown in text format, to the person at the terminal).
    """
    out = sys.stderr if err else sys.stdout
    if _json_lines:
        record = logging.LogRecord(_ANNOUNCER, logging.INFO, __file__, 0, message, None, None)
        record.__dict__.update(fields)
        message = JsonLineFormatter().format(record)
    print(message, file=out, flush=True)


def report_error(message: str) -> None:
    """A command's one-line error on stderr: `error: <message>` in text format; in JSON format
    an ERROR record of `ticketmate.cli`, written (and scrubbed) like every other log line."""
    if _json_lines:
        logging.getLogger(_ANNOUNCER).error(message)
    else:
        print(f"error: {message}", file=sys.stderr, flush=True)


class RequestIdMiddleware:
    """Takes the caller's X-Request-ID when well formed, or makes one; answers with it and puts
    it on every line logged while the request is served."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        given = next((v for k, v in scope["headers"] if k == _REQUEST_ID_HEADER), None)
        current = (
            given.decode("ascii")
            if given is not None and _WELL_FORMED_ID.fullmatch(given)
            else uuid.uuid4().hex
        )
        header = (_REQUEST_ID_HEADER, current.encode("ascii"))

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", ()), header]
            await send(message)

        token = request_id.set(current)
        try:
            await self.app(scope, receive, send_with_id)
        finally:
            request_id.reset(token)


class RequestLogMiddleware:
    """Logs `METHOD /path STATUS duration` once per request (no query string, no headers)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def send_and_record(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, send_and_record)
        finally:
            access_log.info(
                "%s %s %d %.1fms",
                scope["method"],
                scope["path"],
                status,
                (time.perf_counter() - started) * 1000,
            )
