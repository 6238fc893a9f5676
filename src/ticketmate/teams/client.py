"""Talking to Teams: POST one message to a webhook and say what Teams' answer means.

Teams answers differently by URL kind (see the README's delivery section):
- Workflows (Power Automate): 202 Accepted with an empty body means accepted for posting.
- Legacy Office 365 connectors: 200 with body `1` means posted, but errors also come back as
  200 with an error text (`... returned HTTP error 429 ...`), which must count as that error.
Every request is sent as given: no redirects are followed, and the total time is capped.
Nothing of Teams' answer leaves this module unscrubbed (teams/scrubbing.py): the excerpt and
every message quoting the answer are built from the answer with the webhook's secrets removed.
"""

from __future__ import annotations

import asyncio
import re
import time
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Literal

import aiohttp
import yarl

from ticketmate.security.urls import retired_refusal
from ticketmate.teams.scrubbing import NO_SECRETS, WebhookSecrets
from ticketmate.teams.scrubbing import scrub as scrub_secrets

Outcome = Literal["delivered", "retry", "dead_letter"]

EXCERPT_BYTES = 2048  # kept of an answer, per attempt
READ_BYTES = 16 * 1024  # read of an answer: enough to classify it; the rest is not read
_EMBEDDED_STATUS = re.compile(r"(?i)(?:HTTP error|status code|statuscode)\D{0,5}(\d{3})")
_ERROR_WORDS = re.compile(r"(?i)\b(error|failed|failure|exception|throttl)")


@dataclass(frozen=True)
class TeamsAnswer:
    """What one POST to Teams came to, and what the delivery should do next."""

    outcome: Outcome
    status_code: int | None
    latency_ms: int
    error_kind: str | None  # None on success; timeout | connect | http | teams_error_in_body | …
    message: str
    excerpt: str = ""
    retry_after_seconds: float | None = None
    removed: bool = False  # 404/410: the webhook is gone from the Teams channel
    # 429, or a connector's 200 quoting "HTTP error 429": the channel must rest.
    throttled: bool = False

    @property
    def ok(self) -> bool:
        return self.outcome == "delivered"


def scrub(text: str) -> str:
    """Remove anything shaped like a URL, a Teams webhook path or a signature."""
    return scrub_secrets(text)


def excerpt_of(scrubbed: str) -> str:
    """The first EXCERPT_BYTES of an answer that has already been scrubbed whole: cutting
    first could leave the beginning of a secret that the scrub then no longer recognises."""
    return scrubbed.encode("utf-8")[:EXCERPT_BYTES].decode("utf-8", errors="ignore")


def parse_retry_after(value: str | None, now: datetime | None = None) -> float | None:
    """Retry-After as seconds from now: either delta-seconds or an HTTP date."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - (now or datetime.now(UTC))).total_seconds())


def _quote(text: str, limit: int = 200) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def classify(
    status: int,
    body: bytes,
    *,
    retry_after: str | None = None,
    latency_ms: int = 0,
    webhook_url: str | None = None,
    cut_short: bool = False,
) -> TeamsAnswer:
    """Turn Teams' HTTP answer into an outcome and a sentence an administrator can act on.

    `webhook_url` is the URL the answer came from: its secret parts are scrubbed from all that
    is kept of the answer. `cut_short`: `body` is only the beginning of a longer answer.
    """
    raw = body.decode("utf-8", errors="replace")
    text = raw.strip()  # read to classify, never kept
    secrets = NO_SECRETS
    if webhook_url and text not in ("", "1"):
        secrets = WebhookSecrets(webhook_url)
    shown = scrub_secrets(raw, secrets, cut_short=cut_short)
    excerpt = excerpt_of(shown)
    shown = shown.strip()
    wait = parse_retry_after(retry_after)

    def answer(outcome: Outcome, kind: str | None, message: str, **extra: object) -> TeamsAnswer:
        return TeamsAnswer(
            outcome,
            status,
            latency_ms,
            kind,
            message,
            excerpt,
            retry_after_seconds=wait,
            **extra,  # type: ignore[arg-type]
        )

    if status == 200:
        if text in ("1", ""):
            return answer("delivered", None, "Teams posted the card to the channel.")
        if _ERROR_WORDS.search(text):
            return _error_in_body(status, text, shown, excerpt, latency_ms, wait)
        return answer("delivered", None, "Teams accepted the card (HTTP 200).")
    if status == 202:
        return answer(
            "delivered",
            None,
            "Teams accepted the card for posting (202 Accepted: Workflows posts it to the "
            "channel a moment later; a failure after that shows only in the flow's run history).",
        )
    if 200 <= status < 300:
        return answer("delivered", None, f"Teams accepted the card (HTTP {status}).")
    return _error_status(status, text, shown, excerpt, latency_ms, wait)


def _error_in_body(
    status: int, text: str, shown: str, excerpt: str, latency_ms: int, wait: float | None
) -> TeamsAnswer:
    # A connector's 200 carrying an error is that error: classify by the status it quotes.
    # `text` is the answer as it came, to classify; `shown` the scrubbed one, to quote.
    embedded = _EMBEDDED_STATUS.search(text)
    quoted = _quote(shown)
    if embedded:
        inner = _error_status(int(embedded.group(1)), text, shown, excerpt, latency_ms, wait)
        return TeamsAnswer(
            inner.outcome,
            status,
            latency_ms,
            "teams_error_in_body",
            f"Teams answered 200 but reported an error: “{quoted}”. {inner.message}",
            excerpt,
            retry_after_seconds=wait,
            removed=inner.removed,
            throttled=inner.throttled,
        )
    return TeamsAnswer(
        "retry",
        status,
        latency_ms,
        "teams_error_in_body",
        f"Teams answered 200 but reported an error: “{quoted}”.",
        excerpt,
        retry_after_seconds=wait,
    )


def _error_status(
    status: int, text: str, shown: str, excerpt: str, latency_ms: int, wait: float | None
) -> TeamsAnswer:
    def make(outcome: Outcome, kind: str, message: str, removed: bool = False) -> TeamsAnswer:
        return TeamsAnswer(
            outcome,
            status,
            latency_ms,
            kind,
            message,
            excerpt,
            retry_after_seconds=wait,
            removed=removed,
            throttled=status == 429,
        )

    detail = f" Teams said: “{_quote(shown)}”." if shown else ""
    if status == 429:
        return make(
            "retry",
            "throttled",
            "Teams throttled this webhook (429 Too Many Requests).",
        )
    if status == 408 or status >= 500:
        return make(
            "retry",
            "http",
            f"Teams had a temporary problem (HTTP {status}).{detail}",
        )
    if status in (404, 410):
        return make(
            "dead_letter",
            "removed",
            f"Teams answered {status}: this webhook was removed from the Teams channel (or its "
            "flow was deleted or its owner left) — create a new one and update it here.",
            removed=True,
        )
    if status in (401, 403):
        return make(
            "dead_letter",
            "unauthorized",
            f"Teams refused the webhook URL (HTTP {status}): "
            "its signature or the URL is no longer valid — check it was pasted whole "
            f"(no &amp;), or create a new webhook and update it here.{detail}",
        )
    if status == 413 or "MessageSizeExceeded" in text or "max allowed size" in text:
        return make(
            "dead_letter", "too_large", f"Teams refused the card as too large (HTTP {status})."
        )
    if 300 <= status < 400:
        return make(
            "dead_letter",
            "redirect",
            f"Teams answered with a redirect (HTTP {status}); "
            "webhook URLs are used exactly as given — check the URL.",
        )
    if status == 400:
        return make("dead_letter", "http", f"Teams refused the message (HTTP 400).{detail}")
    return make("dead_letter", "http", f"Teams refused the message (HTTP {status}).{detail}")


def with_url_family(answer: TeamsAnswer, url_family: str) -> TeamsAnswer:
    """The answer, its message naming the retirement when a URL of a retired family is
    refused (a logic.azure.com URL answered 404, 410, 401 or 403); otherwise unchanged."""
    if answer.ok:
        return answer
    reason = retired_refusal(url_family, answer.status_code)
    return answer if reason is None else replace(answer, message=reason)


def new_http_session(*, connections_per_host: int = 8) -> aiohttp.ClientSession:
    """The one shared session: pooled, kept-alive connections; cookies are never kept."""
    connector = aiohttp.TCPConnector(
        limit=256, limit_per_host=connections_per_host, ttl_dns_cache=300, keepalive_timeout=30
    )
    return aiohttp.ClientSession(
        connector=connector,
        cookie_jar=aiohttp.DummyCookieJar(),
        headers={"Content-Type": "application/json", "User-Agent": "TicketMATE/1.0"},
        raise_for_status=False,
    )


async def post_message(
    http: aiohttp.ClientSession, url: str, body: bytes, *, timeout_seconds: float
) -> TeamsAnswer:
    """POST the message body to the webhook URL; never raises for network trouble."""
    started = time.perf_counter()

    def elapsed() -> int:
        return int((time.perf_counter() - started) * 1000)

    try:
        # encoded=True: the signed query (sig=…, sp=%2F…) must reach Teams byte for byte;
        # letting the URL be parsed and re-encoded would alter it and break the signature.
        async with http.post(
            yarl.URL(url, encoded=True),
            data=body,
            allow_redirects=False,
            timeout=aiohttp.ClientTimeout(total=timeout_seconds),
        ) as response:
            payload = await _read_answer(response)
            return classify(
                response.status,
                payload,
                retry_after=response.headers.get("Retry-After"),
                latency_ms=elapsed(),
                webhook_url=url,
                cut_short=len(payload) >= READ_BYTES,
            )
    except TimeoutError:
        return TeamsAnswer(
            "retry",
            None,
            elapsed(),
            "timeout",
            f"Teams did not answer within {timeout_seconds:g} s.",
        )
    except aiohttp.ClientConnectorError as exc:
        return TeamsAnswer(
            "retry",
            None,
            elapsed(),
            "connect",
            f"Could not connect to Teams ({_connect_reason(exc, url)}).",
        )
    except (aiohttp.ClientError, OSError, asyncio.IncompleteReadError) as exc:
        return TeamsAnswer(
            "retry",
            None,
            elapsed(),
            "connect",
            f"The connection to Teams failed ({scrub(type(exc).__name__)}).",
        )


async def _read_answer(response: aiohttp.ClientResponse) -> bytes:
    """Up to READ_BYTES bytes of the answer. One read() returns what has arrived so far,
    which may be less: read on, so that what is scrubbed is all that is kept."""
    payload = b""
    while len(payload) < READ_BYTES:
        chunk = await response.content.read(READ_BYTES - len(payload))
        if not chunk:
            break
        payload += chunk
    return payload


def _connect_reason(exc: aiohttp.ClientConnectorError, url: str) -> str:
    # aiohttp's message names host and port only, never the path or query (the secret part),
    # but scrub anyway.
    reason = str(exc.os_error.strerror or exc.os_error) if exc.os_error else "no route"
    return scrub_secrets(reason, WebhookSecrets(url))
