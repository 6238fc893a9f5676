"""Jinja2 templates and the helpers every page uses."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from fastapi import Request
from fastapi.templating import Jinja2Templates
from markupsafe import Markup
from starlette.responses import Response

from ticketmate.timeutil import rfc3339
from ticketmate.web import labels

templates = Jinja2Templates(directory=str(Path(__file__).parent / "templates"))
templates.env.filters["rfc3339"] = rfc3339


def _as_utc(value: datetime | str | None) -> datetime | None:
    if value is None or value == "":
        return None
    if isinstance(value, str):
        value = datetime.fromisoformat(value.replace("Z", "+00:00"))
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def time_tag(value: datetime | str | None, empty: str = "—") -> Markup:
    """`<time>` in UTC; static/app.js rewrites the text in the browser's time zone and keeps
    the UTC value in the title, so the page reads right with or without JavaScript."""
    moment = _as_utc(value)
    if moment is None:
        return Markup("{}").format(empty)
    utc_text = moment.strftime("%Y-%m-%d %H:%M:%S UTC")
    return Markup('<time datetime="{}" title="{}">{}</time>').format(
        rfc3339(moment), utc_text, moment.strftime("%Y-%m-%d %H:%M UTC")
    )


def _badge(status: str) -> Markup:
    return Markup('<span class="badge badge-{}">{}</span>').format(
        status.replace("_", "-"), labels.status_label(status)
    )


templates.env.filters["timetag"] = time_tag
templates.env.filters["event_label"] = labels.event_label
templates.env.filters["status_badge"] = _badge
templates.env.filters["action_label"] = labels.action_label
templates.env.globals["FILTER_LABELS"] = labels.FILTER_LABELS
templates.env.globals["URL_KIND_LABELS"] = labels.URL_KIND_LABELS


def render(request: Request, name: str, status_code: int = 200, **context: Any) -> Response:
    return templates.TemplateResponse(request, name, context, status_code=status_code)
