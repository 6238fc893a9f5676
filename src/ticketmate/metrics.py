"""Prometheus metrics: what came in from Jira, what went out to Teams, what is waiting.

Counters carry no workspace or channel labels: /metrics is for operators and must not list
tenants. The queue's gauges (depth, age of the oldest due delivery) are read from the
database when scraped, through the due-row index, so every process — the web app or any of
several workers — reports the whole queue, not its own share. One gauge, read the same way,
names workspaces: the webhooks whose URL Microsoft has retired or is retiring, by workspace
slug and URL family, because an operator has to tell that workspace's administrators; only
workspaces that have such webhooks appear, with two families at most.

With TICKETMATE_METRICS_TOKEN set, /metrics answers only `Authorization: Bearer <token>`
(compared in constant time), on the web app and on a worker's --metrics-port alike.
"""

from __future__ import annotations

import hmac
import json
import threading
from collections.abc import Callable, Iterable, Iterator
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from fastapi import APIRouter, Request
from fastapi.responses import Response
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
)
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector
from pydantic import SecretStr
from sqlalchemy import func, select

from ticketmate.db import Database
from ticketmate.errors import ApiError, error_body
from ticketmate.timeutil import utcnow

REGISTRY = CollectorRegistry(auto_describe=True)

JIRA_EVENTS = Counter(
    "ticketmate_jira_events",
    "Jira webhook requests stored, by outcome (routed, ignored, rejected, duplicate).",
    ["status"],
    registry=REGISTRY,
)
DELIVERIES_QUEUED = Counter(
    "ticketmate_deliveries_queued", "Deliveries queued by the EventRouter.", registry=REGISTRY
)
DELIVERY_ATTEMPTS = Counter(
    "ticketmate_delivery_attempts",
    "Requests to Teams, by what they led to (delivered, retry, dead_letter).",
    ["outcome"],
    registry=REGISTRY,
)
TEAMS_LATENCY = Histogram(
    "ticketmate_teams_request_seconds",
    "Time Teams took to answer one delivery request (or to time out).",
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2, 4, 8, 16),
    registry=REGISTRY,
)


DELIVERIES_FINISHED = Counter(
    "ticketmate_deliveries_finished",
    "Deliveries that reached a final state, by outcome (delivered, dead_letter, skipped, folded).",
    ["outcome"],
    registry=REGISTRY,
)
WEBHOOKS_AUTO_DISABLED = Counter(
    "ticketmate_webhooks_auto_disabled",
    "Webhooks disabled because Teams kept answering that the channel's webhook is gone.",
    registry=REGISTRY,
)
LEASE_EXPIRIES = Counter(
    "ticketmate_delivery_lease_expiries",
    "In-flight deliveries taken again because their worker's lease ran out (a worker died or "
    "stalled); each may reach Teams twice.",
    registry=REGISTRY,
)
INTAKE_BATCH_EVENTS = Histogram(
    "ticketmate_intake_batch_events",
    "Jira requests written in one intake transaction (group commit).",
    buckets=(1, 2, 4, 8, 16, 32, 64),
    registry=REGISTRY,
)
INTAKE_COMMIT_SECONDS = Histogram(
    "ticketmate_intake_commit_seconds",
    "Time one intake transaction took, from its first statement to its commit.",
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5),
    registry=REGISTRY,
)


class QueueDepth(Collector):
    """Deliveries waiting (pending or in flight), and how long the oldest due one has waited,
    read at scrape time."""

    def __init__(self, db: Database) -> None:
        self.db = db

    def collect(self) -> Iterator[GaugeMetricFamily]:
        from ticketmate.delivery.queue import DUE_STATUSES, D, status_in

        gauge = GaugeMetricFamily(
            "ticketmate_delivery_queue_depth",
            "Deliveries waiting to be sent, by status.",
            labels=["status"],
        )
        with self.db.transaction() as session:
            rows = dict(
                session.execute(
                    select(D.status, func.count()).where(status_in(DUE_STATUSES)).group_by(D.status)
                ).all()
            )
            oldest = session.scalar(
                select(func.min(D.next_attempt_at)).where(
                    status_in(DUE_STATUSES), D.next_attempt_at <= utcnow()
                )
            )
        for status in DUE_STATUSES:
            gauge.add_metric([status], float(rows.get(status, 0)))
        yield gauge
        age = GaugeMetricFamily(
            "ticketmate_delivery_oldest_due_seconds",
            "How long the longest-waiting due delivery has been due (0 when none is): a growing "
            "value means the workers are not keeping up or are not running.",
        )
        age.add_metric([], max(0.0, (utcnow() - oldest).total_seconds()) if oldest else 0.0)
        yield age


class WebhooksNeedingNewUrl(Collector):
    """Webhooks whose URL is of a retired or retiring family, by workspace and family, read
    at scrape time."""

    def __init__(self, db: Database) -> None:
        self.db = db

    def collect(self) -> Iterator[GaugeMetricFamily]:
        from ticketmate.models import TeamsWebhook, Workspace
        from ticketmate.security.urls import NEEDS_NEW_URL

        gauge = GaugeMetricFamily(
            "ticketmate_webhooks_needing_new_url",
            "Webhooks whose URL Microsoft has retired (logic_apps: Workflows on "
            "logic.azure.com) or is retiring (connector: Office 365 connectors), by workspace "
            "slug and URL family: create a Workflows webhook in the channel and replace the "
            "URL. Workspaces without any are not listed.",
            labels=["workspace", "url_family"],
        )
        with self.db.transaction() as session:
            rows = session.execute(
                select(Workspace.slug, TeamsWebhook.url_family, func.count())
                .join(Workspace, Workspace.id == TeamsWebhook.workspace_id)
                .where(TeamsWebhook.url_family.in_(NEEDS_NEW_URL))
                .group_by(Workspace.slug, TeamsWebhook.url_family)
                .order_by(Workspace.slug, TeamsWebhook.url_family)
            ).all()
        for slug, family, count in rows:
            gauge.add_metric([slug, family], float(count))
        yield gauge


def bearer_matches(authorization: str | None, token: SecretStr | None) -> bool:
    """True when no token is configured, or the header carries exactly that token."""
    if token is None:
        return True
    scheme, _, presented = (authorization or "").partition(" ")
    expected = token.get_secret_value().encode()
    # compare_digest on bytes of any length: its time does not depend on where they differ.
    return scheme.lower() == "bearer" and hmac.compare_digest(presented.strip().encode(), expected)


def metrics_refused() -> ApiError:
    return ApiError(
        401,
        "unauthorized",
        "Send the metrics token as Authorization: Bearer <token>.",
        headers={"WWW-Authenticate": "Bearer"},
    )


def queue_registry(db: Database) -> CollectorRegistry:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(QueueDepth(db))
    registry.register(WebhooksNeedingNewUrl(db))
    return registry


router = APIRouter(tags=["operations"])


@router.get("/metrics", include_in_schema=False)
def metrics(request: Request) -> Response:
    """Prometheus text format: the process's counters and the queue's gauges."""
    state = request.app.state
    if not bearer_matches(
        request.headers.get("authorization"), state.services.settings.metrics_token
    ):
        raise metrics_refused()
    if not hasattr(state, "queue_registry"):
        state.queue_registry = queue_registry(state.services.db)
    body = generate_latest(REGISTRY) + generate_latest(state.queue_registry)
    return Response(body, media_type=CONTENT_TYPE_LATEST)


# -- the worker's own /metrics ---------------------------------------------------------------

WsgiApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        """Scrapes every few seconds would drown the worker's own lines."""


def worker_metrics_app(db: Database, token: SecretStr | None) -> WsgiApp:
    """The counters and the queue's gauges, behind the same token check as the web app's."""
    registries = (REGISTRY, queue_registry(db))

    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        if not bearer_matches(environ.get("HTTP_AUTHORIZATION"), token):
            refused = metrics_refused()
            body = json.dumps(error_body(refused.code, refused.message)).encode()
            start_response(
                "401 Unauthorized",
                [("Content-Type", "application/json"), ("WWW-Authenticate", "Bearer")],
            )
            return [body]
        if environ.get("PATH_INFO", "/") not in ("/", "/metrics"):
            start_response("404 Not Found", [("Content-Type", "text/plain")])
            return [b"not found\n"]
        body = b"".join(generate_latest(registry) for registry in registries)
        start_response("200 OK", [("Content-Type", CONTENT_TYPE_LATEST)])
        return [body]

    return app


def serve_worker_metrics(port: int, db: Database, token: SecretStr | None) -> WSGIServer:
    """Serve on 127.0.0.1:`port` from a daemon thread (a scrape reads the database there,
    never on the worker's event loop)."""
    server = make_server(
        "127.0.0.1", port, worker_metrics_app(db, token), handler_class=_QuietHandler
    )
    threading.Thread(target=server.serve_forever, name="metrics", daemon=True).start()
    return server
