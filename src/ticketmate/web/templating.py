"""Jinja2 templates and the helpers every page uses."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fastapi import Request
from fastapi.templating import Jinja2Templates
from starlette.responses import Response

from ticketmate.timeutil import rfc3339

templates = Jinja2Templates(directory=str(Path(__file__).parent / "templates"))
templates.env.filters["rfc3339"] = rfc3339


def render(request: Request, name: str, status_code: int = 200, **context: Any) -> Response:
    return templates.TemplateResponse(request, name, context, status_code=status_code)
