"""Raw Jira payload → JiraEvent: pure functions, no database, no I/O.

`transform()` answers one of three outcomes:
- `Transformed(envelope)`: an event the product understands (stored as `routed`);
- `Ignored(reason)`: a real Jira event that is not a product event type (sprint, worklog, …);
- `Rejected(reason)`: a payload that cannot be read (a string where an object belongs, …).

Which handler reads a payload is decided by two lookup tables: `EVENT_HANDLERS` on the
`webhookEvent` name (with or without Jira's `jira:` prefix) and `UPDATE_HANDLERS` on the
`issue_event_type_name` of a `jira:issue_updated`. `IGNORED_EVENTS` lists the families the
product knowingly does not route. Bodies without `webhookEvent` come from Jira Automation's
"Send web request" and count as `issue_updated` unless the URL says `?event=<event type>`.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal
from urllib.parse import SplitResult, quote, urlsplit

from ticketmate.jira.adf import adf_to_text, is_adf
from ticketmate.jira.events import (
    Actor,
    Change,
    Comment,
    EventType,
    Issue,
    JiraEvent,
    SecurityLevel,
)

Payload = Mapping[str, Any]


# ---------------------------------------------------------------------------------------------
# Outcomes


@dataclass(frozen=True)
class Transformed:
    envelope: JiraEvent
    status: Literal["routed"] = "routed"


@dataclass(frozen=True)
class Ignored:
    reason: str
    jira_event: str | None = None
    status: Literal["ignored"] = "ignored"


@dataclass(frozen=True)
class Rejected:
    reason: str
    jira_event: str | None = None
    status: Literal["rejected"] = "rejected"


Outcome = Transformed | Ignored | Rejected


class Unreadable(Exception):
    """Raised inside the transformer when a value has the wrong JSON type; becomes Rejected."""


# ---------------------------------------------------------------------------------------------
# Reading values of the right JSON type


def _json_type(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    return "an object"


_SURROGATES = re.compile("[\ud800-\udfff]")


def clean(text: str) -> str:
    """Text safe to store anywhere: no NUL (PostgreSQL refuses it), no lone surrogates."""
    return _SURROGATES.sub("\ufffd", text.replace("\x00", ""))


def _object(value: object, path: str) -> dict[str, Any] | None:
    """An object, or None for null/absent; any other type is unreadable."""
    if value is None:
        return None
    if not isinstance(value, dict):
        raise Unreadable(f"{path} is {_json_type(value)}, not an object")
    return value


def _text(value: object, path: str) -> str | None:
    """Display text: strings as they are, numbers as digits (Automation sends numeric ids)."""
    if value is None:
        return None
    if isinstance(value, str):
        return clean(value)
    if isinstance(value, int | float) and not isinstance(value, bool):
        return str(value)
    raise Unreadable(f"{path} is {_json_type(value)}, not text")


def _name(value: object, path: str, *keys: str) -> str | None:
    """The first present of `keys` (default "name") of an object such as status or priority."""
    found = _object(value, path)
    if found is None:
        return None
    for key in keys or ("name",):
        text = _text(found.get(key), f"{path}.{key}")
        if text is not None:
            return text
    return None


def _person(value: object, path: str) -> str | None:
    """A user object's display name (Cloud and Server), falling back to the Server name."""
    return _name(value, path, "displayName", "name")


def _texts(value: object, path: str) -> list[str]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise Unreadable(f"{path} is {_json_type(value)}, not an array")
    found = [_text(item, f"{path}[{i}]") for i, item in enumerate(value)]
    return [text for text in found if text is not None]


def _names(value: object, path: str) -> list[str]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise Unreadable(f"{path} is {_json_type(value)}, not an array")
    found = [_name(item, f"{path}[{i}]") for i, item in enumerate(value)]
    return [name for name in found if name is not None]


def _rich_text(value: object, path: str) -> str | None:
    """Plain text from wiki text (kept as is) or from Atlassian Document Format."""
    if isinstance(value, dict):
        if not is_adf(value):
            raise Unreadable(f"{path} is an object but not an Atlassian Document Format document")
        return clean(adf_to_text(value))
    return _text(value, path)


# ---------------------------------------------------------------------------------------------
# The Jira site: where an "Open in Jira" link may point

# What a URL Jira wrote may hold: RFC 3986's unreserved and reserved characters and percent
# escapes, less the single quote. Quotes, angle brackets, backslashes, spaces, controls and
# anything outside ASCII (full-width letters that a browser folds into another host) mean the
# value is not a URL Jira wrote, whatever a lenient parser would make of it.
_URL_CHARACTERS = re.compile(r"[A-Za-z0-9\-._~:/?#\[\]@!$&()*+,;=%]+")
_LABEL = re.compile(r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?")
# No percent escapes in a context path: a browser reads "%2e%2e" as "..".
_CONTEXT_PATH = re.compile(r"(?:/[A-Za-z0-9\-._~]+)*")
_BROWSE_KEY = re.compile(r"(?:[A-Za-z0-9\-._~]|%[0-9A-F]{2})+")
_DEFAULT_PORTS = {"http": 80, "https": 443}
MAX_SITE_LENGTH = 300  # the workspaces.jira_base_url column
SITE_EXAMPLE = "https://your-site.atlassian.net or https://jira.example.com/jira"


class NotASite(ValueError):
    """A value is not a Jira site's base URL; the message says why, in a user's words."""


def _ipv4(labels: list[str]) -> bool:
    # Only the dotted-quad form: "2130706433" or "0x7f.1" are hosts to browsers, not to people.
    return len(labels) == 4 and all(
        label.isdigit() and str(int(label)) == label and int(label) <= 255 for label in labels
    )


def _punycode(label: str) -> bool:
    """An `xn--` label that really is the ASCII form of an internationalised name."""
    try:
        return label.encode("ascii").decode("idna").encode("idna").decode("ascii") == label
    except UnicodeError:
        return False


def _host_name(host: str) -> str:
    host = host.lower()
    if not host or len(host) > 253:
        raise NotASite("The address has no valid host name.")
    labels = host.split(".")
    if all(label.isdigit() for label in labels):
        if not _ipv4(labels):
            raise NotASite(f"{host} is not a host name or an IPv4 address.")
        return host
    for label in labels:
        if not _LABEL.fullmatch(label) or (label.startswith("xn--") and not _punycode(label)):
            raise NotASite(
                "The host name may hold only letters, digits, hyphens and dots "
                "(internationalised names in their xn-- form)."
            )
    if labels[-1].isdigit():
        raise NotASite(f"{host} is not a host name or an IPv4 address.")
    return host


def _origin(scheme: str, netloc: str) -> str:
    """scheme://host[:port], the host checked and lower-cased, the default port left out."""
    if scheme not in _DEFAULT_PORTS:
        raise NotASite("The address must start with https:// (or http://).")
    if "@" in netloc:
        raise NotASite("The address must not carry a user name or password.")
    if netloc.startswith("["):
        literal, bracket, rest = netloc[1:].partition("]")
        if not bracket or "%" in literal or (rest and not rest.startswith(":")):
            raise NotASite("The address has no valid host name.")
        try:
            host = f"[{ipaddress.IPv6Address(literal).compressed}]"
        except ValueError:
            raise NotASite(f"{literal} is not an IPv6 address.") from None
        has_port, port = bool(rest), rest[1:]
    else:
        name, colon, port = netloc.partition(":")
        host, has_port = _host_name(name), bool(colon)
    if has_port:
        if not (port.isdigit() and len(port) <= 5 and 0 < int(port) <= 65535):
            raise NotASite("The port must be a number from 1 to 65535.")
        if int(port) != _DEFAULT_PORTS[scheme]:
            host = f"{host}:{int(port)}"
    return f"{scheme}://{host}"


def _context_path(path: str) -> str:
    """A Server site's context path (`/jira`), or "" for a site at the root."""
    context = path.rstrip("/")
    segments = context.split("/")[1:]
    if not _CONTEXT_PATH.fullmatch(context) or any(s in (".", "..") for s in segments):
        raise NotASite("The path may hold only letters, digits and - . _ ~ between slashes.")
    return context


def _split(url: str) -> SplitResult:
    if len(url) > 2000 or not _URL_CHARACTERS.fullmatch(url):
        raise NotASite(
            "The address may not hold spaces, quotes, angle brackets, backslashes or letters "
            "outside ASCII."
        )
    try:
        parts = urlsplit(url)
    except ValueError:
        raise NotASite("The address is not a well-formed URL.") from None
    if not url.lower().startswith(f"{parts.scheme}://") or not parts.netloc:
        raise NotASite("The address must start with https:// (or http://) and a host name.")
    return parts


def read_site(url: str) -> str:
    """An administrator's Jira base URL, normalised: scheme://host[:port][/context].

    Raises NotASite with the reason. The same rules as for the sites read from payloads,
    except that an internationalised (xn--) host is accepted: an administrator typed it.
    """
    if not url.strip():
        raise NotASite(f"Enter the Jira site's base URL, like {SITE_EXAMPLE}.")
    parts = _split(url.strip())
    if parts.query or parts.fragment or "?" in url or "#" in url:
        raise NotASite("Enter the site's base URL without ? or #.")
    context = _context_path(parts.path)
    if any(s in ("rest", "browse") for s in context.lower().split("/")):
        raise NotASite(f"Enter the site's base URL, like {SITE_EXAMPLE}, not a page of it.")
    site = _origin(parts.scheme, parts.netloc) + context
    if len(site) > MAX_SITE_LENGTH:
        raise NotASite(f"A Jira base URL is at most {MAX_SITE_LENGTH} characters.")
    return site


def site_base(self_url: str | None) -> str | None:
    """The Jira site a REST `self` URL belongs to, context path included; None unless the URL
    is well-formed (https or http, a valid host name, no user name or password).

    Only the part before `/rest/` is used: recent Cloud payloads have a malformed path after it
    (`/rest/api/2/10021`), and Server sites may live under a context path (`/jira`).
    """
    if not self_url:
        return None
    try:
        parts = _split(self_url)
        path = parts.path
        context = _context_path(path[: path.find("/rest/")] if "/rest/" in path else "")
        site = _origin(parts.scheme, parts.netloc) + context
    except NotASite:
        return None
    return site if len(site) <= MAX_SITE_LENGTH else None


def is_internationalised(site: str) -> bool:
    host = urlsplit(site).hostname or ""
    return any(label.startswith("xn--") for label in host.split("."))


def _browse_url(self_url: str | None, key: str | None) -> str | None:
    base = site_base(self_url)
    if base is None or not key:
        return None
    return f"{base}/browse/{quote(key, safe='-_.~')}"


def browse_site(url: str | None) -> str | None:
    """The site of a link `_browse_url` made ({site}/browse/{key}); None for any other URL."""
    head, marker, key = (url or "").rpartition("/browse/")
    if not marker or not _BROWSE_KEY.fullmatch(key):
        return None
    try:
        site = read_site(head)
    except NotASite:
        return None
    return site if site == head else None


def link_site(envelope: JiraEvent) -> str | None:
    """The site the envelope's Open in Jira link goes to, if it has one."""
    return browse_site(envelope.issue.browse_url) if envelope.issue else None


MALFORMED_LINK_NOTE = (
    "The issue's self URL is not a well-formed Jira address (https://host[:port][/path], no "
    "user name), so the card has no Open in Jira link."
)


def foreign_link_note(site: str, jira_site: str) -> str:
    return (
        f"The issue's address is on {site}, not on this workspace's Jira ({jira_site}), so the "
        "card has no Open in Jira link. If Jira moved, change its base URL on the Jira card of "
        "Admin > Integrations."
    )


def internationalised_link_note(site: str) -> str:
    return (
        f"The issue's address {site} has an internationalised host name, so the card has no "
        "Open in Jira link until an administrator enters that base URL on the Jira card of "
        "Admin > Integrations."
    )


def without_link(envelope: JiraEvent, note: str) -> JiraEvent:
    issue = envelope.issue.model_copy(update={"browse_url": None}) if envelope.issue else None
    return envelope.model_copy(update={"issue": issue, "notes": [*envelope.notes, note]})


def pin_link(envelope: JiraEvent, jira_site: str | None) -> JiraEvent:
    """The envelope with its Open in Jira link kept only where it may go.

    `jira_site` is the workspace's pinned Jira base URL (None until it is learned or set).
    A link to another site is dropped, and so is one to an internationalised host name that
    no administrator entered (a look-alike of the real name is too easy to make); the event's
    notes say why.
    """
    site = link_site(envelope)
    if site is None or site == jira_site:
        return envelope
    if jira_site is not None:
        return without_link(envelope, foreign_link_note(site, jira_site))
    if is_internationalised(site):
        return without_link(envelope, internationalised_link_note(site))
    return envelope


# ---------------------------------------------------------------------------------------------
# Envelope parts


def read_actor(value: object, path: str) -> Actor:
    user = _object(value, path)
    if user is None:
        return Actor()
    return Actor(
        display_name=_text(user.get("displayName"), f"{path}.displayName"),
        account_id=_text(user.get("accountId"), f"{path}.accountId"),
        name=_text(user.get("name"), f"{path}.name"),
    )


def read_issue(value: object, path: str = "issue") -> Issue | None:
    issue = _object(value, path)
    if issue is None:
        return None
    fields = _object(issue.get("fields"), f"{path}.fields") or {}
    project = _object(fields.get("project"), f"{path}.fields.project") or {}
    status = _object(fields.get("status"), f"{path}.fields.status") or {}
    key = _text(issue.get("key"), f"{path}.key")
    description = _rich_text(fields.get("description"), f"{path}.fields.description")
    return Issue(
        id=_text(issue.get("id"), f"{path}.id"),
        key=key,
        summary=_text(fields.get("summary"), f"{path}.fields.summary"),
        project_key=_text(project.get("key"), f"{path}.fields.project.key"),
        project_name=_text(project.get("name"), f"{path}.fields.project.name"),
        issue_type=_name(fields.get("issuetype"), f"{path}.fields.issuetype"),
        status=_text(status.get("name"), f"{path}.fields.status.name"),
        status_category=_name(
            status.get("statusCategory"), f"{path}.fields.status.statusCategory", "key"
        ),
        priority=_name(fields.get("priority"), f"{path}.fields.priority"),
        assignee=_person(fields.get("assignee"), f"{path}.fields.assignee"),
        reporter=_person(fields.get("reporter"), f"{path}.fields.reporter"),
        labels=_texts(fields.get("labels"), f"{path}.fields.labels"),
        components=_names(fields.get("components"), f"{path}.fields.components"),
        browse_url=_browse_url(_text(issue.get("self"), f"{path}.self"), key),
        description=description if description and description.strip() else None,
    )


# Server names some system fields differently from their Cloud fieldId.
_FIELD_ALIASES = {
    "fix version": "fixversions",
    "component": "components",
    "version": "versions",
    "security level": "security",
}


def _canonical_field(item: dict[str, Any], path: str) -> str:
    """fieldId when present, else the name; lower-case either way ("Status" = "status")."""
    field_id = _text(item.get("fieldId"), f"{path}.fieldId")
    if field_id and field_id.strip():
        return field_id.strip().lower()
    name = (_text(item.get("field"), f"{path}.field") or "").strip().lower()
    return _FIELD_ALIASES.get(name, name)


def _display(item: dict[str, Any], key: str, path: str) -> str | None:
    # fromString/toString are the display values (names, not account ids); when Jira left
    # them out, the raw value is the best there is.
    if f"{key}String" in item:
        return _text(item[f"{key}String"], f"{path}.{key}String")
    return _text(item.get(key), f"{path}.{key}")


def read_changes(value: object, path: str = "changelog") -> list[Change]:
    changelog = _object(value, path)
    if changelog is None or changelog.get("items") is None:
        return []
    items = changelog["items"]
    if not isinstance(items, list):
        raise Unreadable(f"{path}.items is {_json_type(items)}, not an array")
    changes = []
    for index, raw in enumerate(items):
        item_path = f"{path}.items[{index}]"
        item = _object(raw, item_path)
        if item is None:
            continue
        changes.append(
            Change(
                field=_canonical_field(item, item_path),
                from_=_display(item, "from", item_path),
                to=_display(item, "to", item_path),
                label=_text(item.get("field"), f"{item_path}.field"),
            )
        )
    return changes


def _visibility(comment: dict[str, Any], path: str) -> str | None:
    restriction = _object(comment.get("visibility"), f"{path}.visibility")
    if restriction is not None:
        return (
            _text(restriction.get("value"), f"{path}.visibility.value")
            or _text(restriction.get("identifier"), f"{path}.visibility.identifier")
            or _text(restriction.get("type"), f"{path}.visibility.type")
            or "restricted"
        )
    # Jira Service Management marks agent-only comments with jsdPublic false: restricted too.
    if comment.get("jsdPublic") is False:
        return "internal (Jira Service Management agents only)"
    return None


def read_comment(value: object, path: str = "comment") -> Comment | None:
    comment = _object(value, path)
    if comment is None:
        return None
    return Comment(
        id=_text(comment.get("id"), f"{path}.id"),
        author=_person(comment.get("author"), f"{path}.author"),
        body=_rich_text(comment.get("body"), f"{path}.body"),
        visibility=_visibility(comment, path),
    )


def read_occurred_at(value: object) -> tuple[datetime | None, str | None]:
    """`timestamp` (epoch milliseconds, number or digit string) → time, or a note why not."""
    if value is None:
        return None, None
    millis: float | None = None
    try:
        if isinstance(value, int | float) and not isinstance(value, bool):
            millis = float(value)
        elif isinstance(value, str) and value.strip().isascii() and value.strip().isdigit():
            millis = float(value.strip())
    except OverflowError:
        millis = None
    if millis is not None:
        try:
            return datetime.fromtimestamp(millis / 1000, UTC), None
        except (ValueError, OverflowError, OSError):
            pass  # out of the calendar's range: not a real timestamp
    return None, "The payload's timestamp is not epoch milliseconds, so occurred_at is unknown."


# ---------------------------------------------------------------------------------------------
# Handlers: what each kind of Jira event counts as


@dataclass(frozen=True)
class Context:
    payload: Payload
    jira_event: str | None  # webhookEvent as sent
    type_name: str | None  # issue_event_type_name
    jira_event_id: str | None
    override: str | None  # ?event= of an Automation body


Handler = Callable[[Context], Outcome]

# A kind of change → the event type it adds to an update.
CHANGE_EVENT_TYPES: dict[str, EventType] = {
    "status": EventType.STATUS_CHANGED,
    "assignee": EventType.ISSUE_ASSIGNED,
    "priority": EventType.PRIORITY_CHANGED,
}

NO_ISSUE_NOTE = (
    "Jira sent no issue with this comment event (Jira Server and Data Center do not), so the "
    "event has no project, issue type or status; filters on those cannot match it."
)


def read_security(value: object, path: str) -> SecurityLevel | None:
    """`issue.fields.security` → the level; null or absent means unrestricted."""
    level = _object(value, path)
    if level is None:
        return None
    # An object with neither id nor name still says "restricted": kept, unnamed.
    return SecurityLevel(
        id=_text(level.get("id"), f"{path}.id"),
        name=_text(level.get("name"), f"{path}.name"),
        description=_text(level.get("description"), f"{path}.description"),
    )


def _fields_of(issue_value: object) -> dict[str, Any] | None:
    if not isinstance(issue_value, dict):
        return None
    fields = issue_value.get("fields")
    return fields if isinstance(fields, dict) else None


def _security_parts(
    issue_value: object, path: str, changes: list[Change], *, full_issue: bool
) -> dict[str, Any]:
    """The event's security level and how it is known.

    A full issue (issue events, Automation's Jira-format body, Server's issue_commented)
    says it in `fields.security`, its absence meaning unrestricted. A comment event's trimmed
    issue (Cloud) or missing issue (Server) says nothing: the level is "unknown" until the
    intake looks up what earlier events of the issue said. A changelog item that moved the
    issue into a level counts when the fields do not say.
    """
    fields = _fields_of(issue_value)
    change = next((c for c in changes if c.field == "security"), None)
    if fields is not None and "security" in fields:
        return {
            "security": read_security(fields["security"], f"{path}.fields.security"),
            "security_source": "payload",
        }
    if change is not None:
        level = SecurityLevel(name=change.to) if change.to else None
        return {"security": level, "security_source": "changelog"}
    if full_issue and fields is not None:
        return {"security": None, "security_source": "payload"}
    return {"security": None, "security_source": "unknown"}


_COMMENT_ISSUE_ID = re.compile(r"/issue/(\d+)/comment/")


def _issue_id_of_comment(comment: dict[str, Any]) -> str | None:
    # Server's comment events carry no issue; the comment's URL names the issue's id.
    self_url = comment.get("self")
    if not isinstance(self_url, str):
        return None
    found = _COMMENT_ISSUE_ID.search(self_url)
    return found.group(1) if found else None


def _malformed_link(issue_value: object, issue: Issue | None) -> bool:
    """The issue has a key and a `self` URL, but no link could be made from them."""
    if issue is None or not issue.key or issue.browse_url is not None:
        return False
    self_url = issue_value.get("self") if isinstance(issue_value, dict) else None
    return isinstance(self_url, str) and bool(self_url.strip())


def _base_envelope(
    ctx: Context, issue_value: object, path: str = "issue", *, full_issue: bool = True
) -> dict[str, Any]:
    occurred_at, note = read_occurred_at(ctx.payload.get("timestamp"))
    issue = read_issue(issue_value, path)
    notes = [note] if note else []
    if _malformed_link(issue_value, issue):
        notes.append(MALFORMED_LINK_NOTE)
    changes = read_changes(ctx.payload.get("changelog"))
    return {
        "jira_event": ctx.jira_event,
        "jira_event_id": ctx.jira_event_id,
        "issue_event_type_name": ctx.type_name,
        "occurred_at": occurred_at,
        "actor": read_actor(ctx.payload.get("user"), "user"),
        "issue": issue,
        "issue_id": issue.id if issue else None,
        "changes": changes,
        "notes": notes,
        **_security_parts(issue_value, path, changes, full_issue=full_issue),
    }


def _require_issue(ctx: Context, parts: dict[str, Any]) -> None:
    if parts["issue"] is None:
        raise Unreadable(f"{ctx.jira_event or 'the event'} has no issue")


def _issue_created(ctx: Context) -> Outcome:
    parts = _base_envelope(ctx, ctx.payload.get("issue"))
    _require_issue(ctx, parts)
    # A new issue's changelog lists every initial value; it is only ever "created".
    return Transformed(JiraEvent(event_types=[EventType.ISSUE_CREATED], **parts))


def _issue_deleted(ctx: Context) -> Outcome:
    parts = _base_envelope(ctx, ctx.payload.get("issue"))
    _require_issue(ctx, parts)
    return Transformed(JiraEvent(event_types=[EventType.ISSUE_DELETED], **parts))


def update_event_types(changes: list[Change], type_name: str | None) -> list[EventType]:
    """issue_updated plus one type per kind of change, in the vocabulary's order."""
    kinds = {CHANGE_EVENT_TYPES[c.field] for c in changes if c.field in CHANGE_EVENT_TYPES}
    # Jira reports some assignments (API, bulk change) as issue_assigned with no changelog item.
    if type_name == "issue_assigned":
        kinds.add(EventType.ISSUE_ASSIGNED)
    return [EventType.ISSUE_UPDATED, *(t for t in EventType if t in kinds)]


def _issue_updated(ctx: Context) -> Outcome:
    if ctx.type_name in UPDATE_HANDLERS:
        return UPDATE_HANDLERS[ctx.type_name](ctx)
    if ctx.type_name in IGNORED_UPDATE_TYPES:
        return Ignored(IGNORED_UPDATE_TYPES[ctx.type_name], ctx.jira_event)
    if ctx.type_name is None and _old_server_comment(ctx.payload):
        return _old_server_comment_event(ctx)
    parts = _base_envelope(ctx, ctx.payload.get("issue"))
    _require_issue(ctx, parts)
    types = update_event_types(parts["changes"], ctx.type_name)
    return Transformed(JiraEvent(event_types=types, **parts))


def _old_server_comment(payload: Payload) -> bool:
    # Old Server versions send no issue_event_type_name; a comment with no changelog items is
    # then the only sign that an update is a comment.
    changelog = payload.get("changelog")
    items = changelog.get("items") if isinstance(changelog, dict) else None
    return isinstance(payload.get("comment"), dict) and not items


def _old_server_comment_event(ctx: Context) -> Outcome:
    comment = _object(ctx.payload.get("comment"), "comment") or {}
    created, updated = comment.get("created"), comment.get("updated")
    edited = isinstance(updated, str) and isinstance(created, str) and updated != created
    kind = EventType.COMMENT_UPDATED if edited else EventType.COMMENT_CREATED
    return _comment_event(ctx, kind)


def _comment_actor(ctx: Context, comment: dict[str, Any], kind: EventType) -> Actor:
    if ctx.payload.get("user") is not None:
        return read_actor(ctx.payload.get("user"), "user")
    # Comment events carry no `user`: the author wrote it, the update author edited it.
    # Who deleted a comment is not in the payload.
    if kind == EventType.COMMENT_CREATED:
        return read_actor(comment.get("author"), "comment.author")
    if kind == EventType.COMMENT_UPDATED:
        editor = comment.get("updateAuthor") or comment.get("author")
        return read_actor(editor, "comment.updateAuthor")
    return Actor()


def comment_dedupe_key(comment: dict[str, Any], kind: EventType) -> str | None:
    """The same comment reported twice gets the same key; two different edits do not."""
    comment_id = comment.get("id")
    if not isinstance(comment_id, str | int) or isinstance(comment_id, bool):
        return None
    self_url = comment.get("self")
    site = site_base(self_url if isinstance(self_url, str) else None) or ""
    key = f"{kind.value}:{site}:{comment_id}"
    if kind == EventType.COMMENT_UPDATED:
        # Every edit is news; the edit time tells two reports of one edit from two edits.
        updated = comment.get("updated")
        if not isinstance(updated, str) or not updated:
            return None
        key = f"{key}:{updated}"
    return clean(key)


def _comment_event(ctx: Context, kind: EventType) -> Outcome:
    raw_comment = _object(ctx.payload.get("comment"), "comment")
    if raw_comment is None:
        raise Unreadable(f"{ctx.jira_event or 'the event'} is a comment event without a comment")
    # Server's issue_commented reports carry the full issue; comment_* events a trimmed one
    # (Cloud) or none (Server).
    full_issue = (ctx.jira_event or "").removeprefix("jira:") == "issue_updated"
    parts = _base_envelope(ctx, ctx.payload.get("issue"), full_issue=full_issue)
    parts["actor"] = _comment_actor(ctx, raw_comment, kind)
    if parts["issue"] is None:
        parts["notes"].append(NO_ISSUE_NOTE)
        parts["issue_id"] = _issue_id_of_comment(raw_comment)
    envelope = JiraEvent(
        event_types=[kind],
        comment=read_comment(raw_comment),
        dedupe_key=comment_dedupe_key(raw_comment, kind),
        **parts,
    )
    return Transformed(envelope)


def _comment_handler(kind: EventType) -> Handler:
    def handle(ctx: Context) -> Outcome:
        return _comment_event(ctx, kind)

    return handle


# webhookEvent (without the `jira:` prefix) → handler.
EVENT_HANDLERS: dict[str, Handler] = {
    "issue_created": _issue_created,
    "issue_updated": _issue_updated,
    "issue_deleted": _issue_deleted,
    "comment_created": _comment_handler(EventType.COMMENT_CREATED),
    "comment_updated": _comment_handler(EventType.COMMENT_UPDATED),
    "comment_deleted": _comment_handler(EventType.COMMENT_DELETED),
}

# issue_event_type_name of a jira:issue_updated → handler, where it is not a plain update.
# Server reports comments this way too; they are comment events, never issue_updated.
UPDATE_HANDLERS: dict[str, Handler] = {
    "issue_commented": _comment_handler(EventType.COMMENT_CREATED),
    "issue_comment_edited": _comment_handler(EventType.COMMENT_UPDATED),
    "issue_comment_deleted": _comment_handler(EventType.COMMENT_DELETED),
}

_WORKLOG_REASON = "Worklog changes are not a product event type yet."

# issue_event_type_name values of jira:issue_updated that report a worklog, not an edit.
IGNORED_UPDATE_TYPES: dict[str, str] = {
    "issue_worklogged": _WORKLOG_REASON,
    "issue_worklog_updated": _WORKLOG_REASON,
    "issue_worklog_deleted": _WORKLOG_REASON,
}

# webhookEvent families (without `jira:`) stored as `ignored`, with the reason shown.
IGNORED_EVENTS: tuple[tuple[str, str], ...] = (
    ("worklog_", _WORKLOG_REASON),
    ("attachment_", "Attachment events are not a product event type yet."),
    ("issuelink_", "Issue link events are not a product event type yet."),
    ("issue_property_", "Issue property events are not a product event type yet."),
    ("project_", "Project events are not about one issue."),
    ("version_", "Version events are not about one issue."),
    ("sprint_", "Sprint events are not about one issue."),
    ("board_", "Board events are not about one issue."),
    ("user_", "User events are not about one issue."),
    ("filter_", "Filter events are not about one issue."),
    ("option_", "Jira option events are not about one issue."),
    ("issuetype_", "Issue type events are not about one issue."),
)

# ?event= values for Automation bodies: what the body then counts as.
OVERRIDE_EVENT_TYPES: dict[str, list[EventType]] = {
    t.value: ([EventType.ISSUE_UPDATED, t] if t in CHANGE_EVENT_TYPES.values() else [t])
    for t in EventType
}


# ---------------------------------------------------------------------------------------------
# Automation "Send web request" bodies (no webhookEvent)


def _automation_issue(payload: Payload) -> tuple[object, str] | None:
    """Where the issue is: under `issue` (Jira format) or at the top level (Automation format)."""
    if "issue" in payload:
        return payload["issue"], "issue"
    if "key" in payload and "fields" in payload:
        return payload, "body"
    return None


def _automation(ctx: Context) -> Outcome:
    found = _automation_issue(ctx.payload)
    if found is None:
        return Rejected(
            "The body has no webhookEvent and no issue. From Jira Automation, send "
            '"Issue data (Jira format)" or "Issue data (Automation format)".'
        )
    override = clean(ctx.override or "").strip().lower() or None
    if override is not None and override not in OVERRIDE_EVENT_TYPES:
        return Rejected(
            f"?event={override[:60]} is not a product event type; use one of "
            + ", ".join(OVERRIDE_EVENT_TYPES)
            + "."
        )
    types = OVERRIDE_EVENT_TYPES[override] if override else [EventType.ISSUE_UPDATED]
    parts = _base_envelope(ctx, found[0], found[1])
    _require_issue(ctx, parts)
    parts["notes"].append(
        "Sent without webhookEvent (Jira Automation); counted as "
        + ", ".join(t.value for t in types)
        + (" as the URL's ?event= says." if override else " (add ?event= to say otherwise).")
    )
    comment = read_comment(ctx.payload.get("comment"))
    return Transformed(JiraEvent(event_types=types, comment=comment, **parts))


# ---------------------------------------------------------------------------------------------
# Entry point


def _ignored_reason(name: str) -> str:
    for prefix, reason in IGNORED_EVENTS:
        if name.startswith(prefix):
            return reason
    return "Not an event type this service routes (unknown Jira event)."


def transform(
    payload: Payload,
    *,
    jira_event_id: str | None = None,
    event_override: str | None = None,
    jira_site: str | None = None,
) -> Outcome:
    """Read one Jira payload. Never raises for any JSON object.

    `jira_site` is the workspace's pinned Jira base URL: links elsewhere are left out.
    """
    raw_event = payload.get("webhookEvent")
    if raw_event is not None and not isinstance(raw_event, str):
        return Rejected(f"webhookEvent is {_json_type(raw_event)}, not text")
    jira_event = clean(raw_event) if raw_event is not None else None
    try:
        type_name = _text(payload.get("issue_event_type_name"), "issue_event_type_name")
        ctx = Context(payload, jira_event, type_name, jira_event_id, event_override)
        outcome = _dispatch(ctx)
    except Unreadable as problem:
        return Rejected(f"The payload cannot be read: {problem}.", jira_event)
    if not isinstance(outcome, Transformed):
        return outcome
    envelope = outcome.envelope
    if jira_event is not None and event_override:
        note = "?event= was not used: it applies only to bodies without webhookEvent."
        envelope = envelope.model_copy(update={"notes": [*envelope.notes, note]})
    return Transformed(pin_link(envelope, jira_site))


def _dispatch(ctx: Context) -> Outcome:
    if ctx.jira_event is None:
        return _automation(ctx)
    name = ctx.jira_event.strip().removeprefix("jira:")
    if not name:
        return Rejected("webhookEvent is empty")
    handler = EVENT_HANDLERS.get(name)
    if handler is None:
        return Ignored(_ignored_reason(name), ctx.jira_event)
    return handler(ctx)
