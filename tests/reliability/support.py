"""What the fault tests share: the service as it is deployed (web app and worker processes),
and the checks each fault ends with, read off the database and the Teams stand-in."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import select

from tests.support.processes import ServeProcess, WorkerProcess
from ticketmate.dev.teams_sink import Received, TeamsSink
from ticketmate.models import DeliveryAttempt, IntegrationDelivery, JiraEventRecord
from ticketmate.state import Services

UNSETTLED = {"pending", "in_flight"}


@dataclass
class Deployment:
    serve: ServeProcess
    workers: list[WorkerProcess]

    @property
    def url(self) -> str:
        return self.serve.url


@contextmanager
def deployment(
    database_url: str, folder: Path, workers: int = 1, **env: str
) -> Iterator[Deployment]:
    """The web app with its workers, as the README says to run them: on SQLite the one worker
    inside `serve`; on PostgreSQL `serve --no-worker` and `workers` worker processes."""
    embedded = database_url.startswith("sqlite")
    with ExitStack() as stack:
        serve = stack.enter_context(ServeProcess(database_url, folder, worker=embedded, **env))
        serve.start()
        count = 0 if embedded else workers
        started = [WorkerProcess(database_url, folder, **env) for _ in range(count)]
        for worker in started:
            stack.enter_context(worker).start()
        yield Deployment(serve, started)


def card_key(record: Received) -> str:
    """The issue key a card is about (its third text block reads "KEY: summary")."""
    text: str = record.json()["attachments"][0]["content"]["body"][2]["text"]
    return text.split(":")[0]


def settle(svc: Services, workspace_id: str, expected: int, timeout: float = 120) -> dict[str, int]:
    """Wait until the workspace has `expected` deliveries and none is still due or in flight;
    the count of each final status."""
    deadline = time.monotonic() + timeout
    while True:
        statuses = Counter(d.status for d in delivery_rows(svc, workspace_id))
        if sum(statuses.values()) >= expected and not UNSETTLED & set(statuses):
            return dict(statuses)
        assert time.monotonic() < deadline, f"not settled after {timeout} s: {dict(statuses)}"
        time.sleep(0.2)


def delivery_rows(svc: Services, workspace_id: str) -> list[IntegrationDelivery]:
    with svc.db.transaction() as session:
        return list(
            session.scalars(
                select(IntegrationDelivery)
                .where(IntegrationDelivery.workspace_id == workspace_id)
                .order_by(IntegrationDelivery.id)
            )
        )


def queued_keys(svc: Services, workspace_id: str) -> dict[str, list[str]]:
    """Each channel's issue keys in the order its deliveries were queued (the order promised)."""
    with svc.db.transaction() as session:
        rows = session.execute(
            select(IntegrationDelivery.channel_name, JiraEventRecord.issue_key)
            .join(JiraEventRecord, JiraEventRecord.id == IntegrationDelivery.event_id)
            .where(IntegrationDelivery.workspace_id == workspace_id)
            .order_by(IntegrationDelivery.id)
        ).all()
    order: dict[str, list[str]] = {}
    for channel, key in rows:
        order.setdefault(channel, []).append(key)
    return order


def first_arrivals(sink: TeamsSink, path: str) -> list[str]:
    """The issue keys in the order their first copy reached `path`."""
    seen: dict[str, None] = {}
    for record in sink.received(path):
        seen.setdefault(card_key(record), None)
    return list(seen)


def duplicates(sink: TeamsSink) -> dict[str, int]:
    """Cards that reached the stand-in more than once: key → extra copies."""
    counts = Counter((r.path, card_key(r)) for r in sink.received())
    return {f"{path} {key}": n - 1 for (path, key), n in counts.items() if n > 1}


def busiest_second(arrivals: list[float]) -> tuple[int, float]:
    """The most requests that arrived within any rolling second, and when that window began."""
    times = sorted(arrivals)
    most, start, low = 0, 0.0, 0
    for high, at in enumerate(times):
        while at - times[low] >= 1.0:
            low += 1
        if high - low + 1 > most:
            most, start = high - low + 1, times[low]
    return most, start


def assert_within_the_limit(
    svc: Services, sink: TeamsSink, path: str, channel: str, limit: int = 4
) -> None:
    """No rolling second with more than `limit` requests to `path` at the stand-in. When there
    is one, the message lists that window's requests beside the attempts the workers recorded
    (which worker, when it started, what it decided), so that the cause can be told."""
    received = sink.received(path)
    most, start = busiest_second([r.at for r in received])
    if most <= limit:
        return
    shift = received[0].wall_time - received[0].at  # the stand-in's clock to the wall clock
    lines = [f"{path}: {most} requests in the second from {start:.3f}"]
    lines += [
        f"  arrived {r.at:.3f} (wall {r.wall_time:.3f}) {card_key(r)} answered {r.answered}"
        for r in received
        if start - 1.5 <= r.at <= start + 2.0
    ]
    with svc.db.transaction() as session:
        attempts = session.execute(
            select(
                DeliveryAttempt.started_at,
                DeliveryAttempt.duration_ms,
                DeliveryAttempt.worker_id,
                DeliveryAttempt.outcome,
                JiraEventRecord.issue_key,
            )
            .join(IntegrationDelivery, IntegrationDelivery.id == DeliveryAttempt.delivery_id)
            .join(JiraEventRecord, JiraEventRecord.id == IntegrationDelivery.event_id)
            .where(IntegrationDelivery.channel_name == channel)
            .order_by(DeliveryAttempt.started_at)
        ).all()
    low, high = start + shift - 1.5, start + shift + 2.0
    lines += [
        f"  attempt {a.started_at.timestamp():.3f}+{a.duration_ms}ms {a.issue_key} "
        f"{a.outcome} by {a.worker_id}"
        for a in attempts
        if low <= a.started_at.timestamp() <= high
    ]
    raise AssertionError("\n".join(lines))
