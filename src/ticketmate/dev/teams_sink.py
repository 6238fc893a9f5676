"""A local stand-in for Teams webhooks: a real HTTP server that answers as Teams does.

It answers like a Workflows webhook (202, empty body) on paths containing `/workflows/` and
like a legacy connector (200, body `1`) elsewhere, unless told otherwise: scripted answers
(any status, body, headers, a delay past the client's timeout, or a connection reset with no
answer at all) are taken in order per path.
An answer can also quote the request's own URL back, in the forms receivers have been seen to
use (whole, without scheme, without host, percent-encoded), to test that nothing stores it.
It records every request with its arrival time, so tests can check order, rate and content.
A GET of `/` is a page listing what arrived, newest first, each card drawn by the Adaptive
Cards renderer the admin UI uses (served from the package, nothing from other sites);
`/_received` is the same as JSON. Those reads are not recorded.
`ticketmate dev teams-sink` runs one and prints each card as it arrives.
"""

from __future__ import annotations

import asyncio
import html
import json
import string
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote

from aiohttp import web


@dataclass(frozen=True)
class Answer:
    """One scripted answer. With `echo`, `body` is a template quoting the request's URL:
    $url (whole), $authority (host:port), $target (path and query), $path, $query,
    $url_encoded and $url_encoded_twice (percent-encoded once or twice)."""

    status: int = 200
    body: str = "1"
    headers: dict[str, str] = field(default_factory=dict)
    delay_seconds: float = 0.0
    echo: bool = False
    reset: bool = False  # drop the connection (after any delay) instead of answering

    def body_for(self, authority: str, target: str) -> str:
        if not self.echo:
            return self.body
        url = f"http://{authority}{target}"
        path, _, query = target.partition("?")
        return string.Template(self.body).safe_substitute(
            url=url,
            authority=authority,
            target=target,
            path=path,
            query=query,
            url_encoded=quote(url, safe=""),
            url_encoded_twice=quote(quote(url, safe=""), safe=""),
        )


WORKFLOWS_OK = Answer(202, "")
CONNECTOR_OK = Answer(200, "1")


@dataclass(frozen=True)
class Received:
    path: str
    query: str
    headers: dict[str, str]
    body: bytes
    at: float  # time.monotonic() when the request arrived
    wall_time: float  # time.time() when it arrived
    answered: int  # the status sent back; 0 for a dropped connection
    answer: Answer = CONNECTOR_OK  # the whole answer: its headers, delay, reset

    @property
    def clean_success(self) -> bool:
        """Answered 2xx at once, so the client saw it accepted (a connector's error text in a
        200 body is not looked at)."""
        return 200 <= self.answered < 300 and not self.answer.delay_seconds

    def json(self) -> Any:
        return json.loads(self.body)


class TeamsSink:
    """The stand-in. Start it with start() (own thread) or serve it with run_forever()."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        self.host = host
        self.port = port
        self._scripts: dict[str, deque[Answer]] = {}
        self._defaults: dict[str, Answer] = {}
        self._received: list[Received] = []
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._runner: web.AppRunner | None = None
        self._thread: threading.Thread | None = None
        self.on_receive: Callable[[Received], None] | None = None

    # -- behaviour -------------------------------------------------------------------------

    def script(self, path: str, *answers: Answer) -> None:
        """Answer the next requests to `path` with these, in order, then as by default."""
        with self._lock:
            self._scripts.setdefault(path, deque()).extend(answers)

    def set_default(self, path: str, answer: Answer) -> None:
        with self._lock:
            self._defaults[path] = answer

    def _answer_for(self, path: str) -> Answer:
        with self._lock:
            queued = self._scripts.get(path)
            if queued:
                return queued.popleft()
            if path in self._defaults:
                return self._defaults[path]
        return WORKFLOWS_OK if "/workflows/" in path else CONNECTOR_OK

    # -- what arrived ----------------------------------------------------------------------

    def received(self, path: str | None = None) -> list[Received]:
        with self._lock:
            return [r for r in self._received if path is None or r.path == path]

    def wait_for(
        self, count: int, path: str | None = None, timeout: float = 10.0
    ) -> list[Received]:
        """Block until `count` requests (to `path`, or to any) have arrived; raise if they don't."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while True:
                found = [r for r in self._received if path is None or r.path == path]
                if len(found) >= count:
                    return found
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise TimeoutError(f"{len(found)} of {count} requests arrived at the sink")
                self._changed.wait(remaining)

    def url(self, path: str) -> str:
        return f"http://{self.host}:{self.port}{path}"

    # -- server ----------------------------------------------------------------------------

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        arrived, wall = time.monotonic(), time.time()
        body = await request.read()
        answer = self._answer_for(request.path)
        record = Received(
            request.path,
            request.query_string,
            dict(request.headers),
            body,
            arrived,
            wall,
            0 if answer.reset else answer.status,
            answer,
        )
        with self._changed:
            self._received.append(record)
            self._changed.notify_all()
        if self.on_receive is not None:
            self.on_receive(record)
        if answer.delay_seconds:
            await asyncio.sleep(answer.delay_seconds)
        if answer.reset and request.transport is not None:
            # abort() closes the socket at once, unflushed: the client sees a reset, not an
            # answer, as when a proxy or Teams' front door drops the connection.
            request.transport.abort()
            raise asyncio.CancelledError
        # raw_path is the path and query exactly as they arrived, before any decoding.
        text = answer.body_for(request.host, request.raw_path)
        return web.Response(status=answer.status, text=text, headers=answer.headers)

    def _app(self) -> web.Application:
        app = web.Application(client_max_size=4 * 1024 * 1024)
        # GET-only routes: any other method on these paths still reaches _handle, so a
        # webhook posted anywhere is answered and recorded as before.
        app.router.add_get("/", self._page)
        app.router.add_get(CARDS_PATH, self._cards)
        app.router.add_get(RECEIVED_PATH, self._received_json)
        app.router.add_get(STATIC_PREFIX + "{name}", self._static)
        # Browsers ask for it when the page opens; it is not a message from Ticket MATE.
        app.router.add_get("/favicon.ico", self._no_icon)
        app.router.add_route("*", "/{tail:.*}", self._handle)
        return app

    # -- the page ----------------------------------------------------------------------------

    async def _page(self, _request: web.Request) -> web.Response:
        return web.Response(text=render_page(self.received()), content_type="text/html")

    async def _cards(self, request: web.Request) -> web.Response:
        received = self.received()
        # htmx leaves the list alone on a 204, so the cards are not redrawn every poll.
        if request.query.get("seen") == str(len(received)):
            return web.Response(status=204)
        return web.Response(text=render_cards(received), content_type="text/html")

    async def _received_json(self, _request: web.Request) -> web.Response:
        received = self.received()
        items = [shown(index, record) for index, record in reversed(list(enumerate(received)))]
        return web.json_response({"count": len(received), "items": items})

    async def _no_icon(self, _request: web.Request) -> web.Response:
        return web.Response(status=204)

    async def _static(self, request: web.Request) -> web.StreamResponse:
        relative = PAGE_SCRIPTS.get(request.match_info["name"])
        if relative is None:
            raise web.HTTPNotFound()
        return web.FileResponse(STATIC_DIR / relative)

    async def _start(self) -> None:
        self._runner = web.AppRunner(
            self._app(), access_log=None, handle_signals=False, shutdown_timeout=0.1
        )
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port)
        await site.start()
        server = site._server
        if self.port == 0 and server is not None:
            sockets = getattr(server, "sockets", None) or []
            self.port = int(sockets[0].getsockname()[1])

    def start(self) -> TeamsSink:
        """Serve from a background thread; returns once the port is open."""
        ready = threading.Event()
        failure: list[BaseException] = []

        def run() -> None:
            loop = asyncio.new_event_loop()
            self._loop = loop
            try:
                loop.run_until_complete(self._start())
            except BaseException as exc:
                failure.append(exc)
                loop.close()
                return
            finally:
                ready.set()
            loop.run_forever()
            if self._runner is not None:
                loop.run_until_complete(self._runner.cleanup())
            loop.close()

        self._thread = threading.Thread(target=run, name="teams-sink", daemon=True)
        self._thread.start()
        if not ready.wait(10) or failure:
            raise RuntimeError("the Teams stand-in did not start") from (
                failure[0] if failure else None
            )
        return self

    def stop(self) -> None:
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self._loop.stop)
        if self._thread is not None:
            self._thread.join(10)

    async def run_forever(self) -> None:
        await self._start()
        await asyncio.Event().wait()

    def __enter__(self) -> TeamsSink:
        return self.start()

    def __exit__(self, *_exc: object) -> None:
        self.stop()


def headline(record: Received) -> str:
    """The card's first texts, or the start of the body when it holds no card."""
    try:
        message = record.json()
        card = message["attachments"][0]["content"]
        texts = [b.get("text", "") for b in card.get("body", []) if isinstance(b, dict)]
        return " | ".join(t for t in texts if t)[:200]
    except (ValueError, KeyError, IndexError, TypeError, AttributeError):
        return record.body[:200].decode("utf-8", errors="replace")


def describe(record: Received) -> str:
    """One readable line for a message that arrived: the card's first texts."""
    return f"{record.path} → {record.answered}: {headline(record)}"


# -- the page of what arrived -----------------------------------------------------------------

CARDS_PATH = "/_cards"
RECEIVED_PATH = "/_received"
STATIC_PREFIX = "/_static/"
STATIC_DIR = Path(__file__).resolve().parent.parent / "web" / "static"
# The admin UI's own files: app.js draws every [data-adaptive-card] box that htmx swaps in,
# with the same Markdown handling as the delivery page (Jira text never becomes markup).
PAGE_SCRIPTS = {
    "htmx.min.js": "vendor/htmx/htmx.min.js",
    "adaptivecards.min.js": "vendor/adaptivecards/adaptivecards.min.js",
    "app.js": "app.js",
}
POLL_SECONDS = 2


def shown_path(path: str) -> str:
    """The path with its long segments cut short: a real connector URL carries its secrets in
    the path (a Workflows URL in the query, which is never shown)."""
    parts = [p if len(p) <= 16 else p[:6] + "…" for p in path.split("/")]
    return "/".join(parts)


def card_of(record: Received) -> dict[str, Any] | None:
    try:
        content = record.json()["attachments"][0]["content"]
    except (ValueError, KeyError, IndexError, TypeError):
        return None
    return content if isinstance(content, dict) else None


def outcome_of(record: Received) -> str:
    if record.answer.reset:
        return "connection dropped, no answer"
    if record.answer.delay_seconds:
        return f"answered {record.answered} after {record.answer.delay_seconds:g} s"
    return f"answered {record.answered}"


def shown(index: int, record: Received) -> dict[str, Any]:
    """One arrival as the page and /_received give it: never the query, never the headers."""
    return {
        "index": index,
        "path": shown_path(record.path),
        "answered": record.answered,
        "outcome": outcome_of(record),
        "received_at": datetime.fromtimestamp(record.wall_time, UTC)
        .isoformat(timespec="seconds")
        .replace("+00:00", "Z"),
        "headline": headline(record),
        "card": card_of(record),
    }


def _script_json(value: Any) -> str:
    # Inside <script>, "</script>" or "<!--" in Jira text must not end the element.
    text = json.dumps(value, ensure_ascii=False)
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def render_cards(received: list[Received]) -> str:
    """The list of arrivals, newest first, polling for more (the fragment htmx swaps in)."""
    count = len(received)
    rows = []
    for index, record in reversed(list(enumerate(received))):
        item = shown(index, record)
        good = 200 <= record.answered < 300 and not record.answer.delay_seconds
        meta = (
            f'<p class="meta"><span class="status {"ok" if good else "bad"}">'
            f"{html.escape(item['outcome'])}</span> <code>{html.escape(item['path'])}</code> "
            f'<time datetime="{item["received_at"]}">{item["received_at"]}</time></p>'
        )
        if item["card"] is not None:
            body = (
                f'<div class="card-preview" data-adaptive-card="card-{index}">'
                f"{html.escape(item['headline'])}</div>"
                f'<script type="application/json" id="card-{index}">'
                f"{_script_json(item['card'])}</script>"
            )
        else:
            body = f'<pre class="raw">{html.escape(item["headline"])}</pre>'
        rows.append(f'<li class="received" data-answered="{record.answered}">{meta}{body}</li>')
    listing = (
        f'<ol class="cards">{"".join(rows)}</ol>'
        if rows
        else ('<p class="empty">Nothing has arrived yet.</p>')
    )
    noun = "request" if count == 1 else "requests"
    return (
        f'<section id="received" data-count="{count}" hx-get="{CARDS_PATH}?seen={count}" '
        f'hx-trigger="every {POLL_SECONDS}s" hx-swap="outerHTML">'
        f'<p class="count">{count} {noun} received</p>{listing}</section>'
    )


PAGE_STYLE = """
body { font-family: 'Segoe UI', system-ui, -apple-system, sans-serif; margin: 0;
  background: #f5f5f5; color: #242424; }
header { background: #5b5fc7; color: #fff; padding: .8rem 1.5rem; }
header h1 { margin: 0; font-size: 1.3rem; }
header p { margin: .3rem 0 0; font-size: .9rem; }
main { padding: 1rem 1.5rem; max-width: 44rem; }
ol.cards { list-style: none; padding: 0; margin: 0; }
li.received { margin-bottom: 1.2rem; }
.meta { margin: 0 0 .3rem; font-size: .85rem; color: #616161; }
.status { font-weight: 600; padding: .05rem .4rem; border-radius: 4px; }
.status.ok { background: #dff6dd; color: #0e7a0b; }
.status.bad { background: #fde7e9; color: #c4314b; }
.card-preview { border: 1px solid #e0e0e0; border-radius: 8px; background: #fff;
  box-shadow: 0 1px 3px rgba(0,0,0,.08); overflow: hidden; }
.card-preview .ac-pushButton { border: 1px solid #e0e0e0; background: #fff; color: #242424;
  border-radius: 4px; padding: .3rem .8rem; font-size: 14px; cursor: pointer; }
pre.raw { background: #fff; border: 1px solid #e0e0e0; padding: .5rem; white-space: pre-wrap; }
"""


def render_page(received: list[Received]) -> str:
    scripts = "".join(f'<script src="{STATIC_PREFIX}{name}"></script>' for name in PAGE_SCRIPTS)
    return (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        "<title>Teams stand-in · Ticket MATE</title>"
        f"<style>{PAGE_STYLE}</style></head><body>"
        "<header><h1>Teams stand-in</h1><p>What Ticket MATE posted here, newest first: each "
        "card drawn as Teams shows it, with the answer it got. New arrivals appear by "
        "themselves.</p></header>"
        f"<main>{render_cards(received)}</main>{scripts}</body></html>"
    )
