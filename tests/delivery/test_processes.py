"""Workers as real processes: killed mid-delivery, stopped with SIGTERM, two at once."""

from __future__ import annotations

import signal
import subprocess
import time
from collections import Counter
from pathlib import Path

import pytest

from tests.support.factories import MadeWorkspace
from tests.support.processes import TICKETMATE, cli_env
from tests.support.teams import (
    deliveries,
    event,
    make_subscription,
    make_webhook,
    store_and_route,
)
from ticketmate.dev.teams_sink import Answer, TeamsSink
from ticketmate.state import Services


def start_worker(
    database_url: str, tmp_path: Path, *args: str, **env: str
) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [TICKETMATE, "worker", *args],
        env=cli_env(database_url, **env),
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def listening(svc: Services, workers: int) -> None:
    """Wait until `workers` worker processes hold their LISTEN connection (they are running)."""
    deadline = time.monotonic() + 30
    while True:
        with svc.db.engine.connect() as conn:
            found = conn.exec_driver_sql(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                "AND query LIKE 'LISTEN %%'"
            ).scalar_one()
        if found >= workers:
            return
        assert time.monotonic() < deadline, f"{found} of {workers} workers are listening"
        time.sleep(0.05)


def test_killed_worker_loses_nothing(
    svc: Services, workspace: MadeWorkspace, sink: TeamsSink, database_url: str, tmp_path: Path
) -> None:
    """A worker killed while its first request hangs: another worker sends every card, the
    ones held in flight again only once their lease has run out on the wall clock."""
    # A short lease, so the resend waits for it to run out in real time.
    short = {
        "TICKETMATE_DELIVERY_LEASE_SECONDS": "4",
        "TICKETMATE_WORKER_POLL_SECONDS": "0.2",
    }
    keys = [f"DEMO-{n}" for n in range(3)]
    hook = make_webhook(svc, workspace.id, "eng", sink.url("/workflows/eng"))
    make_subscription(svc, workspace.id, hook, "issue_created")
    sink.script("/workflows/eng", Answer(202, "", delay_seconds=30))  # the first one hangs
    for key in keys:
        store_and_route(svc, workspace.id, event(["issue_created"], key=key))
    worker = start_worker(database_url, tmp_path, **short)
    try:
        sink.wait_for(1, timeout=30)
        held = deliveries(svc, workspace.id)
    finally:
        worker.send_signal(signal.SIGKILL)
        worker.communicate(timeout=10)
    assert [d.status for d in held] == ["in_flight"] * 3  # all taken, one sent, none recorded
    lease_ends = max(d.locked_until.timestamp() for d in held if d.locked_until is not None)
    # The next worker finds nothing due until the lease is over, then takes everything.
    worker = start_worker(database_url, tmp_path, **short)
    try:
        sink.wait_for(1 + len(keys), timeout=60)
        deadline = time.monotonic() + 30
        while {d.status for d in deliveries(svc, workspace.id)} != {"delivered"}:
            assert time.monotonic() < deadline, [d.status for d in deliveries(svc, workspace.id)]
            time.sleep(0.05)
    finally:
        worker.terminate()
        worker.communicate(timeout=20)
    received = sink.received("/workflows/eng")
    arrived = [
        r.json()["attachments"][0]["content"]["body"][2]["text"].split(":")[0] for r in received
    ]
    assert arrived[0] == "DEMO-0"  # the request the killed worker was waiting on
    assert arrived[1:] == keys  # every card, in order, from the second worker
    sent = Counter(arrived)
    assert {key: count - 1 for key, count in sent.items() if count > 1} == {"DEMO-0": 1}
    resent = received[1:]
    assert all(r.wall_time > lease_ends for r in resent), (
        lease_ends,
        [r.wall_time for r in resent],
    )
    assert [d.status for d in deliveries(svc, workspace.id)] == ["delivered"] * 3


def test_sigterm_finishes_the_request_in_flight_and_exits_0(
    svc: Services, workspace: MadeWorkspace, sink: TeamsSink, database_url: str, tmp_path: Path
) -> None:
    hook = make_webhook(svc, workspace.id, "eng", sink.url("/workflows/eng"))
    make_subscription(svc, workspace.id, hook, "issue_created")
    sink.script("/workflows/eng", Answer(202, "", delay_seconds=1.0))
    for n in range(3):
        store_and_route(svc, workspace.id, event(["issue_created"], key=f"DEMO-{n}"))
    worker = start_worker(database_url, tmp_path)
    try:
        sink.wait_for(1, timeout=20)
        worker.send_signal(signal.SIGTERM)
        output, _ = worker.communicate(timeout=15)
    finally:
        if worker.poll() is None:
            worker.kill()
            worker.communicate(timeout=10)
    assert worker.returncode == 0, output
    statuses = [d.status for d in deliveries(svc, workspace.id)]
    assert statuses[0] == "delivered"  # finished, not abandoned
    assert set(statuses[1:]) <= {"pending", "delivered"}  # handed back, not left in flight
    assert "in_flight" not in statuses


@pytest.mark.slow
def test_two_workers_drain_2000_deliveries_sending_each_once(
    svc: Services, workspace: MadeWorkspace, sink: TeamsSink, database_url: str, tmp_path: Path
) -> None:
    if svc.db.dialect != "postgresql":
        pytest.skip("several workers run against PostgreSQL; SQLite runs one, inside serve")
    channels = 20
    for c in range(channels):
        hook = make_webhook(svc, workspace.id, f"ch{c}", sink.url(f"/workflows/ch{c}"))
        make_subscription(svc, workspace.id, hook, "issue_created", projects=[f"P{c}"])
    for n in range(2000):
        c = n % channels
        store_and_route(
            svc, workspace.id, event(["issue_created"], key=f"P{c}-{n}", project=f"P{c}")
        )
    env = {"TICKETMATE_CHANNEL_RATE_PER_SECOND": "1000"}
    workers = [
        start_worker(database_url, tmp_path, "--once", "--concurrency", "8", **env)
        for _ in range(2)
    ]
    outputs = [w.communicate(timeout=240)[0] for w in workers]
    assert [w.returncode for w in workers] == [0, 0], outputs
    received = sink.received()
    keys = [
        r.json()["attachments"][0]["content"]["body"][2]["text"].split(":")[0] for r in received
    ]
    assert len(keys) == 2000
    assert len(set(keys)) == 2000  # no delivery sent twice
    assert {d.status for d in deliveries(svc, workspace.id)} == {"delivered"}
    sent_by = [o for o in outputs if " 0 sent" not in o]
    assert len(sent_by) == 2, outputs  # both workers took part


def test_a_standalone_worker_serves_its_metrics(
    svc: Services, workspace: MadeWorkspace, sink: TeamsSink, database_url: str, tmp_path: Path
) -> None:
    import time

    import httpx2

    from tests.conftest import free_port

    hook = make_webhook(svc, workspace.id, "eng", sink.url("/workflows/eng"))
    make_subscription(svc, workspace.id, hook, "issue_created")
    store_and_route(svc, workspace.id, event(["issue_created"]))
    port = free_port()
    worker = start_worker(
        database_url,
        tmp_path,
        "--metrics-port",
        str(port),
        TICKETMATE_METRICS_TOKEN="worker-scrape-token",
    )
    token = {"Authorization": "Bearer worker-scrape-token"}
    try:
        sink.wait_for(1, timeout=20)
        text = ""
        for _ in range(50):
            try:
                text = httpx2.get(f"http://127.0.0.1:{port}/metrics", headers=token).text
            except httpx2.TransportError:
                time.sleep(0.1)
                continue
            if 'ticketmate_delivery_attempts_total{outcome="delivered"} 1.0' in text:
                break
            time.sleep(0.1)
        assert 'ticketmate_delivery_attempts_total{outcome="delivered"} 1.0' in text
        # The queue's gauges come from the database, as on the web app.
        assert 'ticketmate_delivery_queue_depth{status="pending"}' in text
        assert "ticketmate_delivery_oldest_due_seconds" in text
        for wrong in ({}, {"Authorization": "Bearer worker-scrape-tokem"}):
            refused = httpx2.get(f"http://127.0.0.1:{port}/metrics", headers=wrong)
            assert refused.status_code == 401
            assert refused.headers["www-authenticate"] == "Bearer"
            assert refused.json()["error"]["code"] == "unauthorized"
    finally:
        worker.terminate()
        worker.communicate(timeout=20)


def test_a_lane_handed_between_worker_processes_mid_burst_keeps_order_and_the_rate(
    svc: Services, workspace: MadeWorkspace, sink: TeamsSink, database_url: str, tmp_path: Path
) -> None:
    """Worker A sends part of a burst to one channel and is stopped (SIGTERM); worker B, a
    separate process already running, takes the lane over. At the receiver: every card once,
    in the order queued, and no rolling second with more than four."""
    if svc.db.dialect != "postgresql":
        pytest.skip("several workers run against PostgreSQL; SQLite runs one, inside serve")
    hook = make_webhook(svc, workspace.id, "eng", sink.url("/workflows/eng"))
    make_subscription(svc, workspace.id, hook, "issue_created")
    keys = [f"DEMO-{n}" for n in range(40)]
    for key in keys:
        store_and_route(svc, workspace.id, event(["issue_created"], key=key))
    env = {"TICKETMATE_WORKER_POLL_SECONDS": "0.1"}
    first = start_worker(database_url, tmp_path, **env)
    second: subprocess.Popen[str] | None = None
    try:
        sink.wait_for(1, timeout=30)
        second = start_worker(database_url, tmp_path, **env)  # waits: the lane is held
        listening(svc, 2)  # both processes are up and polling
        # Stopped right after a card arrived: the next holder must keep to the rate that the
        # last four answers set, which it learns only from the released lane.
        sink.wait_for(len(sink.received()) + 1, timeout=30)
        first.send_signal(signal.SIGTERM)
        first_output, _ = first.communicate(timeout=20)
        sink.wait_for(len(keys), timeout=60)
        second.send_signal(signal.SIGTERM)
        second_output, _ = second.communicate(timeout=20)
    finally:
        for worker in (first, second):
            if worker is not None and worker.poll() is None:
                worker.kill()
                worker.communicate(timeout=10)
    assert second is not None
    assert (first.returncode, second.returncode) == (0, 0), (first_output, second_output)
    assert " 0 sent" not in first_output
    assert " 0 sent" not in second_output, second_output  # the second took over
    received = sink.received("/workflows/eng")
    arrived = [
        r.json()["attachments"][0]["content"]["body"][2]["text"].split(":")[0] for r in received
    ]
    assert arrived == keys  # each once, in order, across the handover
    times = [r.at for r in received]
    spans = [later - earlier for earlier, later in zip(times, times[4:], strict=False)]
    assert min(spans) >= 1.0, spans
    assert {d.status for d in deliveries(svc, workspace.id)} == {"delivered"}
