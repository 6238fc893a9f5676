"""Scaled out as the README describes: two web processes sharing Jira's requests (as behind any
load balancer) and three workers, on one PostgreSQL. Per channel, cards still go in the
order their events were queued and never faster than 4 in a rolling second, whichever worker
holds the channel; and with no crash, no card is sent twice."""

from __future__ import annotations

import itertools
from contextlib import ExitStack
from pathlib import Path

import pytest
from sqlalchemy import select

from tests.reliability.conftest import size
from tests.reliability.support import (
    assert_within_the_limit,
    duplicates,
    first_arrivals,
    queued_keys,
    settle,
)
from tests.reliability.test_crashes import channels_with_events, stored_identifiers
from tests.support.factories import MadeWorkspace
from tests.support.jira_client import JiraSender
from tests.support.processes import ServeProcess, WorkerProcess
from ticketmate.dev.teams_sink import Answer, TeamsSink
from ticketmate.models import DeliveryAttempt
from ticketmate.state import Services


def test_two_web_processes_and_three_workers_keep_order_rate_and_once(
    svc: Services, workspace: MadeWorkspace, sink: TeamsSink, database_url: str, tmp_path: Path
) -> None:
    if svc.db.dialect != "postgresql":
        pytest.skip("several workers run against PostgreSQL; SQLite runs one, inside serve")
    channels, per_channel = size(12, 40), size(20, 60)
    bodies = channels_with_events(svc, workspace, sink, channels, per_channel)
    for c in range(channels):
        # Teams taking its time: each channel keeps a request slot busy, so the channels
        # spread over the workers instead of resting on one (a resting lane holds no slot).
        sink.set_default(f"/workflows/ch{c}", Answer(202, "", delay_seconds=0.15))
    with ExitStack() as stack:
        webs = [stack.enter_context(ServeProcess(database_url, tmp_path)) for _ in range(2)]
        for web in webs:
            web.start()
        for _ in range(3):
            # Few request slots each, so the channels are spread over all three workers.
            worker = WorkerProcess(database_url, tmp_path, "--concurrency", "4")
            stack.enter_context(worker).start()
        # Round robin, request by request, as a load balancer in front of the two would do.
        balancer = itertools.cycle([web.url for web in webs])
        sender = JiraSender(lambda: next(balancer), workspace)
        sent = sender.send(sender.deliveries(bodies), concurrency=2)
        assert all(d.acknowledged for d in sent)
        outcome = settle(svc, workspace.id, len(bodies), timeout=size(60, 600))
    assert outcome == {"delivered": len(bodies)}
    assert stored_identifiers(svc, workspace.id) == {d.identifier: 1 for d in sent}
    assert duplicates(sink) == {}
    order = queued_keys(svc, workspace.id)
    for c in range(channels):
        path = f"/workflows/ch{c}"
        assert first_arrivals(sink, path) == order[f"ch{c}"]
        assert_within_the_limit(svc, sink, path, f"ch{c}")
    with svc.db.transaction() as session:
        workers = set(session.scalars(select(DeliveryAttempt.worker_id)))
    # The channels were spread: more than one worker sent. (Which of the three get a share
    # depends on who claims first; on a loaded machine one may find nothing left.)
    assert len(workers) >= 2, workers
