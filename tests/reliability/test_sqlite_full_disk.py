"""The disk under the SQLite database fills up while `ticketmate serve` takes Jira events: every
event it cannot store is answered 503 with the error shape (Jira sends it again), nothing is
half stored, the process stays up, and once space is free again the next events are stored and
delivered without anyone restarting anything.

The database lives on a small tmpfs of its own, filled with a filler file until the kernel
answers ENOSPC. In WAL mode SQLite appends commits to the -wal file, which keeps its size after
a checkpoint and is then overwritten in place: a WAL with room left would take the commits
without needing a byte of new space. So the WAL is truncated to nothing just before the fill;
every commit afterwards has to grow it, and fails. Space then comes back a page at a time, so
that some commit meets the very edge of the disk: it must fit whole or be refused whole.
"""

from __future__ import annotations

import errno
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx2
import pytest

from tests.conftest import make_settings
from tests.support.factories import MadeWorkspace, make_workspace
from tests.support.jira_client import JiraDelivery, JiraSender, issue_created_body
from tests.support.processes import ServeProcess, WorkerProcess
from tests.support.teams import deliveries, make_subscription, make_webhook
from ticketmate.db import Database
from ticketmate.dev.teams_sink import TeamsSink
from ticketmate.jira.signature import body_signature
from ticketmate.migrate import upgrade
from ticketmate.security.crypto import Keyring
from ticketmate.state import Services

FILESYSTEM_SIZE = "16m"
PAGE = 4096  # tmpfs hands out space a memory page at a time
EDGE_STEPS = 200  # pages given back at most, one by one, before one event must fit
DISK_FULL = "database or disk is full"  # SQLITE_FULL, what SQLite makes of ENOSPC


@contextmanager
def small_filesystem(folder: Path) -> Iterator[Path]:
    if not hasattr(os, "geteuid") or os.geteuid() != 0:
        pytest.skip("mounting a small tmpfs to fill needs root; the full-disk test did not run")
    if shutil.which("mount") is None:
        pytest.skip("no mount command; the full-disk test did not run")
    folder.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={FILESYSTEM_SIZE},mode=0700", "tmpfs", str(folder)],
        capture_output=True,
        text=True,
        check=False,
    )
    if mounted.returncode != 0:
        reason = " ".join(mounted.stderr.split())
        pytest.skip(f"cannot mount a tmpfs here ({reason}); the full-disk test did not run")
    try:
        yield folder
    finally:
        if subprocess.run(["umount", str(folder)], check=False).returncode != 0:
            # Something still holds a file open there: detach it, so the test folder goes.
            subprocess.run(["umount", "--lazy", str(folder)], check=False)


def fill(filler: Path) -> int:
    """Write `filler` until the filesystem has not a page left; the bytes written."""
    written = 0
    chunk = 1 << 20
    descriptor = os.open(filler, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        while chunk:
            try:
                written += os.write(descriptor, b"\0" * chunk)
            except OSError as problem:
                if problem.errno != errno.ENOSPC:
                    raise
                chunk //= 2
    finally:
        os.close(descriptor)
    return written


def free_a_page(filler: Path) -> None:
    os.truncate(filler, max(filler.stat().st_size - PAGE, 0))


def assert_no_room(folder: Path) -> None:
    probe = folder / "probe"
    # The file opens (tmpfs has inodes to spare); its first page does not fit.
    with (
        pytest.raises(OSError, match="No space left") as refused,
        probe.open("wb", buffering=0) as output,
    ):
        output.write(b"x" * PAGE)
    assert refused.value.errno == errno.ENOSPC
    probe.unlink(missing_ok=True)


def post(base_url: str, workspace: MadeWorkspace, delivery: JiraDelivery) -> httpx2.Response:
    """One try of a delivery, as JiraSender sends it, keeping the whole answer."""
    headers = {
        "Content-Type": "application/json; charset=utf-8",
        "X-Hub-Signature": body_signature(workspace.jira.secret, delivery.body),
        "X-Atlassian-Webhook-Identifier": delivery.identifier,
        "User-Agent": "Atlassian Webhook HTTP Client",
    }
    with httpx2.Client(base_url=base_url, timeout=30) as client:
        return client.post(
            "/api/webhooks/jira",
            params={"workspace": workspace.slug},
            content=delivery.body,
            headers=headers,
        )


@contextmanager
def reading(svc: Services) -> Iterator[Any]:
    """A plain driver connection in autocommit: it reads without the write lock that the
    engine's BEGIN IMMEDIATE takes, and can checkpoint (no transaction open)."""
    connection = svc.db.engine.raw_connection()
    try:
        yield connection.driver_connection
    finally:
        connection.close()


def stored_identifiers(svc: Services) -> list[str]:
    with reading(svc) as conn:
        rows = conn.execute("SELECT jira_event_id FROM jira_events ORDER BY jira_event_id")
        return [str(row[0]) for row in rows]


def assert_nothing_half_written(svc: Services) -> None:
    with reading(svc) as conn:
        # The one subscription matches every event sent: each stored event has its delivery.
        without_delivery = conn.execute(
            "SELECT e.jira_event_id FROM jira_events e "
            "LEFT JOIN integration_delivery_log d ON d.event_id = e.id "
            "GROUP BY e.id HAVING count(d.id) != 1"
        ).fetchall()
        orphans = conn.execute(
            "SELECT d.id FROM integration_delivery_log d "
            "LEFT JOIN jira_events e ON e.id = d.event_id WHERE e.id IS NULL"
        ).fetchall()
        integrity = [row[0] for row in conn.execute("PRAGMA integrity_check")]
        foreign_keys = conn.execute("PRAGMA foreign_key_check").fetchall()
    assert without_delivery == []
    assert orphans == []
    assert integrity == ["ok"]
    assert foreign_keys == []


def truncate_wal(svc: Services) -> None:
    """Checkpoint everything into the database file and cut the -wal file to zero bytes."""
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        with reading(svc) as conn:
            busy, _frames, _done = conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
        if busy == 0:
            return
        time.sleep(0.05)  # a reader of the service held an old snapshot; it lets go soon
    raise AssertionError("the WAL could not be checkpointed")


def test_a_full_disk_answers_503_stores_nothing_half_and_recovers_when_space_is_freed(
    tmp_path: Path,
) -> None:
    with small_filesystem(tmp_path / "small") as folder:
        database = folder / "ticketmate.db"
        database_url = f"sqlite:///{database}"
        upgrade(database_url)
        settings = make_settings(database_url, tmp_path)
        svc = Services(
            settings=settings, db=Database(settings), keyring=Keyring(settings.configured_keys)
        )
        try:
            with TeamsSink() as sink:
                run(svc, sink, database_url, folder, tmp_path)
        finally:
            svc.db.dispose()


def run(svc: Services, sink: TeamsSink, database_url: str, folder: Path, tmp_path: Path) -> None:
    workspace = make_workspace(svc, "acme")
    hook = make_webhook(svc, workspace.id, "eng", sink.url("/workflows/eng"))
    make_subscription(svc, workspace.id, hook, "issue_created")
    wal = Path(f"{folder / 'ticketmate.db'}-wal")
    # Only the intake runs in `serve`: the cards go out after the outage, from a worker of its
    # own (a worker's writes while the disk is full are another test's business). Its log is
    # written outside the full filesystem, so that it can say what went wrong.
    with ServeProcess(database_url, tmp_path, worker=False).start() as serve:
        assert serve.process is not None
        sender = JiraSender(lambda: serve.url, workspace, attempts=1)
        warm = sender.send(sender.deliveries([issue_created_body("DEMO-1")]))
        assert warm[0].answers == [202]

        truncate_wal(svc)
        assert wal.stat().st_size == 0
        filler = folder / "filler"
        assert fill(filler) > 0
        assert_no_room(folder)

        # One alone, then a burst the writer takes as batches and then writes one by one.
        alone = sender.deliveries([issue_created_body("DEMO-2")])[0]
        refused = post(serve.url, workspace, alone)
        burst = sender.send(
            sender.deliveries([issue_created_body(f"DEMO-{n}") for n in range(3, 11)]),
            concurrency=8,
        )

        assert refused.status_code == 503, refused.text
        assert refused.headers["content-type"].startswith("application/json")
        assert refused.json() == {
            "error": {
                "code": "unavailable",
                "message": "The event could not be stored right now; send it again.",
            }
        }
        for leaked in ("Traceback", "sqlite", "disk", "OperationalError"):
            assert leaked.lower() not in refused.text.lower()
        assert [d.answers for d in burst] == [[503]] * len(burst)
        assert DISK_FULL in serve.output(), serve.output()

        # Still up and answering; reading the database works, so it is reachable and
        # migrated, which is all /readyz promises.
        with httpx2.Client(base_url=serve.url, timeout=10) as client:
            assert client.get("/healthz").status_code == 200
            ready = client.get("/readyz")
        assert ready.status_code == 200, ready.text
        assert ready.json()["database"] == "ok"
        assert serve.process.poll() is None
        assert stored_identifiers(svc) == [warm[0].identifier]
        assert_nothing_half_written(svc)

        # Space comes back one page at a time, one event sent after each: an event's row and
        # its delivery's are one commit, which fits whole or is refused whole — never the
        # event stored without its delivery, however few pages are left.
        edge: list[JiraDelivery] = []
        while not (edge and edge[-1].acknowledged) and len(edge) < EDGE_STEPS:
            free_a_page(filler)
            step = sender.deliveries([issue_created_body(f"DEMO-{100 + len(edge)}")])
            edge += sender.send(step)
        assert_nothing_half_written(svc)
        assert [d.answers for d in edge] == [[503]] * (len(edge) - 1) + [[202]]
        assert len(edge) > 1  # it did start from a disk too full for one event
        assert stored_identifiers(svc) == sorted([warm[0].identifier, edge[-1].identifier])

        filler.unlink()
        # Jira sends the refused ones again under their identifiers, and new ones come in:
        # each is taken at its first try now, with no restart.
        again = [JiraDelivery(d.identifier, d.body) for d in [alone, *burst, *edge[:-1]]]
        fresh = sender.deliveries([issue_created_body(f"DEMO-{n}") for n in range(11, 15)])
        sender.send(again + fresh, concurrency=4)
        assert [d.answers for d in again + fresh] == [[202]] * len(again + fresh)
        assert serve.process.poll() is None
        # It shuts down cleanly: uvicorn ends by raising again the SIGTERM it handled, and
        # stop() would have needed a SIGKILL (-9) for a process stuck in its shutdown.
        assert serve.stop() in (0, -signal.SIGTERM)
        output = serve.output()

    acknowledged = [*warm, edge[-1], *again, *fresh]
    # Each acknowledged event stored exactly once, and nothing else.
    assert stored_identifiers(svc) == sorted(d.identifier for d in acknowledged)
    assert_nothing_half_written(svc)
    with WorkerProcess(database_url, tmp_path, "--once").start() as worker:
        assert worker.process is not None
        assert worker.process.wait(timeout=60) == 0, worker.output()
    sink.wait_for(len(acknowledged))
    assert [d.status for d in deliveries(svc, workspace.id)] == ["delivered"] * len(acknowledged)
    cards = [r.json()["attachments"][0]["content"]["body"][2]["text"] for r in sink.received()]
    keys = [*range(1, 15), *range(100, 100 + len(edge))]
    assert sorted(card.split(":")[0] for card in cards) == sorted(f"DEMO-{n}" for n in keys)
    for secret in (workspace.jira.secret, workspace.jira.ingest_token):
        assert secret not in output
    assert "Traceback" not in output, output
