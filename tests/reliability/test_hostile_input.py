"""Hostile input at the Jira intake of a real `ticketmate serve`, over plain HTTP.

Captured Jira payloads with bytes flipped, cut or added (signed again, or still carrying the
signature of the original), values of the wrong kind put into them, JSON of the wrong shape,
bodies at and over the 1 MiB limit (with a declared length and chunked), missing, wrong and
duplicated content types, odd charsets, malformed signatures and identifiers, and every kind of
workspace and token in the query string.

The intake's order of checks is its contract (jira/intake.py): a body over 1 MiB is 413, then
a content type that is not JSON 415, then an unknown workspace or a missing or wrong credential
401, then a body that is not a JSON object 400, and then the event is stored: 202, or 200 for an
identifier already stored. Each request is built knowing which checks it surely passes, surely
fails, or may go either way (where the input is ambiguous by design, such as an upper-case
slug), and its answer must be one that order allows: never a 5xx, every refusal in the error
shape, no traceback and none of the workspace's credentials in any answer. After the storm the
service still answers, still stores a good event, and exactly the events it acknowledged are
stored, byte for byte.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import http.client
import itertools
import json
import re
import select
import socket
import urllib.request
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from sqlalchemy import select as sql_select

from tests.reliability.conftest import SOAK, size
from tests.support.factories import MadeWorkspace
from tests.support.jira_client import issue_created_body
from tests.support.processes import ServeProcess
from tests.support.teams import make_subscription, make_webhook
from ticketmate.dev.teams_sink import TeamsSink
from ticketmate.jira.events import EventType
from ticketmate.models import JiraEventRecord
from ticketmate.state import Services
from ticketmate.workspaces.service import JiraCredentials

LIMIT = 1024 * 1024  # the documented body limit: larger is 413
INTAKE = "/api/webhooks/jira"
CAPTURES_DIR = Path(__file__).parents[1] / "fixtures" / "jira-payloads"
CAPTURES: list[bytes] = [p.read_bytes() for p in sorted(CAPTURES_DIR.glob("*.json"))]

# True: the check surely passes; False: it surely fails; None: either answer is right.
Verdict = bool | None

# Bytes a header value may carry on the wire (RFC 9110 field-value: HTAB, SP, VCHAR, obs-text).
# Control characters are refused by the HTTP parser before any application sees the request.
HEADER_BYTES = [0x09, *range(0x20, 0x7F), *range(0x80, 0x100)]
ERROR_CODES_BY_STATUS = {
    400: {"invalid_json", "not_json_object", "bad_request", "client_disconnected"},
    401: {"unauthorized"},
    413: {"payload_too_large"},
    415: {"unsupported_media_type"},
}
# Every mutation the storm must have tried at least once, and every refusal it must have met.
REQUIRED_TAGS = {
    "capture",
    "capture:flip",
    "capture:truncate",
    "capture:extend",
    "capture:inject",
    "capture:re-encode",
    "bom",
    "stale-signature",
    "content-type:missing",
    "content-type:wrong",
    "content-type:duplicated",
    "charset",
    "size:limit-exact",
    "size:over-limit",
    "size:far-over-limit",
    "size:empty",
    "chunked",
    "shape:array",
    "shape:number",
    "shape:nested-nulls",
    "deep-nesting",
    "long-string",
    "not-utf8",
    "lone-surrogate",
    "non-finite",
    "signature:malformed",
    "identifier:huge",
    "identifier:non-ascii",
    "workspace:missing",
    "workspace:unknown",
    "workspace:garbage",
    "token:query",
    "token:bearer",
    "token:wrong",
    "order:size-before-type",
    "order:type-before-credentials",
    "order:credentials-before-body",
}
REQUIRED_STATUSES = {202, 400, 401, 413, 415}


def both(a: Verdict, b: Verdict) -> Verdict:
    if a is False or b is False:
        return False
    if a is None or b is None:
        return None
    return True


def expected_statuses(length: int, media: Verdict, auth: Verdict, parse: Verdict) -> frozenset[int]:
    """What the intake may answer, walking its checks in their contractual order."""
    if length > LIMIT:
        return frozenset({413})
    statuses: set[int] = set()
    for verdict, refusal in ((media, 415), (auth, 401), (parse, 400)):
        if verdict is not True:
            statuses.add(refusal)
        if verdict is False:
            return frozenset(statuses)
    return frozenset(statuses | {200, 202})


@dataclass(frozen=True)
class Attack:
    tags: frozenset[str]
    body: bytes
    headers: tuple[tuple[str, bytes], ...]
    query: str  # percent-encoded, without the "?"
    chunked: bool
    expect: frozenset[int]

    def __repr__(self) -> str:
        # Bodies run to megabytes: show enough to rebuild the case, not all of it.
        headers = [(name, value[:120]) for name, value in self.headers]
        return (
            f"Attack(tags={sorted(self.tags)}, expect={sorted(self.expect)}, "
            f"chunked={self.chunked}, query={self.query[:200]!r}, headers={headers}, "
            f"body[{len(self.body)}]={self.body[:300]!r}…{self.body[-60:]!r})"
        )

    def _repr_pretty_(self, printer: Any, _cycle: bool) -> None:
        # Hypothesis prints dataclasses field by field; megabytes of body would drown the case.
        printer.text(repr(self))


# ---------------------------------------------------------------------------------------------
# Bodies


def _paths(value: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    found: list[tuple[Any, ...]] = [prefix] if prefix else []
    if isinstance(value, dict):
        for key, child in value.items():
            found += _paths(child, (*prefix, key))
    elif isinstance(value, list):
        for index, child in enumerate(value):
            found += _paths(child, (*prefix, index))
    return found


# Where the transformer looks: a hostile value there reaches the envelope and the card.
KNOWN_PATHS: list[tuple[Any, ...]] = [
    ("webhookEvent",),
    ("issue_event_type_name",),
    ("timestamp",),
    ("user",),
    ("user", "displayName"),
    ("issue",),
    ("issue", "id"),
    ("issue", "key"),
    ("issue", "self"),
    ("issue", "fields"),
    ("issue", "fields", "summary"),
    ("issue", "fields", "description"),
    ("issue", "fields", "status"),
    ("issue", "fields", "status", "name"),
    ("issue", "fields", "status", "statusCategory"),
    ("issue", "fields", "priority"),
    ("issue", "fields", "issuetype"),
    ("issue", "fields", "project"),
    ("issue", "fields", "project", "key"),
    ("issue", "fields", "assignee"),
    ("issue", "fields", "labels"),
    ("issue", "fields", "components"),
    ("issue", "fields", "security"),
    ("changelog",),
    ("changelog", "items"),
    ("comment",),
    ("comment", "id"),
    ("comment", "body"),
    ("comment", "author"),
]
CAPTURE_PATHS = [_paths(json.loads(body)) + KNOWN_PATHS for body in CAPTURES]
PLACEHOLDER = "\ue000hostile value\ue000"
BOM = b"\xef\xbb\xbf"


def _set_at(value: Any, path: tuple[Any, ...], leaf: Any) -> None:
    node = value
    for step, following in itertools.pairwise(path):
        if isinstance(node, list):
            node = node[step]
            continue
        if not isinstance(node.get(step), dict | list) or (
            isinstance(node[step], list) and not isinstance(following, int)
        ):
            node[step] = {}
        node = node[step]
    node[path[-1]] = leaf


def by_kind(
    listed: list[tuple[bytes, Verdict, frozenset[str]]],
) -> dict[str, list[tuple[bytes, Verdict, frozenset[str]]]]:
    """The listed values by kind (their first tag), so that each kind is drawn as often as any
    other, however many values it has."""
    groups: dict[str, list[tuple[bytes, Verdict, frozenset[str]]]] = {}
    for item in listed:
        groups.setdefault(min(item[2], default="other"), []).append(item)
    return groups


def _nested(depth: int, kind: str) -> bytes:
    if kind == "array":
        return b"[" * depth + b"]" * depth
    return b'{"a":' * depth + b"null" + b"}" * depth


def _has_non_finite(value: Any) -> bool:
    if isinstance(value, float):
        return value != value or value in (float("inf"), float("-inf"))
    if isinstance(value, dict):
        return any(_has_non_finite(v) for v in value.values())
    if isinstance(value, list):
        return any(_has_non_finite(v) for v in value)
    return False


TEXT = st.text(
    alphabet=st.characters(codec=None, exclude_categories=()) | st.sampled_from("\x00\ud800\udfff")
)
JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | TEXT,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(TEXT, children, max_size=4),
    max_leaves=20,
)

# (JSON text, whether it is JSON the intake reads, tags). Nesting stays within a path of the
# captures (at most 10 deep) plus 30, far below the intake's limit, or far above it.
FRAGMENTS: list[tuple[bytes, Verdict, frozenset[str]]] = [
    *(
        (text, True, frozenset({"non-finite"}))
        for text in (b"1e400", b"-1e400", b"1E+400", b"1e-400")
    ),
    *((text, False, frozenset({"non-finite"})) for text in (b"NaN", b"Infinity", b"-Infinity")),
    (b"null", True, frozenset({"shape:nested-nulls"})),
    (b'[null, [null, {"a": null}], {"b": [null]}]', True, frozenset({"shape:nested-nulls"})),
    (b'{"name": null, "key": null, "value": [null]}', True, frozenset({"shape:nested-nulls"})),
    (b"{}", True, frozenset()),
    (b"[]", True, frozenset()),
    (b"true", True, frozenset()),
    (b'""', True, frozenset()),
    (b"0", True, frozenset()),
    (b'"\\ud800"', True, frozenset({"lone-surrogate"})),
    (b'"\\udfff\\ud800x"', True, frozenset({"lone-surrogate"})),
    (b'{"\\ud83d": "\\ude00\\u0000"}', True, frozenset({"lone-surrogate"})),
    (b'"a\\u0000b"', True, frozenset()),
    (b'"\\ud83d\\ude00 \\u202e <at>x</at> [a](javascript:x)"', True, frozenset()),
    (b'"\xed\xa0\x80"', False, frozenset({"not-utf8", "lone-surrogate"})),
    (b'"\xff\xfe"', False, frozenset({"not-utf8"})),
    (b'"\xc3"', False, frozenset({"not-utf8"})),
    (b'"\xe2\x82"', False, frozenset({"not-utf8"})),
    (b'"a\x00b"', False, frozenset()),
    (b'"a\nb"', False, frozenset()),
    (b'"\\x"', False, frozenset()),
    (b'"\\u12"', False, frozenset()),
    (b'"open', False, frozenset()),
    (b"1 2", False, frozenset()),
    (b"01", False, frozenset()),
    (b"[1,]", False, frozenset()),
    (b"9" * 4000, True, frozenset()),
    (b"9" * 5000, None, frozenset()),  # more digits than Python parses; JSON has no limit
    *(
        (_nested(depth, kind), depth <= 30, frozenset({"deep-nesting"}))
        for depth in (30, 100, 5000, 200_000)
        for kind in ("array", "object")
    ),
]


@st.composite
def long_strings(draw: st.DrawFn) -> bytes:
    unit = draw(st.sampled_from([b"x", "\u00e9".encode(), b"\\u00e9", b"<at>a</at>", b"\\ud800"]))
    length = draw(st.integers(1, 900_000)) // len(unit) + 1
    return b'"' + unit * length + b'"'


FRAGMENT_KINDS = by_kind(FRAGMENTS)


@st.composite
def fragments(draw: st.DrawFn) -> tuple[bytes, Verdict, frozenset[str]]:
    kind = draw(st.sampled_from([*sorted(FRAGMENT_KINDS), "long-string", "random"]))
    if kind == "long-string":
        return draw(long_strings()), True, frozenset({"long-string"})
    if kind == "random":
        value = draw(JSON_VALUES)
        return json.dumps(value).encode(), not _has_non_finite(value), frozenset()
    return draw(st.sampled_from(FRAGMENT_KINDS[kind]))


@st.composite
def captured(draw: st.DrawFn, inject: bool) -> tuple[bytes, bytes, Verdict, frozenset[str]]:
    """(body, the capture it came from, whether it is a JSON object, tags)."""
    index = draw(st.integers(0, len(CAPTURES) - 1))
    original = CAPTURES[index]
    kinds = ["as-captured", "flip", "truncate", "extend", "encode"]
    how = "inject" if inject else draw(st.sampled_from(kinds))
    if how == "as-captured":
        return original, original, True, frozenset({"capture"})
    if how == "flip":
        positions = draw(
            st.lists(st.integers(0, len(original) - 1), min_size=1, max_size=8, unique=True)
        )
        flipped = bytearray(original)
        for position in positions:
            flipped[position] ^= draw(st.integers(1, 255))
        return bytes(flipped), original, None, frozenset({"capture:flip"})
    if how == "truncate":
        cut = draw(st.integers(0, len(original) - 1))
        tags = {"capture:truncate"} | ({"size:empty"} if cut == 0 else set())
        return original[:cut], original, False if cut == 0 else None, frozenset(tags)
    if how == "extend":
        extra = draw(
            st.sampled_from([b" \r\n\t", b"{}", b"\x00", b"\xff", b",", b"]", BOM])
            | st.binary(min_size=1, max_size=64)
        )
        if draw(st.booleans()):
            body = original + extra
            verdict: Verdict = True if not extra.strip(b" \r\n\t") else None
        else:
            body = extra + original
            verdict = True if extra == BOM else None
        tags = {"capture:extend"} | ({"bom"} if body.startswith(BOM) else set())
        return body, original, verdict, frozenset(tags)
    if how == "inject":
        value = json.loads(original)
        path = draw(st.sampled_from(CAPTURE_PATHS[index]))
        fragment, verdict, tags = draw(fragments())
        _set_at(value, path, PLACEHOLDER)
        ascii_only = draw(st.booleans())
        text = json.dumps(value, ensure_ascii=ascii_only).encode()
        marker = json.dumps(PLACEHOLDER, ensure_ascii=ascii_only).encode()
        return text.replace(marker, fragment), original, verdict, tags | {"capture:inject"}
    encoding = draw(st.sampled_from(["utf-16", "utf-16-le", "utf-32", "latin-1", "cp1252"]))
    body = original.decode().encode(encoding, errors="replace")
    verdict = True if body == original else (False if encoding.startswith("utf-") else None)
    return body, original, verdict, frozenset({"capture:re-encode", "charset"})


TOP_LEVEL: list[tuple[bytes, Verdict, frozenset[str]]] = [
    (b"[]", False, frozenset({"shape:array"})),
    (b"[{}]", False, frozenset({"shape:array"})),
    (b'[{"webhookEvent": "jira:issue_created"}]', False, frozenset({"shape:array"})),
    (b"0", False, frozenset({"shape:number"})),
    (b"-12.5e3", False, frozenset({"shape:number"})),
    (b"1e400", False, frozenset({"shape:number", "non-finite"})),
    (b"NaN", False, frozenset({"shape:number", "non-finite"})),
    (b'"{}"', False, frozenset()),
    (b"null", False, frozenset()),
    (b"true", False, frozenset()),
    (b"{}", True, frozenset()),
    (b'{"a": 1, "a": 2}', True, frozenset()),
    (b" \r\n\t{} \n", True, frozenset()),
    (b"", False, frozenset({"size:empty"})),
    (b"  \n ", False, frozenset({"size:empty"})),
    # A byte-order mark first is read past, and kept in the stored text.
    (b"\xef\xbb\xbf{}", True, frozenset({"bom"})),
    (b"\xef\xbb\xbf" + issue_created_body("BOM-1"), True, frozenset({"bom"})),
    (b"\xef\xbb\xbf", False, frozenset()),
    (b"\xff\xfe{\x00}\x00", False, frozenset({"not-utf8"})),
    (
        b'{"webhookEvent": null, "issue_event_type_name": null, "timestamp": null, '
        b'"user": null, "issue": null, "changelog": null, "comment": null}',
        True,
        frozenset({"shape:nested-nulls"}),
    ),
    (b'{"issue": {"key": null, "fields": null}}', True, frozenset({"shape:nested-nulls"})),
    (
        b'{"webhookEvent": "jira:issue_updated", "issue": {"key": "A-1", "fields": {"summary": '
        b'null, "status": {"name": null}, "labels": [null]}}, "changelog": {"items": [null, {}, '
        b'{"field": null, "toString": null}]}}',
        True,
        frozenset({"shape:nested-nulls"}),
    ),
    (
        b'{"webhookEvent": "jira:issue_created", "timestamp": 1e400, "issue": {"id": -1e400, '
        b'"key": "A-1", "fields": {"summary": 1e400, "priority": {"name": 1e-400}}}}',
        True,
        frozenset({"non-finite"}),
    ),
    *(
        (_nested(depth, kind), kind == "object" and depth <= 30, frozenset({"deep-nesting"}))
        for depth in (30, 100, 1000, 300_000)
        for kind in ("array", "object")
    ),
]


TOP_LEVEL_KINDS = by_kind(TOP_LEVEL)


@st.composite
def wrong_shapes(draw: st.DrawFn) -> tuple[bytes, Verdict, frozenset[str]]:
    kind = draw(st.sampled_from([*sorted(TOP_LEVEL_KINDS), "long-string", "random"]))
    if kind in TOP_LEVEL_KINDS:
        return draw(st.sampled_from(TOP_LEVEL_KINDS[kind]))
    if kind == "long-string":
        where = draw(st.sampled_from([b'"webhookEvent"', b'"summary"', b'"\\ud800"']))
        body = b"{" + where + b": " + draw(long_strings()) + b"}"
        return body, True, frozenset({"long-string"})
    value = draw(JSON_VALUES)
    ascii_only = draw(st.booleans())
    text = json.dumps(value, ensure_ascii=ascii_only)
    try:
        body, utf8 = text.encode(), True
    except UnicodeEncodeError:
        body, utf8 = text.encode("utf-8", "surrogatepass"), False
    tags = {"shape:array"} if isinstance(value, list) else set()
    if not utf8:
        tags |= {"not-utf8", "lone-surrogate"}
    verdict = isinstance(value, dict) and utf8 and not _has_non_finite(value)
    return body, verdict, frozenset(tags)


@st.composite
def sized(draw: st.DrawFn) -> tuple[bytes, Verdict, frozenset[str]]:
    """A good event made exactly as long as wanted: only its size may be at fault."""
    base = issue_created_body("SIZE-1")
    kind = draw(st.sampled_from(["limit-exact", "just-under", "over-limit", "far-over-limit"]))
    if kind == "limit-exact":
        length = LIMIT
    elif kind == "just-under":
        length = LIMIT - draw(st.integers(1, 4096))
    elif kind == "over-limit":
        length = LIMIT + draw(st.integers(1, 65536))
    else:
        length = draw(st.integers(2, 6)) * LIMIT + draw(st.integers(0, 4096))
    if draw(st.booleans()):
        body = base + b" " * (length - len(base))
    else:
        pad = length - len(base) - len(b', "pad": ""')
        body = base[:-1] + b', "pad": "' + b"p" * pad + b'"}'
    assert len(body) == length
    return body, True, frozenset({f"size:{kind}"})


# ---------------------------------------------------------------------------------------------
# Headers and query


def header_text(max_size: int = 300) -> st.SearchStrategy[bytes]:
    return st.lists(st.sampled_from(HEADER_BYTES), max_size=max_size).map(bytes)


JSON_TYPES: list[bytes] = [
    b"application/json",
    b"application/json; charset=utf-8",
    b"application/json;charset=UTF-8",
    b"Application/JSON",
    b'application/json ; charset="utf-8"',
    b"application/vnd.atlassian.jira+json",
    b"application/json; charset=latin-1",
    b"application/json; charset=utf-16",
    b"application/json; charset=koi8-r",
    b"application/json; charset=\xc3\xbc\xff",
    b"application/json; charset=",
    b"application/json; q=1; boundary=x; charset=utf-8; charset=ascii",
]
NOT_JSON_TYPES: list[bytes] = [
    b"text/plain",
    b"text/plain; charset=utf-8",
    b"text/html",
    b"application/x-www-form-urlencoded",
    b"multipart/form-data; boundary=xyz",
    b"application/xml",
    b"application/jsonx",
    b"application/octet-stream",
    b"json",
    b"*/*",
    b";",
    b"\xff\xfe",
    b"application/json-patch",
]
# Blank values: read as a missing type today, but no one has promised it.
UNSURE_TYPES: list[bytes] = [b"", b"   ", b"text/json", b"application/json\t, text/plain"]


@st.composite
def content_types(draw: st.DrawFn) -> tuple[list[tuple[str, bytes]], Verdict, frozenset[str]]:
    def one() -> tuple[bytes, Verdict, str]:
        kind = draw(st.sampled_from(["json", "not-json", "unsure", "random"]))
        if kind == "json":
            value = draw(st.sampled_from(JSON_TYPES))
            return value, True, "charset" if b"charset" in value else "content-type:json"
        if kind == "not-json":
            return draw(st.sampled_from(NOT_JSON_TYPES)), False, "content-type:wrong"
        if kind == "unsure":
            return draw(st.sampled_from(UNSURE_TYPES)), None, "content-type:unsure"
        value = draw(header_text(80))
        media_type = value.split(b";", 1)[0].strip().lower()
        is_json = media_type == b"application/json" or (
            media_type.startswith(b"application/") and media_type.endswith(b"+json")
        )
        # Blank, or with bytes beyond ASCII (which a text strip() may or may not remove): unsure.
        unsure = not media_type or any(c >= 0x80 for c in value)
        return value, None if unsure else is_json, "content-type:random"

    count = draw(st.sampled_from([0, 1, 1, 2]))
    if count == 0:
        return [], True, frozenset({"content-type:missing"})
    chosen = [one() for _ in range(count)]
    headers = [("Content-Type", value) for value, _, _ in chosen]
    verdicts = {verdict for _, verdict, _ in chosen}
    verdict = verdicts.pop() if len(verdicts) == 1 else None
    tags = {tag for _, _, tag in chosen}
    if count == 2:
        tags.add("content-type:duplicated")
    return headers, verdict, frozenset(tags)


@st.composite
def workspace_params(draw: st.DrawFn, slug: str) -> tuple[list[str], Verdict, frozenset[str]]:
    kind = draw(st.sampled_from(["right", "missing", "unknown", "garbage", "case", "repeated"]))
    if kind == "right":
        return [f"workspace={slug}"], True, frozenset()
    if kind == "missing":
        return [], False, frozenset({"workspace:missing"})
    if kind == "unknown":
        other = draw(st.sampled_from(["nope", f"{slug}-2", slug[:-1], "demo", "", "0"]))
        return [f"workspace={other}"], False, frozenset({"workspace:unknown"})
    if kind == "garbage":
        garbage = draw(
            st.sampled_from(["%ff%fe", "%00", "%", "%zz", "a" * 10_000, "../acme", "acme%00"])
            | TEXT.filter(lambda t: t != slug).map(
                lambda t: quote(t.encode("utf-8", "surrogatepass"), safe="")
            )
        )
        return [f"workspace={garbage}"], False, frozenset({"workspace:garbage"})
    if kind == "case":
        other = draw(st.sampled_from([slug.upper(), f"%20{slug}", f"{slug}%20", f"{slug}%0a"]))
        return [f"workspace={other}"], None, frozenset({"workspace:unsure"})
    return ["workspace=nope", f"workspace={slug}"], None, frozenset({"workspace:repeated"})


def _sign(key: str, body: bytes) -> bytes:
    return b"sha256=" + hmac.new(key.encode(), body, hashlib.sha256).hexdigest().encode()


@st.composite
def credentials(
    draw: st.DrawFn, creds: JiraCredentials, body: bytes, original: bytes
) -> tuple[list[tuple[str, bytes]], list[str], Verdict, frozenset[str]]:
    """(headers, query parts, whether the request is authenticated, tags)."""
    secret, token = creds.secret, creds.ingest_token
    right = _sign(secret, body)
    hex_digest = right.removeprefix(b"sha256=")
    wrong_tokens = [
        "tmi_" + "A" * 43,
        secret,
        token[:-1],
        token + "x",
        token.upper(),
        token.lower(),
        f"{token}é",
        "",
    ]
    malformed = (
        st.sampled_from(
            [
                b"",
                b"sha256=",
                b"sha256",
                b"=",
                b"sha1=" + hmac.new(secret.encode(), body, hashlib.sha1).hexdigest().encode(),
                b"md5=" + hex_digest,
                b"sha512=" + hex_digest,
                b"sha256=" + b"z" * 64,
                b"sha256=" + hex_digest[:-1],
                b"sha256=" + hex_digest + b"00",
                b"sha256:" + hex_digest,
                hex_digest,
                b"sha256=" + b"\xff" * 64,
                b"sha256=" + b"a" * 20_000,
                b"sha256=" + base64.b64encode(bytes.fromhex(hex_digest.decode())),
            ]
        )
        | header_text()
    )
    kind = draw(
        st.sampled_from(
            [
                "signed",
                "signed-unsure",
                "stale",
                "wrong-secret",
                "token-as-key",
                "malformed",
                "none",
                "bearer",
                "bearer-unsure",
                "query-token",
                "wrong-token",
                "basic",
                "signed-and-wrong-token",
                "malformed-and-right-token",
                "two-signatures",
                "two-tokens",
            ]
        )
    )
    if kind == "signed":
        return [("X-Hub-Signature", right)], [], True, frozenset()
    if kind == "signed-unsure":
        value = draw(st.sampled_from([b"SHA256=" + hex_digest.upper(), b" " + right + b" "]))
        return [("X-Hub-Signature", value)], [], None, frozenset()
    if kind == "stale":
        tags = frozenset({"stale-signature"} if body != original else set())
        return [("X-Hub-Signature", _sign(secret, original))], [], body == original, tags
    if kind == "wrong-secret":
        return [("X-Hub-Signature", _sign(secret + "x", body))], [], False, frozenset()
    if kind == "token-as-key":
        return [("X-Hub-Signature", _sign(token, body))], [], False, frozenset()
    if kind == "malformed":
        value = draw(malformed)
        return [("X-Hub-Signature", value)], [], False, frozenset({"signature:malformed"})
    if kind == "none":
        return [], [], False, frozenset()
    if kind == "bearer":
        return (
            [("Authorization", f"Bearer {token}".encode())],
            [],
            True,
            frozenset({"token:bearer"}),
        )
    if kind == "bearer-unsure":
        value = draw(st.sampled_from([f"bearer {token}", f"Bearer   {token} ", f"BEARER {token}"]))
        return [("Authorization", value.encode())], [], None, frozenset({"token:bearer"})
    if kind == "query-token":
        return [], [f"token={quote(token, safe='')}"], True, frozenset({"token:query"})
    if kind == "wrong-token":
        wrong = draw(st.sampled_from(wrong_tokens))
        if draw(st.booleans()):
            return (
                [("Authorization", f"Bearer {wrong}".encode())],
                [],
                False,
                frozenset({"token:wrong", "token:bearer"}),
            )
        return [], [f"token={quote(wrong, safe='')}"], False, frozenset({"token:wrong"})
    if kind == "basic":
        value = b"Basic " + base64.b64encode(f"jira:{token}".encode())
        return [("Authorization", value)], [], False, frozenset({"token:wrong"})
    if kind == "signed-and-wrong-token":
        wrong = draw(st.sampled_from(wrong_tokens))
        return (
            [("X-Hub-Signature", right)],
            [f"token={quote(wrong, safe='')}"],
            True,
            frozenset({"token:wrong"}),
        )
    if kind == "malformed-and-right-token":
        value = draw(malformed)
        return (
            [("X-Hub-Signature", value), ("Authorization", f"Bearer {token}".encode())],
            [],
            True,
            frozenset({"signature:malformed", "token:bearer"}),
        )
    if kind == "two-signatures":
        pair = [("X-Hub-Signature", right), ("X-Hub-Signature", draw(malformed))]
        return draw(st.permutations(pair)), [], None, frozenset({"signature:malformed"})
    parts = [
        f"token={quote(token, safe='')}",
        f"token={quote(draw(st.sampled_from(wrong_tokens)), safe='')}",
    ]
    return [], draw(st.permutations(parts)), None, frozenset({"token:query", "token:wrong"})


@st.composite
def identifiers(draw: st.DrawFn, hostile: bool) -> tuple[list[tuple[str, bytes]], frozenset[str]]:
    name = "X-Atlassian-Webhook-Identifier"
    plain = ["none", "fresh", "fresh", "repeated"]
    kind = draw(st.sampled_from(["huge", "non-ascii", "odd"] if hostile else plain))
    if kind == "none":
        return [], frozenset()
    if kind == "fresh":
        return [(name, b"storm-%032x" % draw(st.integers(0, 2**128 - 1)))], frozenset()
    if kind == "repeated":
        value = draw(st.sampled_from([b"retry-1", b"retry-2", b" retry-1 "]))
        return [(name, value)], frozenset({"identifier:repeated"})
    if kind == "huge":
        value = draw(st.sampled_from([b"i", "\u0438".encode(), b"\xff"])) * draw(
            st.integers(201, 65_536)
        )
        return [(name, value)], frozenset({"identifier:huge"})
    if kind == "non-ascii":
        value = draw(
            st.sampled_from(["идентификатор-é".encode(), "\u202e\U0001f600".encode(), b"\xe9\xff"])
            | TEXT.map(lambda t: t.encode("utf-8", "surrogatepass")).map(
                lambda b: bytes(c for c in b if c in HEADER_BYTES)
            )
        )
        return [(name, value)], frozenset({"identifier:non-ascii"})
    values = draw(st.lists(header_text(), min_size=1, max_size=2))
    return [(name, value) for value in values], frozenset({"identifier:odd"})


@st.composite
def junk_headers(draw: st.DrawFn) -> list[tuple[str, bytes]]:
    names = [
        "X-Atlassian-Webhook-Retry",
        "X-Atlassian-Webhook-Flow",
        "User-Agent",
        "Accept",
        "X-Request-ID",
    ]
    junk = [(n, draw(header_text())) for n in draw(st.lists(st.sampled_from(names), max_size=3))]
    if draw(st.integers(0, 9)) == 0:
        junk.append(("User-Agent", b"Atlassian Webhook HTTP Client " * 1000))
    if draw(st.integers(0, 9)) == 0:
        junk.append(("Expect", b"100-continue"))
    if draw(st.integers(0, 9)) == 0:
        junk.append(("Content-Encoding", b"gzip"))
    return junk


@st.composite
def junk_params(draw: st.DrawFn) -> list[str]:
    """Query parameters beside the workspace and the token: Automation's event type, and
    what nothing reads. None of them may change what is answered."""
    event = st.sampled_from([t.value for t in EventType] + ["", "nope", "jira:issue_created"])
    values = st.one_of(event, TEXT).map(lambda t: quote(t.encode("utf-8", "surrogatepass")))
    extra = [f"event={value}" for value in draw(st.lists(values, max_size=2))]
    extra += draw(
        st.lists(st.sampled_from(["x=%ff", "=", "", "a", "x=1&x=2", "%zz=%"]), max_size=2)
    )
    return [part for part in extra if part]


@st.composite
def plain_parts(
    draw: st.DrawFn, creds: JiraCredentials, slug: str, body: bytes, original: bytes
) -> tuple[list[tuple[str, bytes]], list[str], Verdict, frozenset[str]]:
    """A request as Jira sends it, so that only the body decides the answer; or, for a body
    changed after signing, the signature of what Jira sent."""
    headers = draw(
        st.sampled_from(
            [[], [("Content-Type", b"application/json")], [("Content-Type", JSON_TYPES[1])]]
        )
    )
    query = [f"workspace={slug}"]
    kind = draw(st.sampled_from(["signed", "signed", "signed", "bearer", "query-token", "stale"]))
    verdict: Verdict = True
    tags: set[str] = set() if headers else {"content-type:missing"}
    if kind == "signed":
        headers.append(("X-Hub-Signature", _sign(creds.secret, body)))
    elif kind == "bearer":
        headers.append(("Authorization", f"Bearer {creds.ingest_token}".encode()))
        tags.add("token:bearer")
    elif kind == "query-token":
        query.append(f"token={quote(creds.ingest_token, safe='')}")
        tags.add("token:query")
    else:
        headers.append(("X-Hub-Signature", _sign(creds.secret, original)))
        verdict = body == original
        if body != original:
            tags.add("stale-signature")
    identifier_headers, identifier_tags = draw(identifiers(hostile=False))
    return [*headers, *identifier_headers], query, verdict, frozenset(tags | identifier_tags)


HOSTILE_PARTS = ["content-type", "credentials", "workspace", "headers"]


@st.composite
def attacks(draw: st.DrawFn, creds: JiraCredentials, slug: str) -> Attack:
    family = draw(st.sampled_from(["capture", "inject", "shape", "size"]))
    if family in ("capture", "inject"):
        body, original, parse, tags = draw(captured(inject=family == "inject"))
    else:
        body, parse, tags = draw(wrong_shapes() if family == "shape" else sized())
        original = body
    # Most requests are hostile in the body alone, so that it reaches the parser; the others
    # in one part of the request or in several at once.
    # Bodies of a chosen size are there for the first check, so the other parts are hostile
    # more often beside them: that the size is checked first shows only then.
    bodies = ["body"] if family == "size" else ["body"] * 4
    focus = draw(st.sampled_from([*bodies, *HOSTILE_PARTS, "several"]))
    if focus == "body":
        hostile: set[str] = set()
    elif focus == "several":
        hostile = draw(st.sets(st.sampled_from(HOSTILE_PARTS), min_size=2))
    else:
        hostile = {focus}
    headers, query, signed_ok, all_tags = draw(plain_parts(creds, slug, body, original))
    media: Verdict = True
    workspace_ok: Verdict = True
    if hostile:
        headers = [h for h in headers if h[0] != "X-Atlassian-Webhook-Identifier"]
        identifier_headers, identifier_tags = draw(identifiers(hostile="headers" in hostile))
        headers += identifier_headers
        all_tags |= identifier_tags
    if "content-type" in hostile:
        headers = [h for h in headers if h[0] != "Content-Type"]
        type_headers, media, type_tags = draw(content_types())
        headers += type_headers
        all_tags |= type_tags
    if "workspace" in hostile:
        query = [q for q in query if not q.startswith("workspace=")]
        workspace_query, workspace_ok, workspace_tags = draw(workspace_params(slug))
        query += workspace_query
        all_tags |= workspace_tags
    if "credentials" in hostile:
        headers = [h for h in headers if h[0] not in ("X-Hub-Signature", "Authorization")]
        query = [q for q in query if not q.startswith("token=")]
        auth_headers, auth_query, signed_ok, auth_tags = draw(credentials(creds, body, original))
        headers += auth_headers
        query += auth_query
        all_tags |= auth_tags
    if "headers" in hostile:
        headers += draw(junk_headers())
        query += draw(junk_params())
    headers = draw(st.permutations(headers))
    query = draw(st.permutations(query))
    chunked = draw(st.integers(0, 5)) == 0
    auth = both(workspace_ok, signed_ok)
    expect = expected_statuses(len(body), media, auth, parse)
    # Where two checks both fail, the earlier one must answer.
    if len(body) > LIMIT and media is False:
        all_tags |= {"order:size-before-type"}
    if media is False and auth is False:
        all_tags |= {"order:type-before-credentials"}
    if auth is False and parse is False:
        all_tags |= {"order:credentials-before-body"}
    return Attack(
        tags | all_tags | ({"chunked"} if chunked else set()),
        body,
        tuple(headers),
        "&".join(query),
        chunked,
        expect,
    )


# ---------------------------------------------------------------------------------------------
# Sending, and what every answer must be


@dataclass(frozen=True)
class Answer:
    status: int
    headers: list[tuple[str, str]]
    body: bytes

    def header(self, name: str) -> str | None:
        return next((v for k, v in self.headers if k.lower() == name.lower()), None)


class Intake:
    """Writes each request byte for byte on a fresh connection, so headers can repeat, carry
    any bytes HTTP allows, and bodies can be chunked or far over the limit."""

    def __init__(self, port: int) -> None:
        self.port = port

    def send(self, attack: Attack) -> Answer:
        target = INTAKE + (f"?{attack.query}" if attack.query else "")
        head = [
            f"POST {target} HTTP/1.1".encode("ascii"),
            f"Host: 127.0.0.1:{self.port}".encode(),
            b"Connection: close",
        ]
        if attack.chunked:
            head.append(b"Transfer-Encoding: chunked")
            wire = b"".join(
                b"%x\r\n%s\r\n" % (len(attack.body[i : i + 65536]), attack.body[i : i + 65536])
                for i in range(0, len(attack.body), 65536)
            )
            wire += b"0\r\n\r\n"
        else:
            head.append(b"Content-Length: %d" % len(attack.body))
            wire = attack.body
        head += [name.encode() + b": " + value for name, value in attack.headers]
        with socket.create_connection(("127.0.0.1", self.port), timeout=30) as sock:
            sock.sendall(b"\r\n".join(head) + b"\r\n\r\n")
            self._send_body(sock, wire)
            response = http.client.HTTPResponse(sock, method="POST")
            try:
                response.begin()
                return Answer(response.status, response.getheaders(), response.read())
            finally:
                response.close()

    @staticmethod
    def _send_body(sock: socket.socket, wire: bytes) -> None:
        # An early answer (413 before the body is read) ends the sending: the service reads no
        # further, and writing on would only meet a reset connection.
        for offset in range(0, len(wire), 65536):
            if Intake._answered(sock):
                return
            try:
                sock.sendall(wire[offset : offset + 65536])
            except (BrokenPipeError, ConnectionResetError):
                return

    @staticmethod
    def _answered(sock: socket.socket) -> bool:
        """A final answer has arrived (a "100 Continue" alone asks for the body)."""
        if not select.select([sock], [], [], 0)[0]:
            return False
        try:
            seen = sock.recv(65536, socket.MSG_PEEK)
        except OSError:
            return True
        if not seen:
            return True  # closed
        while seen.startswith(b"HTTP/1.1 100"):
            end = seen.find(b"\r\n\r\n")
            if end < 0:
                return False
            seen = seen[end + 4 :]
        return bool(seen)


SNAKE_CASE = re.compile(r"^[a-z][a-z0-9_]*$")


@dataclass
class Ledger:
    """Every answer checked as it comes, and what was acknowledged, for the end."""

    credentials: list[str]
    accepted: dict[str, bytes] = field(default_factory=dict)  # event id → the body sent
    duplicates: set[str] = field(default_factory=set)
    statuses: Counter[int] = field(default_factory=Counter)
    tags: set[str] = field(default_factory=set)
    unauthorized: bytes | None = None

    def check(self, attack: Attack, answer: Answer) -> None:
        self.tags |= attack.tags
        self.statuses[answer.status] += 1
        said = f"{answer.status} {answer.body[:400]!r} for {attack!r}"
        assert answer.status < 500, said
        assert answer.status in attack.expect, said
        everything = answer.body.decode("utf-8", "replace") + "".join(
            f"\n{name}: {value}" for name, value in answer.headers
        )
        for secret in self.credentials:
            assert secret not in everything, said
        assert "Traceback" not in everything, said
        assert 'File "' not in everything, said
        assert (answer.header("content-type") or "").startswith("application/json"), said
        payload = json.loads(answer.body)
        if answer.status >= 400:
            self._check_error(payload, answer, said)
        elif answer.status == 202:
            assert payload.keys() == {"event_id", "deliveries"}, said
            assert payload["event_id"] not in self.accepted, said
            self.accepted[payload["event_id"]] = attack.body
        else:
            assert answer.status == 200, said
            assert payload.keys() == {"duplicate", "event_id"}, said
            assert payload["duplicate"] is True, said
            self.duplicates.add(payload["event_id"])

    def _check_error(self, payload: Any, answer: Answer, said: str) -> None:
        assert isinstance(payload, dict), said
        assert payload.keys() == {"error"}, said
        error = payload["error"]
        assert isinstance(error, dict), said
        assert {"code", "message"} <= error.keys() <= {"code", "message", "details"}, said
        assert isinstance(error["code"], str), said
        assert SNAKE_CASE.match(error["code"]), said
        assert isinstance(error["message"], str), said
        assert error["message"].strip(), said
        assert isinstance(error.get("details", []), list), said
        assert error["code"] in ERROR_CODES_BY_STATUS.get(answer.status, {error["code"]}), said
        if answer.status == 401:
            # One answer for an unknown workspace, a missing and a wrong credential alike.
            if self.unauthorized is None:
                self.unauthorized = answer.body
            assert answer.body == self.unauthorized, said


def request(
    body: bytes,
    headers: list[tuple[str, bytes]],
    query: str,
    expect: set[int],
    tags: set[str],
    chunked: bool = False,
) -> Attack:
    return Attack(frozenset(tags), body, tuple(headers), query, chunked, frozenset(expect))


def padded(body: bytes, length: int) -> bytes:
    return body + b" " * (length - len(body))


def explicit_cases(creds: JiraCredentials, slug: str) -> list[Attack]:
    """Tried before the drawn ones, whatever the draws: where two checks both fail, the earlier
    one answers; and the edges of what must be stored."""
    good = issue_created_body("EDGE-1")
    plain_text = [("Content-Type", b"text/plain")]
    here = f"workspace={slug}"

    def signed(body: bytes, identifier: bytes) -> list[tuple[str, bytes]]:
        return [
            ("Content-Type", b"application/json"),
            ("X-Hub-Signature", _sign(creds.secret, body)),
            ("X-Atlassian-Webhook-Identifier", identifier),
        ]

    over = padded(good, LIMIT + 1)
    exact = padded(good, LIMIT)
    with_bom = BOM + good
    return [
        request(over, plain_text, here, {413}, {"order:size-before-type"}),
        request(over, plain_text, here, {413}, {"order:size-before-type"}, chunked=True),
        request(good, plain_text, "workspace=nope", {415}, {"order:type-before-credentials"}),
        request(b"[", [], here, {401}, {"order:credentials-before-body"}),
        request(b"", [], "", {401}, {"order:credentials-before-body"}),
        request(exact, signed(exact, b"edge-exact"), here, {202}, {"size:limit-exact"}),
        request(with_bom, signed(with_bom, b"edge-bom"), here, {202}, {"bom"}),
    ]


def get(url: str) -> int:
    with urllib.request.urlopen(url, timeout=10) as answer:
        return int(answer.status)


@pytest.mark.timeout(size(240, 7200))
def test_hostile_input_never_breaks_the_intake_and_loses_nothing_signed(
    svc: Services, workspace: MadeWorkspace, sink: TeamsSink, database_url: str, tmp_path: Path
) -> None:
    # Every event type is subscribed, so whatever is routed also goes through the card builder.
    hook = make_webhook(svc, workspace.id, "storm", sink.url("/workflows/storm"))
    for event_type in EventType:
        make_subscription(svc, workspace.id, hook, event_type.value)
    creds = workspace.jira
    ledger = Ledger([creds.secret, creds.ingest_token])
    with ServeProcess(database_url, tmp_path).start() as serve:
        intake = Intake(serve.port)

        def storm(attack: Attack) -> None:
            ledger.check(attack, intake.send(attack))

        for case in explicit_cases(creds, workspace.slug):
            storm = example(attack=case)(storm)
        storm = settings(
            max_examples=size(500, 10_000),
            derandomize=not SOAK,
            database=None,
            deadline=None,
            suppress_health_check=[
                HealthCheck.too_slow,
                HealthCheck.data_too_large,
                HealthCheck.large_base_example,
            ],
        )(given(attack=attacks(creds, workspace.slug))(storm))
        storm()

        assert serve.process is not None
        assert serve.process.poll() is None, serve.output()
        assert get(f"{serve.url}/healthz") == 200
        good = issue_created_body("DEMO-1")
        headers = [
            ("Content-Type", b"application/json"),
            ("X-Hub-Signature", _sign(creds.secret, good)),
            ("X-Atlassian-Webhook-Identifier", b"after-the-storm"),
        ]
        after = request(good, headers, f"workspace={workspace.slug}", {202}, set())
        ledger.check(after, intake.send(after))
        log = serve.output()

    assert ledger.tags >= REQUIRED_TAGS, sorted(REQUIRED_TAGS - ledger.tags)
    assert set(ledger.statuses) >= REQUIRED_STATUSES, ledger.statuses
    with svc.db.transaction() as session:
        stored = {
            record.id: (record.raw_body, record.status)
            for record in session.scalars(
                sql_select(JiraEventRecord).where(JiraEventRecord.workspace_id == workspace.id)
            )
        }
    # Exactly what was acknowledged is stored (a 202 is never lost, nothing unanswered is
    # kept), each body byte for byte; a duplicate names a stored event.
    assert set(stored) == set(ledger.accepted), (len(stored), len(ledger.accepted))
    for event_id, body in ledger.accepted.items():
        raw_body, status = stored[event_id]
        assert raw_body.encode() == body, event_id
        assert status in ("routed", "ignored", "rejected"), event_id
    assert ledger.duplicates <= set(stored)
    # A failure the intake answered around (the transformer raising, a row it could not store)
    # shows only in its log; the credentials never show there.
    assert not re.search(r"\bERROR\b", log), log[-5000:]
    assert "Traceback" not in log, log[-5000:]
    assert creds.secret not in log
    assert creds.ingest_token not in log
