"""create_app(): the API routers, the web UI and, in `serve`, the embedded delivery worker."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles
from starlette.types import ASGIApp

from ticketmate import __version__
from ticketmate.accounts.api import router as me_router
from ticketmate.audit.api import router as audit_router
from ticketmate.config import Settings
from ticketmate.db import AsyncDatabase, Database
from ticketmate.delivery.api import router as delivery_router
from ticketmate.errors import install_error_handlers
from ticketmate.health import router as health_router
from ticketmate.jira.api import router as jira_api_router
from ticketmate.jira.intake import router as jira_intake_router
from ticketmate.jira.intake_writer import IntakeWriter
from ticketmate.logging_setup import RequestIdMiddleware, RequestLogMiddleware
from ticketmate.metrics import router as metrics_router
from ticketmate.security.auth import CSRF_HEADER, SESSION_COOKIE
from ticketmate.security.crypto import Keyring, load_keyring
from ticketmate.state import Services
from ticketmate.teams.api import router as teams_router
from ticketmate.web.admin_views import router as admin_pages_router
from ticketmate.web.api_docs import OPENAPI_URL
from ticketmate.web.api_docs import router as api_docs_router
from ticketmate.web.auth_views import router as auth_router
from ticketmate.web.headers import SecurityHeaders
from ticketmate.web.home_views import router as home_router
from ticketmate.workspaces.api import router as workspace_router

# A background part of the service (the embedded worker): started with the app, stopped with it.
BackgroundPart = Callable[[Services], Awaitable[Callable[[], Awaitable[None]]]]


def build_services(settings: Settings, keyring: Keyring | None = None) -> Services:
    return Services(
        settings=settings,
        db=Database(settings),
        keyring=keyring or load_keyring(settings, create=True),
    )


# How /api/v1 callers authenticate, for the OpenAPI description (security/auth.py decides).
SECURITY_SCHEMES: dict[str, dict[str, Any]] = {
    "apiToken": {
        "type": "http",
        "scheme": "bearer",
        "description": "An API token from `ticketmate token create`.",
    },
    "session": {
        "type": "apiKey",
        "in": "cookie",
        "name": SESSION_COOKIE,
        "description": "The admin UI's session. Changes made with it must carry the page's "
        f"`{CSRF_HEADER}` header.",
    },
}


def describe_authentication(app: FastAPI) -> None:
    """Name the security schemes in the OpenAPI description, on every /api/v1 operation.

    The routes check credentials in a dependency of their own (security/auth.py), which
    FastAPI cannot describe; without this the description would say they need none.
    """
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is not None:
            return app.openapi_schema
        schema = generate()
        schema.setdefault("components", {})["securitySchemes"] = SECURITY_SCHEMES
        for path, operations in schema.get("paths", {}).items():
            if path.startswith("/api/v1/"):
                for operation in operations.values():
                    operation["security"] = [{name: []} for name in SECURITY_SCHEMES]
        return schema

    app.openapi = openapi  # type: ignore[method-assign]


def carry_request_id(app: FastAPI) -> None:
    """Wrap the whole middleware stack, Starlette's error middleware too, in RequestIdMiddleware:
    an answer to an unhandled error then carries the id, and the error's log line has it."""
    build = app.build_middleware_stack

    def build_with_request_id() -> ASGIApp:
        return RequestIdMiddleware(build())

    app.build_middleware_stack = build_with_request_id  # type: ignore[method-assign]


def create_app(
    settings: Settings,
    *,
    services: Services | None = None,
    background: list[BackgroundPart] | None = None,
) -> FastAPI:
    svc = services or build_services(settings)
    parts = list(background or [])

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        # The intake writer's engine belongs to this event loop (asyncio connections do).
        intake_db = AsyncDatabase(svc.settings, application_name="ticketmate-intake")
        writer = IntakeWriter(svc, intake_db)
        writer.start()
        svc.intake_writer = writer
        try:
            stops = [await start(svc) for start in parts]
            try:
                yield
            finally:
                for stop in reversed(stops):
                    await stop()
        finally:
            # Requests already handed over are written and answered before the engine goes.
            await writer.stop()
            svc.intake_writer = None
            await intake_db.dispose()
            if services is None:
                svc.db.dispose()

    app = FastAPI(
        title="Ticket MATE",
        version=__version__,
        description="Jira activity delivered to Microsoft Teams channels as Adaptive Cards.",
        lifespan=lifespan,
        openapi_url=OPENAPI_URL,
        # /docs is ours (web/api_docs.py): Swagger UI from the vendored files, not from a CDN.
        docs_url=None,
        redoc_url=None,
    )
    app.state.services = svc
    install_error_handlers(app)
    describe_authentication(app)
    app.add_middleware(RequestLogMiddleware)
    app.add_middleware(SecurityHeaders)
    carry_request_id(app)
    app.mount("/static", StaticFiles(directory=Path(__file__).parent / "web" / "static"), "static")
    for router in (
        health_router,
        metrics_router,
        me_router,
        workspace_router,
        jira_intake_router,
        jira_api_router,
        teams_router,
        delivery_router,
        audit_router,
        auth_router,
        home_router,
        admin_pages_router,
        api_docs_router,
    ):
        app.include_router(router)
    return app
