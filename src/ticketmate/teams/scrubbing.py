"""Scrubbing Teams' answers: no part of a webhook's secret is stored, logged or shown.

A webhook URL is a bearer secret: its path (the flow or connector ids) and its query (the `sig`
signature) are all anyone needs to post to the channel. Teams, and whatever answers in front of
it, sometimes quote the request's URL in an error: whole, without its scheme, without its host,
percent-encoded (once or twice), JSON-escaped, or cut short. So before anything from an answer
is kept, it is scrubbed twice over:

- by what is secret: every occurrence of this webhook's own URL, path and query, and of each of
  its ids and signature values, in the forms an echo takes (as sent, decoded, percent-encoded
  once or twice, JSON-escaped), in any letter case; and any run of `FRAGMENT` or more characters
  of an id or signature, which is what is left of one cut short or broken by a line;
- by shape, whoever's URL it is: anything that looks like a URL (with or without its scheme),
  a Teams webhook path, or a `sig=` parameter.

The answer is scrubbed whole, before the excerpt is cut from it, so no cut can leave part of a
secret behind; and when the answer was longer than what was read, a tail that begins a secret
is dropped too.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from urllib.parse import quote, unquote, urlsplit

URL_REMOVED = "[url removed]"
REMOVED = "[removed]"

# A run this long of an id or signature is removed wherever it appears. Teams' own answers hold
# random hex (ContextId, cv=…) too, but a chance match of this length with one of a webhook's
# ids is vanishingly rare, and would cost only a few characters of the answer.
FRAGMENT = 6
SHORT_TOKEN = 4  # shorter ids or values are left to the whole-URL and shape rules

# Path segments every Teams webhook URL of a kind shares: public words, not secrets.
_PUBLIC_SEGMENTS = frozenset(
    {
        "powerautomate",
        "automations",
        "direct",
        "cu",
        "workflows",
        "triggers",
        "manual",
        "paths",
        "invoke",
        "run",
        "webhookb2",
        "webhook",
        "incomingwebhook",
    }
)
# Query parameters that say which API and permission the signature covers, not the signature.
_PUBLIC_PARAMETERS = frozenset({"api-version", "sv", "sp"})

# Building blocks of a URL as an echo may write it: as sent, percent-encoded or JSON-escaped.
# The log scrubber (ticketmate.log_scrubbing) shares them and the shapes below.
SLASH = r"(?:/|\\/|%2f|%252f)"
COLON = r"(?::|%3a|%253a)"
URL_END = r"""[^\s"'<>]*"""  # a URL runs to the next space, quote or angle bracket
# A Teams path without its host: /workflows/<flow-id>…, /webhookb2/<id>@<tenant>/…,
# /IncomingWebhook/<id>/…, /webhook/<id>… (an id has digits; prose like "webhook/flow" not).
TEAMS_PATH = re.compile(
    rf"(?i)(?:(?<![a-z0-9])|(?<=%2f)|(?<=%252f))"
    rf"(?:workflows|webhookb2|webhook|incomingwebhook){SLASH}"
    rf"(?=[^\s\"'<>/\\%]*\d){URL_END}"
)
# A signature parameter on its own: sig=…, sig%3D…, "sig":"….
SIGNATURE = re.compile(r"(?i)(?<![a-z])sig(?:=|%3d|%253d|\\u003d)(?:(?!%26|%2526)[^\s&\"'<>\\])*")
SIGNATURE_JSON = re.compile(r"""(?i)"sig"\s*:\s*"[^"]*\"""")
SIGNATURE_REMOVED = f"sig={REMOVED}"
SIGNATURE_JSON_REMOVED = f'"sig":"{REMOVED}"'

_SHAPES: tuple[tuple[re.Pattern[str], str], ...] = (
    # Anything with a scheme, as written, percent-encoded or JSON-escaped.
    (re.compile(rf"(?i)\b(?:https?|wss?){COLON}{SLASH}{SLASH}{URL_END}"), URL_REMOVED),
    # host.name[:port]/… and host:port/… without a scheme.
    (
        re.compile(
            rf"(?i)(?<![\w.%-])(?:[a-z0-9-]+\.)+[a-z0-9-]+(?:{COLON}\d{{1,5}})?{SLASH}{URL_END}"
        ),
        URL_REMOVED,
    ),
    (re.compile(rf"(?i)(?<![\w.%-])[a-z0-9-]+{COLON}\d{{1,5}}{SLASH}{URL_END}"), URL_REMOVED),
    (TEAMS_PATH, URL_REMOVED),
    (SIGNATURE, SIGNATURE_REMOVED),
    (SIGNATURE_JSON, SIGNATURE_JSON_REMOVED),
)

_ASCII_LOWER = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz")


def _lower(text: str) -> str:
    # Lower-cases ASCII only, so that positions in the result are positions in `text`.
    return text.translate(_ASCII_LOWER)


def _forms(value: str) -> set[str]:
    """The ways an echo may write `value`: as sent, decoded, encoded once or twice, escaped."""
    decoded = unquote(value)
    encoded = quote(decoded, safe="")
    forms = {
        value,
        decoded,
        unquote(decoded),
        encoded,
        quote(encoded, safe=""),
        quote(decoded),  # slashes left as they are
        quote(value, safe=""),
    }
    forms |= {f.replace("/", "\\/").replace("&", "\\u0026") for f in forms}  # JSON
    forms |= {f.replace("&", "&amp;") for f in forms}  # HTML
    return {f for f in forms if f}


def _longest_first(values: Iterable[str]) -> tuple[str, ...]:
    # Lower-cased, to be found in any letter case; longer forms first, so that a whole URL
    # goes as one piece rather than bit by bit.
    return tuple(sorted({_lower(v) for v in values}, key=lambda v: (-len(v), v)))


class WebhookSecrets:
    """What of one webhook's URL must never appear in anything kept from Teams' answer."""

    __slots__ = ("grams", "tokens", "urls")

    def __init__(self, url: str = "") -> None:
        url = url.strip()
        wholes = [url]
        tokens: list[str] = []
        try:
            parts = urlsplit(url)
        except ValueError:  # not a URL we can take apart: its whole text is the secret
            parts = None
        if parts is not None:
            target = parts.path + (f"?{parts.query}" if parts.query else "")
            wholes += [parts.netloc + target, target, parts.path, parts.query]
            for segment in parts.path.split("/"):
                for piece in {segment, *unquote(segment).split("@")}:
                    if _lower(unquote(piece)) not in _PUBLIC_SEGMENTS:
                        tokens.append(piece)
            for parameter in parts.query.split("&"):
                name, _, value = parameter.partition("=")
                if _lower(unquote(name)) not in _PUBLIC_PARAMETERS:
                    tokens.append(value)
        self.urls = _longest_first(f for w in wholes if len(w) >= SHORT_TOKEN for f in _forms(w))
        self.tokens = _longest_first(f for t in tokens if len(t) >= SHORT_TOKEN for f in _forms(t))
        self.grams = frozenset(
            t[i : i + FRAGMENT]
            for t in self.tokens
            if len(t) >= FRAGMENT
            for i in range(len(t) - FRAGMENT + 1)
        )


NO_SECRETS = WebhookSecrets()


def _replace(text: str, forms: tuple[str, ...], marker: str) -> str:
    """Replace every occurrence of each (lower-cased) form, in any letter case, by `marker`."""
    lowered = _lower(text)
    for form in forms:
        at = lowered.find(form)
        while at >= 0:
            text = text[:at] + marker + text[at + len(form) :]
            lowered = lowered[:at] + marker + lowered[at + len(form) :]
            at = lowered.find(form, at + len(marker))
    return text


def _remove_fragments(text: str, grams: frozenset[str]) -> str:
    """Replace every run of FRAGMENT or more characters of a token with one REMOVED marker."""
    if not grams or len(text) < FRAGMENT:
        return text
    lowered = _lower(text)
    covered = bytearray(len(text))
    for start in range(len(text) - FRAGMENT + 1):
        if lowered[start : start + FRAGMENT] in grams:
            covered[start : start + FRAGMENT] = b"\1" * FRAGMENT
    if not any(covered):
        return text
    out: list[str] = []
    for index, char in enumerate(text):
        if not covered[index]:
            out.append(char)
        elif index == 0 or not covered[index - 1]:
            out.append(REMOVED)
    return "".join(out)


def _drop_cut_tail(text: str, secrets: WebhookSecrets) -> str:
    """A text cut off mid-secret ends with that secret's beginning: drop it (3+ characters)."""
    lowered = _lower(text)
    last = lowered[-1]
    longest = 0
    for form in (*secrets.urls, *secrets.tokens):
        # Only a prefix ending in the text's last character can be the text's end.
        end = form.rfind(last, 0, len(form) - 1)
        while end >= 2 and end + 1 > longest:
            if lowered.endswith(form[: end + 1]):
                longest = end + 1
                break
            end = form.rfind(last, 0, end)
    return text[:-longest] + REMOVED if longest else text


def scrub(text: str, secrets: WebhookSecrets = NO_SECRETS, *, cut_short: bool = False) -> str:
    """`text` from Teams' answer with every secret removed (see the module's docstring).

    `cut_short`: the text is only the beginning of a longer answer.
    """
    if not text:
        return text
    text = _replace(text, secrets.urls, URL_REMOVED)
    for shape, replacement in _SHAPES:
        text = shape.sub(replacement, text)
    text = _replace(text, secrets.tokens, REMOVED)
    text = _remove_fragments(text, secrets.grams)
    if cut_short:
        text = _drop_cut_tail(text, secrets)
    return text
