"""Security > Audit Log: who did what and when, filtered and paged, and "Verify integrity"."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from starlette.responses import Response

from ticketmate.audit import api as audit_api
from ticketmate.audit.service import ChainReport, verify_chain
from ticketmate.models import AuditEntry
from ticketmate.pagination import Page, decode_cursor, fetch_page
from ticketmate.timeutil import utcnow
from ticketmate.web.guard import AdminView, PageRoute, Svc
from ticketmate.web.labels import AUDIT_ACTION_GROUPS, AUDIT_ACTION_LABELS
from ticketmate.web.pages import AdminPage, fragment, is_htmx, page, with_query
from ticketmate.web.queries import audit_actors

router = APIRouter(route_class=PageRoute, include_in_schema=False)

AUDIT = "/w/{slug}/security/audit-log"
PAGE_SIZE = 50
Param = Annotated[str, Query(max_length=254)]

TIME_RANGES: dict[str, tuple[str, timedelta]] = {
    "24h": ("Last 24 hours", timedelta(hours=24)),
    "7d": ("Last 7 days", timedelta(days=7)),
    "30d": ("Last 30 days", timedelta(days=30)),
    "custom": ("Between the dates below (UTC)", timedelta(0)),
}


def _utc_input(value: str) -> datetime | None:
    """A `datetime-local` or date input value, read as UTC (the fields are labelled so)."""
    if not value:
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return None
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)


def _target(entry: AuditEntry) -> str:
    """The target in words: "Webhook “eng”" rather than a bare id when the details say."""
    details = entry.details or {}
    kind = {
        "teams_webhook": "Webhook",
        "teams_subscription": "Subscription",
        "delivery": "Delivery",
        "workspace": "Workspace",
        "user": "User",
    }.get(entry.target_type or "", entry.target_type or "")
    name = details.get("channel_name")
    if entry.target_type == "teams_webhook" and isinstance(name, str):
        return f"{kind} “{name}”"
    if entry.target_type == "teams_subscription" and isinstance(name, str):
        return f"{kind} to “{name}”"
    return kind


def _details(entry: AuditEntry) -> list[tuple[str, str]]:
    """The entry's details as (key, words) lines; empty values are left out."""
    shown = []
    for key, value in sorted((entry.details or {}).items()):
        text = _words(value)
        if text:
            shown.append((key, text))
    return shown


def _words(value: Any) -> str:
    if value is None or value == [] or value == {}:
        return ""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, list):
        return ", ".join(_words(item) for item in value)
    if isinstance(value, dict):
        if set(value) == {"from", "to"}:  # a change: "from → to"
            return f"{_words(value['from']) or '—'} → {_words(value['to']) or '—'}"
        parts = [f"{k}: {_words(v)}" for k, v in sorted(value.items()) if _words(v)]
        return "; ".join(parts) or "—"
    return str(value)


def _verdict(svc: Svc, p: AdminPage) -> ChainReport:
    with svc.db.transaction() as session:
        return verify_chain(session, p.workspace_id)


@dataclass(frozen=True)
class AuditFilters:
    """The list's filters as the form sends them; unknown values are dropped."""

    action: str = ""
    actor: str = ""
    time: str = ""
    since: str = ""
    until: str = ""

    @classmethod
    def of(cls, action: str, actor: str, time: str, since: str, until: str) -> AuditFilters:
        known = action in AUDIT_ACTION_LABELS or action in AUDIT_ACTION_GROUPS
        time = time if time in TIME_RANGES else ""
        if (since or until) and not time:
            time = "custom"  # dates typed without choosing the range they belong to
        if time != "custom":
            since = until = ""
        return cls(action if known else "", actor.strip(), time, since, until)

    def window(self) -> tuple[datetime | None, datetime | None]:
        if self.time == "custom":
            start, end = _utc_input(self.since), _utc_input(self.until)
            if end is not None and len(self.until) <= 10:
                end += timedelta(days=1)  # a date alone means "to the end of that day"
            return start, end
        if self.time:
            return utcnow() - TIME_RANGES[self.time][1], None
        return None, None

    def query(self) -> dict[str, str]:
        return {k: v for k, v in asdict(self).items() if v}


@router.get(AUDIT)
def audit_log(
    request: Request,
    p: AdminView,
    svc: Svc,
    action: Param = "",
    actor: Param = "",
    time: Param = "",
    since: Param = "",
    until: Param = "",
    cursor: Param = "",
) -> Response:
    filters = AuditFilters.of(action, actor, time, since, until)
    return _audit_page(request, p, svc, filters, cursor)


def _audit_page(
    request: Request,
    p: AdminPage,
    svc: Svc,
    filters: AuditFilters,
    cursor: str = "",
    verdict: ChainReport | None = None,
) -> Response:
    start, end = filters.window()
    query = audit_api.filtered(
        p.workspace_id,
        action=filters.action or None,
        actor=filters.actor or None,
        since=start,
        until=end,
    )
    listing = Page(limit=PAGE_SIZE, after_id=decode_cursor(cursor) if cursor else None)
    with svc.db.transaction() as session:
        rows, next_cursor = fetch_page(session, query, AuditEntry.id, listing)
        shown = [
            {"entry": row[0], "target": _target(row[0]), "details": _details(row[0])}
            for row in rows
        ]
        actors = audit_actors(session, p.workspace_id)
    kept = filters.query()
    return page(
        request,
        "audit.html",
        p,
        section="audit",
        rows=shown,
        actors=actors,
        filters=filters,
        filtered=bool(kept),
        action_labels=AUDIT_ACTION_LABELS,
        action_groups=AUDIT_ACTION_GROUPS,
        time_ranges={k: v[0] for k, v in TIME_RANGES.items()},
        verdict=verdict,
        next_url=with_query(p.audit_url, cursor=next_cursor, **kept) if next_cursor else None,
        first_url=with_query(p.audit_url, **kept) if cursor else None,
    )


@router.get(AUDIT + "/verify")
def verify_integrity(request: Request, p: AdminView, svc: Svc) -> Response:
    """Check the workspace's hash chain: HTMX shows the verdict in place, a plain request
    gets the Audit Log page with the verdict on top."""
    verdict = _verdict(svc, p)
    if is_htmx(request):
        return fragment(request, "_verify_result.html", p, verdict=verdict)
    return _audit_page(request, p, svc, AuditFilters(), verdict=verdict)
