"""Processes killed (SIGKILL: no shutdown of any kind) in the middle of a burst, while Jira
keeps sending. Nothing Jira was told is stored may be lost or stored twice, and every card
reaches its channel, in order, within Teams' limit; cards in flight at a kill may arrive
twice (at least once), and the tests report how many did."""

from __future__ import annotations

import itertools
import threading
import time
from collections import Counter
from pathlib import Path

from sqlalchemy import select

from tests.reliability.conftest import size
from tests.reliability.support import (
    assert_within_the_limit,
    card_key,
    deployment,
    duplicates,
    first_arrivals,
    queued_keys,
    settle,
)
from tests.support.factories import MadeWorkspace
from tests.support.jira_client import JiraDelivery, JiraSender, issue_created_body
from tests.support.processes import ServeProcess, WorkerProcess
from tests.support.teams import make_subscription, make_webhook
from ticketmate.dev.teams_sink import TeamsSink
from ticketmate.models import JiraEventRecord
from ticketmate.state import Services

LEASE = {"TICKETMATE_DELIVERY_LEASE_SECONDS": "3", "TICKETMATE_WORKER_POLL_SECONDS": "0.5"}


def channels_with_events(
    svc: Services, workspace: MadeWorkspace, sink: TeamsSink, channels: int, per_channel: int
) -> list[bytes]:
    """`channels` webhooks, each subscribed to its own project, and the bodies of
    `per_channel` new issues in each, interleaved as a burst across projects would be."""
    for c in range(channels):
        hook = make_webhook(svc, workspace.id, f"ch{c}", sink.url(f"/workflows/ch{c}"))
        make_subscription(svc, workspace.id, hook, "issue_created", projects=[f"P{c}"])
    return [
        issue_created_body(f"P{c}-{n}", project=f"P{c}")
        for n in range(per_channel)
        for c in range(channels)
    ]


def sending(sender: JiraSender, deliveries: list[JiraDelivery]) -> threading.Thread:
    thread = threading.Thread(target=sender.send, args=(deliveries, 8), daemon=True)
    thread.start()
    return thread


def stored_identifiers(svc: Services, workspace_id: str) -> Counter[str | None]:
    with svc.db.transaction() as session:
        return Counter(
            session.scalars(
                select(JiraEventRecord.jira_event_id).where(
                    JiraEventRecord.workspace_id == workspace_id
                )
            )
        )


def assert_every_card_arrived_in_order_within_the_limit(
    svc: Services, workspace: MadeWorkspace, sink: TeamsSink, channels: int
) -> None:
    order = queued_keys(svc, workspace.id)
    for c in range(channels):
        path = f"/workflows/ch{c}"
        assert first_arrivals(sink, path) == order[f"ch{c}"], path
        assert_within_the_limit(svc, sink, path, f"ch{c}")


# A request the killed process wrote just before the signal can still reach the stand-in a
# moment after it: the kill's moment is the span from the signal to the reaped process, and
# this much more.
IN_TRANSIT_SECONDS = 0.25


def assert_copies_only_across(sink: TeamsSink, kills: list[tuple[float, float]]) -> None:
    """A card goes twice only when a kill fell between its copies (at least once, never
    twice by design). `kills` are (signal sent, process reaped) on the stand-in's clock."""
    copies: dict[tuple[str, str], list[float]] = {}
    for record in sink.received():
        copies.setdefault((record.path, card_key(record)), []).append(record.at)
    for card, times in copies.items():
        for before, after in itertools.pairwise(times):
            assert any(
                before < reaped + IN_TRANSIT_SECONDS and signalled < after
                for signalled, reaped in kills
            ), f"{card} sent twice: {times}"


def test_a_worker_killed_three_times_mid_burst_loses_no_card(
    svc: Services, workspace: MadeWorkspace, sink: TeamsSink, database_url: str, tmp_path: Path
) -> None:
    channels, per_channel = size(8, 20), size(25, 100)
    bodies = channels_with_events(svc, workspace, sink, channels, per_channel)
    with ServeProcess(database_url, tmp_path).start() as serve:
        sender = JiraSender(lambda: serve.url, workspace)
        burst = sender.deliveries(bodies)
        jira = sending(sender, burst)
        worker = WorkerProcess(database_url, tmp_path, **LEASE).start()
        kills: list[tuple[float, float]] = []
        try:
            for share in (0.1, 0.35, 0.6):
                sink.wait_for(int(len(bodies) * share), timeout=120)
                signalled = time.monotonic()  # the stand-in's clock: it runs in this process
                worker.kill()
                kills.append((signalled, time.monotonic()))
                worker = WorkerProcess(database_url, tmp_path, **LEASE).start()
            jira.join(timeout=120)
            assert all(d.acknowledged for d in burst)
            outcome = settle(svc, workspace.id, len(bodies), timeout=size(60, 600))
        finally:
            worker.stop()
    assert outcome == {"delivered": len(bodies)}
    assert_every_card_arrived_in_order_within_the_limit(svc, workspace, sink, channels)
    extra = duplicates(sink)
    print(f"cards sent twice after 3 worker kills: {sum(extra.values())} of {len(bodies)}")
    assert_copies_only_across(sink, kills)


def test_the_web_app_killed_mid_burst_stores_each_acknowledged_event_exactly_once(
    svc: Services, workspace: MadeWorkspace, sink: TeamsSink, database_url: str, tmp_path: Path
) -> None:
    channels, per_channel = size(4, 20), size(50, 100)
    bodies = channels_with_events(svc, workspace, sink, channels, per_channel)
    with deployment(database_url, tmp_path, **LEASE) as running:
        # Jira retries for long enough to outlast a restart of the web app, and sends at a
        # pace that makes the burst last a few seconds: however fast the intake, the kill
        # lands inside it.
        sender = JiraSender(
            lambda: running.url,
            workspace,
            attempts=10,
            backoff_seconds=0.5,
            per_second=len(bodies) / 3,
        )
        burst = sender.deliveries(bodies)
        jira = sending(sender, burst)
        deadline = time.monotonic() + 60
        while sum(stored_identifiers(svc, workspace.id).values()) < len(bodies) // 3:
            assert time.monotonic() < deadline, "the burst did not start"
            time.sleep(0.02)
        signalled = time.monotonic()
        running.serve.kill()
        kills = [(signalled, time.monotonic())]
        time.sleep(0.5)  # Jira meets a closed port for a while
        running.serve.start()
        jira.join(timeout=180)
        assert not jira.is_alive()
        refused = [d.answers for d in burst if not d.acknowledged]
        assert refused == []  # every delivery got its 2xx in the end
        outcome = settle(svc, workspace.id, len(bodies), timeout=size(60, 600))
    stored = stored_identifiers(svc, workspace.id)
    assert stored == {d.identifier: 1 for d in burst}  # each exactly once, none lost
    retried = [d for d in burst if len(d.answers) > 1]
    print(f"deliveries Jira had to retry across the restart: {len(retried)} of {len(bodies)}")
    assert retried, "the kill came after the burst: nothing was tested"
    assert outcome == {"delivered": len(bodies)}
    assert_every_card_arrived_in_order_within_the_limit(svc, workspace, sink, channels)
    print(f"cards sent twice: {sum(duplicates(sink).values())} of {len(bodies)}")
    # A worker apart from the web app (PostgreSQL) is not touched by its crash: no card twice.
    # The worker inside `serve` (SQLite) dies with it: what it had in flight may go twice.
    assert_copies_only_across(sink, kills if database_url.startswith("sqlite") else [])
