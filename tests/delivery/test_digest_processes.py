"""Digests with worker processes on PostgreSQL: the schedule lives in the database, so a
digest due while no worker ran goes out once when one starts again, and two workers looking
at the same moment make each digest once."""

from __future__ import annotations

import json
import time
from collections import Counter
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import select, update

from tests.support.factories import MadeWorkspace
from tests.support.processes import WorkerProcess
from tests.support.teams import (
    deliveries,
    event,
    make_subscription,
    make_webhook,
    store_and_route,
)
from ticketmate.dev.teams_sink import TeamsSink
from ticketmate.models import TeamsSubscription
from ticketmate.state import Services
from ticketmate.timeutil import utcnow

FAST = {"TICKETMATE_WORKER_POLL_SECONDS": "0.1"}


@pytest.fixture(autouse=True)
def _postgres_only(svc: Services) -> None:
    if svc.db.dialect != "postgresql":
        pytest.skip("several workers run against PostgreSQL; SQLite runs one, inside serve")


def digest_channels(
    svc: Services, workspace: MadeWorkspace, sink: TeamsSink, channels: int, per_channel: int
) -> list[str]:
    """`channels` hourly digest subscriptions, each with `per_channel` events held."""
    made = []
    for c in range(channels):
        hook = make_webhook(svc, workspace.id, f"d{c}", sink.url(f"/workflows/d{c}"))
        made.append(
            make_subscription(
                svc, workspace.id, hook, "issue_created", digest="hourly", projects=[f"P{c}"]
            )
        )
        for n in range(per_channel):
            envelope = event(["issue_created"], key=f"P{c}-{n}", project=f"P{c}")
            store_and_route(svc, workspace.id, envelope)
    return made


def make_due(svc: Services) -> None:
    """The hour has come (as the wall clock would bring it)."""
    with svc.db.transaction() as session:
        session.execute(
            update(TeamsSubscription).values(next_digest_at=utcnow() - timedelta(seconds=1))
        )


def schedules(svc: Services) -> list[object]:
    with svc.db.transaction() as session:
        return list(session.scalars(select(TeamsSubscription.next_digest_at)))


def settled(svc: Services, workspace: MadeWorkspace, timeout: float = 60) -> Counter[str]:
    deadline = time.monotonic() + timeout
    while True:
        statuses = Counter(d.status for d in deliveries(svc, workspace.id))
        if set(statuses) <= {"delivered", "folded"}:
            return statuses
        assert time.monotonic() < deadline, statuses
        time.sleep(0.1)


def test_two_workers_make_each_digest_once(
    svc: Services, workspace: MadeWorkspace, sink: TeamsSink, database_url: str, tmp_path: Path
) -> None:
    channels, per_channel = 12, 5
    digest_channels(svc, workspace, sink, channels, per_channel)
    with (
        WorkerProcess(database_url, tmp_path, **FAST).start(),
        WorkerProcess(database_url, tmp_path, **FAST).start(),
    ):
        time.sleep(1.0)  # both are up and looking
        assert sink.received() == []
        make_due(svc)
        statuses = settled(svc, workspace)
        time.sleep(1.0)  # a second digest, were one made, would have gone by now
    assert statuses == {"delivered": channels, "folded": channels * (per_channel - 1)}
    per_path = Counter(r.path for r in sink.received())
    assert per_path == {f"/workflows/d{c}": 1 for c in range(channels)}
    for received in sink.received():
        assert f"{per_channel} updates" in json.dumps(received.json())
    later = utcnow() + timedelta(minutes=1)
    assert all(s is not None and s > later for s in schedules(svc))  # each moved on


def test_a_digest_due_while_no_worker_ran_goes_once_when_one_starts(
    svc: Services, workspace: MadeWorkspace, sink: TeamsSink, database_url: str, tmp_path: Path
) -> None:
    digest_channels(svc, workspace, sink, 2, 3)
    with WorkerProcess(database_url, tmp_path, **FAST).start():
        time.sleep(0.5)
    assert sink.received() == []  # stopped before its time
    make_due(svc)  # the hour came while nothing ran
    with WorkerProcess(database_url, tmp_path, **FAST).start():
        statuses = settled(svc, workspace)
    assert statuses == {"delivered": 2, "folded": 4}
    with WorkerProcess(database_url, tmp_path, **FAST).start():
        time.sleep(1.0)  # started again: nothing more to send
    assert Counter(r.path for r in sink.received()) == {"/workflows/d0": 1, "/workflows/d1": 1}
