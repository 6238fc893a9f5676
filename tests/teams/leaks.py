"""Webhook URLs with fresh secret parts, Teams answers that quote them back in the forms
receivers have been seen to use, and a check that no part of a secret is left in a text."""

from __future__ import annotations

import html
import secrets
from dataclasses import dataclass
from urllib.parse import unquote

from ticketmate.dev.teams_sink import Answer, TeamsSink
from ticketmate.teams.client import EXCERPT_BYTES

# A fragment this long of an id or signature counts as a leak. Shorter runs occur by chance
# (and the masked URL shows the last 4 characters on purpose).
WINDOW = 8

CONNECTOR_ERROR = (
    "Webhook message delivery failed with error: Microsoft Teams endpoint returned "
    "HTTP error 403 with ContextId tcid=0,server=msgapi-canary-eus-02-1,cv=deadbeef.0 for "
)


@dataclass(frozen=True)
class SecretWebhook:
    kind: str  # workflows | connector
    path: str
    query: str
    ids: tuple[str, ...]  # the flow or connector ids and the signature: each one a secret

    @property
    def target(self) -> str:
        return f"{self.path}?{self.query}" if self.query else self.path

    def url(self, sink: TeamsSink) -> str:
        return sink.url(self.target)


def workflows_hook() -> SecretWebhook:
    flow = secrets.token_hex(16)
    sig = secrets.token_urlsafe(32)
    return SecretWebhook(
        "workflows",
        f"/powerautomate/automations/direct/workflows/{flow}/triggers/manual/paths/invoke",
        f"api-version=1&sp=%2Ftriggers%2Fmanual%2Frun&sv=1.0&sig={sig}",
        (flow, sig),
    )


def _guid() -> str:
    h = secrets.token_hex(16)
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def connector_hook() -> SecretWebhook:
    group, tenant, owner = _guid(), _guid(), _guid()
    connector = secrets.token_hex(16)
    token = "V2" + secrets.token_urlsafe(33)
    return SecretWebhook(
        "connector",
        f"/webhookb2/{group}@{tenant}/IncomingWebhook/{connector}/{owner}/{token}",
        "",
        (group, tenant, connector, owner, token),
    )


HOOKS = {"workflows": workflows_hook, "connector": connector_hook}

# How the answer quotes the URL ($… are filled in by the stand-in from the request it got).
ECHOES = {
    "whole URL": "$url",
    "without scheme": "$authority$target",
    "without host": "$target",
    "path only": "$path",
    "query only": "$query",
    "URL-encoded": "$url_encoded",
    "URL-encoded twice": "$url_encoded_twice",
}
SPLIT = "split across the excerpt cut"
BARE_SPLIT = "bare secret split across the excerpt cut"  # no URL around it to be found by
SPLITS = (SPLIT, BARE_SPLIT)
FORMS = [*ECHOES, *SPLITS]


def applies(kind: str, form: str) -> bool:
    return not (kind == "connector" and form == "query only")  # connectors have no query


def cut_piece(hook: SecretWebhook) -> str:
    """What the excerpt's cut leaves of the last secret in the SPLIT form: too short to be found
    as a fragment, so only scrubbing before the cut removes it (random enough not to occur by
    chance: a connector token's fixed "V2" is not counted)."""
    last = hook.ids[-1]
    return last[: 7 if last.startswith("V2") else 5]


def echo_answer(hook: SecretWebhook, form: str) -> Answer:
    """Teams' refusal quoting the URL: a Workflows 403, or a connector's 200 with an error."""
    lead = (CONNECTOR_ERROR if hook.kind == "connector" else "") + "Forbidden: "
    status = 200 if hook.kind == "connector" else 403
    if form in SPLITS:
        # The excerpt keeps the first EXCERPT_BYTES of the answer: let that cut fall a few
        # characters into the last secret, so a cut-then-scrub would keep its beginning.
        quoted = hook.target if form == SPLIT else hook.ids[-1]
        into = quoted.index(hook.ids[-1]) + len(cut_piece(hook))
        padding = ("the request was refused " * 200)[: EXCERPT_BYTES - len(lead) - into]
        return Answer(status, lead + padding + quoted + " is not valid")
    return Answer(status, f"{lead}{ECHOES[form]} (the signature does not match)", echo=True)


def views(text: str) -> list[str]:
    """The text as stored, and as a reader would decode it (HTML entities, %-encoding)."""
    unescaped = html.unescape(text)
    return [v.lower() for v in (text, unescaped, unquote(unescaped), unquote(unquote(unescaped)))]


def leaks(text: str, hook: SecretWebhook) -> list[str]:
    """The secret parts (or fragments of WINDOW characters of them) found in `text`."""
    found: list[str] = []
    for view in views(text):
        for whole in (hook.path, hook.query):
            if whole and whole.lower() in view:
                found.append(whole)
        for secret in hook.ids:
            for start in range(len(secret) - WINDOW + 1):
                fragment = secret[start : start + WINDOW]
                if fragment.lower() in view:
                    found.append(fragment)
                    break
    return sorted(set(found))


def assert_no_secret(where: str, text: str | None, hook: SecretWebhook) -> None:
    assert text is not None, where
    assert leaks(text, hook) == [], f"{where} holds part of the webhook's secret: {text!r}"
