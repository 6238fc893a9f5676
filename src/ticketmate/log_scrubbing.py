"""Scrubbing log records: no webhook URL's secret part, signature, token or password in a line.

Whoever logs — this service, uvicorn, Alembic, asyncio, aiohttp or any other library — may put
a secret in a message, in its %-arguments, in an `extra=` field or in an exception's text. So
`ScrubSecrets` sits on the handlers, where every record passes whatever logger it came from, and
removes by shape:

- Teams, Workflows and Power Automate URLs: the scheme and host stay, the path and the query go
  (they are the secret); also without a scheme, and a Teams path or a `sig=` without a host
  (the shapes of teams/scrubbing.py, which scrubs Teams' answers the same way);
- `Bearer …` and `Authorization: …` credentials, the password in `scheme://user:password@`;
- the service's own credentials: API tokens (`tm_…`), ingest tokens (`tmi_…`), and Jira
  secrets and session tokens (43 characters of base64url, from `secrets.token_urlsafe(32)`);
- values of password, secret and token fields: `password=…`, `password: …`, `"password": "…"`.

It works on the record before any formatter sees it: the message is formatted with its
arguments and scrubbed, the exception and stack texts are rendered, scrubbed and kept in
`exc_text` / `stack_info` (and `exc_info` cleared so no formatter renders the raw one again).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from functools import lru_cache
from typing import Any

from ticketmate.teams.scrubbing import (
    COLON,
    REMOVED,
    SIGNATURE,
    SIGNATURE_JSON,
    SIGNATURE_JSON_REMOVED,
    SIGNATURE_REMOVED,
    SLASH,
    TEAMS_PATH,
    URL_END,
    URL_REMOVED,
)

# Where Teams webhooks live: Workflows (Power Automate, Logic Apps) and the legacy connectors.
_TEAMS_HOSTS = (
    "logic.azure.com",
    "powerplatform.com",
    "powerautomate.com",
    "flow.microsoft.com",
    "azure-apim.net",
    "office.com",
    "office365.com",
)
_TEAMS_HOST = re.compile(
    rf"(?i)(?:[a-z0-9-]+\.)*(?:{'|'.join(re.escape(h) for h in _TEAMS_HOSTS)})\.?"
)
# A path is Power Automate's on any host (a proxy in front, a region not listed above).
_POWER_AUTOMATE_PATH = re.compile(r"(?i)powerautomate|/triggers/manual/|paths(?:/|\\/|%2f)invoke")
_BASE64URL = r"[A-Za-z0-9_\-]"
_KEY = r"(?:password|passwd|pwd|secret|token|api[_-]?key)"
# An `extra=` field or dict key so named holds a secret whatever its value looks like.
_SECRET_KEY = re.compile(rf"(?i)(?:{_KEY}|authorization)$")


def _url(match: re.Match[str]) -> str:
    rest = match["rest"]
    if rest and (
        _TEAMS_HOST.fullmatch(match["host"])
        or TEAMS_PATH.search(rest)
        or SIGNATURE.search(rest)
        or _POWER_AUTOMATE_PATH.search(rest)
    ):
        return f"{match['origin']}/{REMOVED}"
    return match[0]  # another site's URL: the rules after this one still look at its query


def _secret(match: re.Match[str]) -> str:
    # token_urlsafe(32) mixes upper and lower case (all but about once in 10^9); names of
    # exactly this length in one case (snake_case identifiers) are not secrets.
    run = match[0]
    return run if run.islower() or run.isupper() else REMOVED


_Replacement = str | Callable[[re.Match[str]], str]

# (what a text must contain, lower-cased, for the rule to apply; the shape; its replacement),
# applied in this order: a webhook URL goes whole before its parts (a `sig=`) are looked at.
_RULES: tuple[tuple[tuple[str, ...], re.Pattern[str], _Replacement], ...] = (
    # scheme://user:password@ (a database URL, a proxy URL)
    (("://",), re.compile(r"(://[^\s:/@\"'<>]*:)[^\s/@\"'<>]+(?=@)"), rf"\1{REMOVED}"),
    # A URL with a scheme, as written, percent-encoded or JSON-escaped.
    (
        ("://", ":\\/", ":%2", "%3a"),
        re.compile(
            rf"(?i)(?P<origin>\b(?:https?|wss?){COLON}{SLASH}{SLASH}"
            rf"(?P<host>[a-z0-9.-]+|\[[0-9a-f:.]+\])(?:{COLON}\d{{1,5}})?)"
            rf"(?P<rest>(?:{SLASH}|[?#]|%3f){URL_END})?"
        ),
        _url,
    ),
    # A Teams host without a scheme, followed by a path.
    (
        _TEAMS_HOSTS,
        re.compile(
            rf"(?i)(?<![\w.%/-])({_TEAMS_HOST.pattern.removeprefix('(?i)')}"
            rf"(?:{COLON}\d{{1,5}})?){SLASH}{URL_END}"
        ),
        rf"\1/{REMOVED}",
    ),
    (
        ("workflows", "webhookb2", "webhook/", "webhook\\/", "webhook%2"),
        TEAMS_PATH,
        URL_REMOVED,
    ),
    (("sig",), SIGNATURE, SIGNATURE_REMOVED),
    (('"sig"',), SIGNATURE_JSON, SIGNATURE_JSON_REMOVED),
    # "password": "…", 'password': '…' (JSON, a Python dict; JSON inside JSON), password="…".
    (
        ("passw", "pwd", "secret", "token", "apikey", "api_key", "api-key"),
        re.compile(
            rf"(?i)((?:\\?[\"'][\w-]{{0,40}}?)?{_KEY}\\?[\"']?\s*[:=]\s*\\?(?P<quote>[\"']))"
            r"(?:\\.|(?!(?P=quote))[^\\])*"
        ),
        rf"\1{REMOVED}",
    ),
    # password=…, password: …, ?token=…
    (
        ("passw", "pwd", "secret", "token", "apikey", "api_key", "api-key"),
        re.compile(rf"(?i)({_KEY}\s*[:=]\s*)(?![\"'\s\\])(?!\[removed\])[^\s&,;\"'<>)\]}}\\]+"),
        rf"\1{REMOVED}",
    ),
    # Authorization: Bearer …, and Bearer … alone.
    (("bearer",), re.compile(r"(?i)\b(bearer\s+)(?!\[removed\])[\w.~+/-]+=*"), rf"\1{REMOVED}"),
    (
        ("authoriz",),
        re.compile(
            r"(?i)\b((?:proxy-)?authorization\\?[\"']?\s*[:=]\s*\\?[\"']?"
            r"(?:(?:basic|digest|token|negotiate)\s+)?)(?!bearer\b)(?!\[removed\])[^\s\"',;}\\]+"
        ),
        rf"\1{REMOVED}",
    ),
    # The service's own API tokens (tm_…) and ingest tokens (tmi_…).
    (("tm_", "tmi_"), re.compile(rf"(?i)(?<![a-z0-9])(tmi?_){_BASE64URL}{{8,}}"), rf"\1{REMOVED}"),
)
# No trigger overlaps another, so a search that finds one cannot hide another.
_TRIGGERS: dict[str, frozenset[int]] = {
    trigger: frozenset(i for i, rule in enumerate(_RULES) if trigger in rule[0])
    for rule in _RULES
    for trigger in rule[0]
}
_TRIGGER = re.compile("|".join(re.escape(t) for t in sorted(_TRIGGERS, key=len, reverse=True)))
_ANY_TRIGGER = tuple(_TRIGGERS)
# Shorter than a secret, without a separator any rule needs (/ : = % space _ quotes).
_PLAIN = re.compile(r"[A-Za-z0-9.\-]{0,42}")
# The Jira secret, session and CSRF tokens: secrets.token_urlsafe(32), 43 characters.
_SECRET_LENGTH = 43
# Whether a text may hold such a run, in fewer steps than the exact pattern: a run starts at a
# word boundary (ASCII: what precedes it is not a token character) or with a "-".
_SECRET_RUN = re.compile(
    rf"\b{_BASE64URL}{{{_SECRET_LENGTH}}}|-{_BASE64URL}{{{_SECRET_LENGTH - 1}}}", re.ASCII
)
_SECRET = re.compile(rf"(?<!{_BASE64URL}){_BASE64URL}{{{_SECRET_LENGTH}}}(?!{_BASE64URL})")


def scrub_text(text: str) -> str:
    """`text` with every secret-shaped part replaced (see the module's docstring)."""
    if _PLAIN.fullmatch(text):  # an id, a slug, a number: nothing any rule could match
        return text
    lowered = text.lower()
    # Most lines hold none of the rules' words; `in` finds that out faster than one regex.
    for trigger in _ANY_TRIGGER:
        if trigger in lowered:
            found = {i for t in _TRIGGER.findall(lowered) for i in _TRIGGERS[t]}
            for index, (_triggers, shape, replacement) in enumerate(_RULES):
                if index in found:
                    text = shape.sub(replacement, text)
            break
    if len(text) >= _SECRET_LENGTH and _SECRET_RUN.search(text):
        text = _SECRET.sub(_secret, text)
    return text


@lru_cache(maxsize=512)
def _names_a_secret(key: str) -> bool:
    return _SECRET_KEY.search(key) is not None


def _scrub_value(value: Any, key: object = None, depth: int = 0) -> Any:
    if isinstance(key, str) and value and _names_a_secret(key):
        return REMOVED
    if isinstance(value, str):
        return scrub_text(value)
    if value is None or isinstance(value, bool | int | float):
        return value
    if depth < 4:
        if isinstance(value, dict):
            return {k: _scrub_value(v, k, depth + 1) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return [_scrub_value(item, None, depth + 1) for item in value]
    # Anything else is written as its text (by the JSON formatter too): scrub that text.
    return scrub_text(str(value))


# The attributes every LogRecord has; anything else on a record came from `extra=`.
_STANDARD = frozenset(logging.LogRecord("", 0, "", 0, "", None, None).__dict__) | {
    "message",
    "asctime",
}
_SCRUBBED = "_ticketmate_scrubbed"
_RENDER = logging.Formatter()


class ScrubSecrets(logging.Filter):
    """Removes secrets from every record it sees (put it on handlers: they see every logger)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.__dict__.get(_SCRUBBED):  # another handler of ours got to it first
            return True
        record.__dict__[_SCRUBBED] = True
        self._message(record)
        if record.exc_info:
            record.exc_text = _RENDER.formatException(record.exc_info)
            record.exc_info = None
        if record.exc_text:
            record.exc_text = scrub_text(record.exc_text)
        if record.stack_info:
            record.stack_info = scrub_text(record.stack_info)
        for key in record.__dict__.keys() - _STANDARD:
            if not key.startswith("_"):
                record.__dict__[key] = _scrub_value(record.__dict__[key], key)
        return True

    @staticmethod
    def _message(record: logging.LogRecord) -> None:
        if isinstance(record.msg, dict) and not record.args:
            record.msg = _scrub_value(record.msg)
            return
        try:
            message = record.getMessage()
        except Exception:  # arguments that do not fit: keep both, as text
            message = f"{record.msg} {record.args!r}"
        record.msg = scrub_text(message)
        record.args = None
