"""create_app(): the API routers, the web UI and, in `serve`, the embedded delivery worker."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles

from ticketmate import __version__
from ticketmate.accounts.api import router as me_router
from ticketmate.audit.api import router as audit_router
from ticketmate.config import Settings
from ticketmate.db import Database
from ticketmate.delivery.api import router as delivery_router
from ticketmate.errors import install_error_handlers
from ticketmate.health import router as health_router
from ticketmate.jira.api import router as jira_api_router
from ticketmate.jira.intake import router as jira_intake_router
from ticketmate.logging_setup import RequestLogMiddleware
from ticketmate.metrics import router as metrics_router
from ticketmate.security.crypto import Keyring, load_keyring
from ticketmate.state import Services
from ticketmate.teams.api import router as teams_router
from ticketmate.web.admin_views import router as admin_pages_router
from ticketmate.web.auth_views import router as auth_router
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
        stops = [await start(svc) for start in parts]
        try:
            yield
        finally:
            for stop in reversed(stops):
                await stop()
            if services is None:
                svc.db.dispose()

    app = FastAPI(
        title="Ticket MATE",
        version=__version__,
        description="Jira activity delivered to Microsoft Teams channels as Adaptive Cards.",
        lifespan=lifespan,
    )
    app.state.services = svc
    install_error_handlers(app)
    app.add_middleware(RequestLogMiddleware)
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
    ):
        app.include_router(router)
    return app
