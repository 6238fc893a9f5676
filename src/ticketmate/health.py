"""Liveness and readiness."""

from __future__ import annotations

from typing import Annotated, Any

from alembic.runtime.migration import MigrationContext
from fastapi import APIRouter, Depends
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from sqlalchemy.exc import SQLAlchemyError

from ticketmate.migrate import head_revision
from ticketmate.state import Services, services

router = APIRouter(tags=["operations"])


class Ready(BaseModel):
    status: str = Field(description="`ready`.")
    database: str = Field(description="`ok`.")
    revision: str | None = Field(description="The database's migration revision.")


class NotReady(BaseModel):
    status: str = Field(description="`unavailable`.")
    database: str = Field(description="`unreachable` or `migrations pending`.")
    revision: str | None = Field(
        default=None, description="The database's revision, when migrations are pending."
    )


@router.get("/healthz")
def healthz() -> dict[str, str]:
    """The process is up."""
    return {"status": "ok"}


@router.get(
    "/readyz",
    response_model=None,
    responses={
        200: {"model": Ready, "description": "The database answers and is migrated."},
        503: {
            "model": NotReady,
            "description": "Not ready: the database is unreachable, "
            "or migrations are pending (`ticketmate db upgrade`).",
        },
    },
)
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
