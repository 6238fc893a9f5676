"""Prometheus metrics: what came in from Jira, what went out to Teams, what is waiting.

Counters carry no workspace or channel labels: /metrics is for operators and must not list
tenants. The queue depth is read from the database when scraped (through the due-row index).
"""

from __future__ import annotations

from collections.abc import Iterator

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
from sqlalchemy import func, select

from ticketmate.db import Database

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


class QueueDepth(Collector):
    """Deliveries waiting (pending or in flight), read at scrape time."""

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
        for status in DUE_STATUSES:
            gauge.add_metric([status], float(rows.get(status, 0)))
        yield gauge


router = APIRouter(tags=["operations"])


@router.get("/metrics", include_in_schema=False)
def metrics(request: Request) -> Response:
    """Prometheus text format: the process's counters and the queue depth."""
    state = request.app.state
    if not hasattr(state, "queue_registry"):
        state.queue_registry = CollectorRegistry(auto_describe=False)
        state.queue_registry.register(QueueDepth(state.services.db))
    body = generate_latest(REGISTRY) + generate_latest(state.queue_registry)
    return Response(body, media_type=CONTENT_TYPE_LATEST)
