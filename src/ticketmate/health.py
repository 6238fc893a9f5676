"""Liveness and readiness."""

from __future__ import annotations

from typing import Annotated, Any

from alembic.runtime.migration import MigrationContext
from fastapi import APIRouter, Depends
from fastapi.responses import JSONResponse
from sqlalchemy.exc import SQLAlchemyError

from ticketmate.migrate import head_revision
from ticketmate.state import Services, services

router = APIRouter(tags=["operations"])


@router.get("/healthz")
def healthz() -> dict[str, str]:
    """The process is up."""
    return {"status": "ok"}


@router.get("/readyz", response_model=None)
def readyz(svc: Annotated[Services, Depends(services)]) -> Any:
    """The database answers and its schema is at the newest migration."""
    try:
        with svc.db.engine.connect() as connection:
            current = MigrationContext.configure(connection).get_current_revision()
    except (SQLAlchemyError, OSError):
        return JSONResponse({"status": "unavailable", "database": "unreachable"}, status_code=503)
    head = head_revision()
    if current != head:
        return JSONResponse(
            {"status": "unavailable", "database": "migrations pending", "revision": current},
            status_code=503,
        )
    return {"status": "ready", "database": "ok", "revision": current}
