"""PostgreSQL stopped and started again in the middle of a burst, as an upgrade or a failover
does. While it is down the intake answers 503 (Jira sends again); afterwards the web app, the
worker and the worker's LISTEN connection come back by themselves, and nothing is lost.

This restarts the whole local cluster, so it runs only where the test may do that: the
test database is on a cluster of this machine that `pg_ctlcluster` controls, as root.
TICKETMATE_TEST_NO_PG_RESTART=1 skips it on a machine whose cluster others are using."""

from __future__ import annotations

import os
import shutil
import subprocess
import threading
import time
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from sqlalchemy import text

from tests.reliability.support import deployment, duplicates, first_arrivals, queued_keys, settle
from tests.reliability.test_crashes import channels_with_events, stored_identifiers
from tests.support.factories import MadeWorkspace
from tests.support.jira_client import JiraSender, issue_created_body
from tests.support.teams import make_subscription, make_webhook
from ticketmate.dev.teams_sink import TeamsSink
from ticketmate.state import Services

SETTINGS = {
    "TICKETMATE_DELIVERY_LEASE_SECONDS": "3",
    # Far longer than the test: a card that arrives quickly after the restart was woken by
    # NOTIFY on a LISTEN connection that came back, not found by a poll.
    "TICKETMATE_WORKER_POLL_SECONDS": "120",
}


def local_cluster(svc: Services) -> tuple[str, str]:
    """(version, name) of the local cluster serving the test database, or skip."""
    if svc.db.dialect != "postgresql":
        pytest.skip("PostgreSQL only: the SQLite file has no server to restart")
    if os.environ.get("TICKETMATE_TEST_NO_PG_RESTART"):
        pytest.skip("TICKETMATE_TEST_NO_PG_RESTART is set: the cluster is not ours to restart")
    if shutil.which("pg_lsclusters") is None or os.geteuid() != 0:
        pytest.skip("restarting PostgreSQL needs pg_ctlcluster and root")
    port = urlsplit(svc.settings.database_url).port or 5432
    host = urlsplit(svc.settings.database_url).hostname
    if host not in ("127.0.0.1", "localhost", None, ""):
        pytest.skip(f"the test database is on {host}, not on this machine")
    listed = subprocess.run(
        ["pg_lsclusters", "--no-header"], capture_output=True, text=True, check=True
    ).stdout
    for line in listed.splitlines():
        version, name, cluster_port, status, *_ = line.split()
        if int(cluster_port) == port and status.startswith("online"):
            return version, name
    pytest.skip(f"no local cluster of pg_ctlcluster is online on port {port}")


def pg_ctlcluster(cluster: tuple[str, str], action: str) -> None:
    # stop is in "fast" mode: the server ends every session at once, as a failover does.
    subprocess.run(
        ["pg_ctlcluster", "--skip-systemctl-redirect", *cluster, action],
        check=True,
        capture_output=True,
        timeout=60,
    )


def wait_for_listeners(svc: Services, count: int, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            with svc.db.engine.connect() as conn:
                found = conn.execute(
                    text(
                        "SELECT count(*) FROM pg_stat_activity "
                        "WHERE datname = current_database() AND query LIKE 'LISTEN %%'"
                    )
                ).scalar_one()
            if found >= count:
                return
        except Exception:  # the server is still starting: ask again
            found = 0
        assert time.monotonic() < deadline, f"{found} of {count} LISTEN connections came back"
        time.sleep(0.1)


def test_a_postgresql_restart_mid_burst_loses_nothing(
    svc: Services, workspace: MadeWorkspace, sink: TeamsSink, database_url: str, tmp_path: Path
) -> None:
    cluster = local_cluster(svc)
    channels = 4
    bodies = channels_with_events(svc, workspace, sink, channels, per_channel=40)
    probe = make_webhook(svc, workspace.id, "probe", sink.url("/workflows/probe"))
    make_subscription(svc, workspace.id, probe, "issue_created", projects=["PROBE"])
    with deployment(database_url, tmp_path, **SETTINGS) as running:
        wait_for_listeners(svc, 1)
        # Jira retries for longer than the database is away.
        sender = JiraSender(lambda: running.url, workspace, attempts=12, backoff_seconds=0.5)
        burst = sender.deliveries(bodies)
        jira = threading.Thread(target=sender.send, args=(burst, 8), daemon=True)
        jira.start()
        deadline = time.monotonic() + 60
        while sum(stored_identifiers(svc, workspace.id).values()) < len(bodies) // 4:
            assert time.monotonic() < deadline, "the burst did not start"
            time.sleep(0.02)
        svc.db.engine.dispose()  # the test's own connections would only go stale
        pg_ctlcluster(cluster, "stop")
        try:
            time.sleep(2)  # down long enough for Jira's requests to meet it
        finally:
            pg_ctlcluster(cluster, "start")
        jira.join(timeout=120)
        assert not jira.is_alive()
        assert [d.answers for d in burst if not d.acknowledged] == []
        answered = {a for d in burst for a in d.answers}
        assert 503 in answered, answered  # told Jira to try again while it was down
        assert answered <= {202, 503}, answered  # and never a 500 or a dropped request

        wait_for_listeners(svc, 1)
        assert running.workers[0].process is not None
        assert running.workers[0].process.poll() is None  # the worker rode it out
        woken = time.monotonic()
        probe_delivery = sender.send(
            sender.deliveries([issue_created_body("PROBE-1", project="PROBE")])
        )
        assert probe_delivery[0].acknowledged
        sink.wait_for(1, path="/workflows/probe", timeout=10)
        assert time.monotonic() - woken < 10  # NOTIFY, not the 120 s poll
        outcome = settle(svc, workspace.id, len(bodies) + 1, timeout=60)
    assert outcome == {"delivered": len(bodies) + 1}
    stored = stored_identifiers(svc, workspace.id)
    assert stored == {d.identifier: 1 for d in [*burst, *probe_delivery]}
    order = queued_keys(svc, workspace.id)
    for c in range(channels):
        assert first_arrivals(sink, f"/workflows/ch{c}") == order[f"ch{c}"]
    print(f"cards sent twice across the restart: {sum(duplicates(sink).values())}")
