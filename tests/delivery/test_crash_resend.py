"""A worker process killed between its sends and the commit of their outcomes: exactly those
cards go again, once the lease has run out in real time (at-least-once)."""

from __future__ import annotations

import signal
import subprocess
import time
from collections import Counter
from pathlib import Path

from sqlalchemy import func, select

from tests.delivery.refusal import refuse_delivered
from tests.support.factories import MadeWorkspace
from tests.support.processes import TICKETMATE, cli_env
from tests.support.teams import (
    deliveries,
    drain,
    event,
    make_subscription,
    make_webhook,
    store_and_route,
)
from ticketmate.dev.teams_sink import TeamsSink
from ticketmate.models import DeliveryAttempt
from ticketmate.state import Services

SHORT = {"TICKETMATE_DELIVERY_LEASE_SECONDS": "4", "TICKETMATE_WORKER_POLL_SECONDS": "0.2"}


def start_worker(database_url: str, tmp_path: Path) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [TICKETMATE, "worker"],
        env=cli_env(database_url, **SHORT),
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def keys(sink: TeamsSink) -> list[str]:
    return [
        r.json()["attachments"][0]["content"]["body"][2]["text"].split(":")[0]
        for r in sink.received()
    ]


def test_a_worker_killed_before_its_batch_commits_has_exactly_those_cards_sent_again(
    svc: Services, workspace: MadeWorkspace, sink: TeamsSink, database_url: str, tmp_path: Path
) -> None:
    eng = make_webhook(svc, workspace.id, "eng", sink.url("/workflows/eng"))
    make_subscription(svc, workspace.id, eng, "issue_created", projects=["DEMO"])
    ops = make_webhook(svc, workspace.id, "ops", sink.url("/workflows/ops"))
    make_subscription(svc, workspace.id, ops, "issue_created", projects=["OPS"])
    store_and_route(svc, workspace.id, event(["issue_created"], key="OPS-1", project="OPS"))
    assert drain(svc).delivered == 1  # sent and recorded: it must not go again
    with refuse_delivered(svc):
        # Each of these is sent, but the batch that records it cannot commit.
        for n in range(3):
            store_and_route(
                svc, workspace.id, event(["issue_created"], key=f"DEMO-{n}", project="DEMO")
            )
        worker = start_worker(database_url, tmp_path)
        try:
            sink.wait_for(4, timeout=30)
        finally:
            worker.send_signal(signal.SIGKILL)
            worker.communicate(timeout=10)
    assert {d.status for d in deliveries(svc, workspace.id)} == {"delivered", "in_flight"}
    sent_before_the_crash = Counter(keys(sink))
    assert sent_before_the_crash == {"OPS-1": 1, "DEMO-0": 1, "DEMO-1": 1, "DEMO-2": 1}
    # The next worker finds nothing due until the 4-second lease is over, then resends.
    worker = start_worker(database_url, tmp_path)
    try:
        sink.wait_for(7, timeout=60)
        deadline = time.monotonic() + 30
        while {d.status for d in deliveries(svc, workspace.id)} != {"delivered"}:
            assert time.monotonic() < deadline, [d.status for d in deliveries(svc, workspace.id)]
            time.sleep(0.05)
    finally:
        worker.terminate()
        worker.communicate(timeout=20)
    sent = Counter(keys(sink))
    duplicates = {key: count - 1 for key, count in sent.items() if count > 1}
    assert duplicates == {"DEMO-0": 1, "DEMO-1": 1, "DEMO-2": 1}  # those, and only those
    assert keys(sink)[4:] == ["DEMO-0", "DEMO-1", "DEMO-2"]  # in order, the second time too
    with svc.db.transaction() as session:
        attempts = session.scalar(select(func.count()).select_from(DeliveryAttempt))
    assert attempts == 4  # the lost batch's attempts were never recorded
