"""The database really goes away under the intake: 503 with the error shape, nothing half
stored, and Jira's retry of the same event is stored exactly once when it is back.

PostgreSQL: the test database stops taking connections (ALLOW_CONNECTIONS false) and every
backend on it, the intake writer's pooled ones included, is terminated — what a restart or
failover looks like to the service. SQLite: another process-like connection holds the write
lock for longer than the busy timeout ("database is locked").
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import httpx2
import pytest
from sqlalchemy import create_engine
from sqlalchemy.engine import make_url

from tests.jira.support import INTAKE, all_stored
from tests.jira.test_concurrency import fire_at_once, live_server  # noqa: F401  (a fixture)
from tests.jira.test_group_commit import signed, writes_held
from tests.support.factories import MadeWorkspace
from ticketmate.db import normalise_database_url
from ticketmate.state import Services


def post(url: str, request: tuple[bytes, dict[str, str]]) -> httpx2.Response:
    body, headers = request
    with httpx2.Client(base_url=url, timeout=60) as client:
        return client.post(INTAKE, params={"workspace": "acme"}, content=body, headers=headers)


def assert_unavailable(response: httpx2.Response) -> None:
    assert response.status_code == 503, response.text
    assert response.headers["content-type"].startswith("application/json")
    error = response.json()["error"]
    assert error["code"] == "unavailable"
    assert "send it again" in error["message"]
    assert "Traceback" not in response.text
    assert "psycopg" not in response.text.lower()


@contextmanager
def postgresql_down(svc: Services) -> Iterator[None]:
    url = make_url(normalise_database_url(svc.settings.database_url))
    name = url.database
    admin = create_engine(url.set(database="postgres"), isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.exec_driver_sql(f'ALTER DATABASE "{name}" WITH ALLOW_CONNECTIONS false')
            conn.exec_driver_sql(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                f"WHERE datname = '{name}' AND pid <> pg_backend_pid()"
            )
        try:
            yield
        finally:
            with admin.connect() as conn:
                conn.exec_driver_sql(f'ALTER DATABASE "{name}" WITH ALLOW_CONNECTIONS true')
    finally:
        admin.dispose()


def test_postgresql_going_away_answers_503_and_the_retry_is_stored_once(
    live_server: str,  # noqa: F811
    svc: Services,
    workspace: MadeWorkspace,
) -> None:
    if svc.db.dialect != "postgresql":
        pytest.skip("stops a PostgreSQL database; the SQLite outage is the next test")
    warm = signed(workspace, "before")
    assert post(live_server, warm).status_code == 202  # the writer's pool is open
    lost = [signed(workspace, f"during-{n}") for n in range(3)]
    with postgresql_down(svc):
        for request in lost:
            assert_unavailable(post(live_server, request))
    # Back: Jira sends each again with its identifier; each is stored once, then known.
    accepted = [post(live_server, request) for request in lost]
    assert [r.status_code for r in accepted] == [202, 202, 202], [r.text for r in accepted]
    again = post(live_server, lost[0])
    assert again.status_code == 200
    assert again.json() == {"duplicate": True, "event_id": accepted[0].json()["event_id"]}
    stored = sorted(r.jira_event_id or "" for r in all_stored(svc))
    assert stored == ["before", "during-0", "during-1", "during-2"]


def test_sqlite_locked_past_its_busy_timeout_answers_503_and_the_retry_is_stored_once(
    live_server: str,  # noqa: F811
    svc: Services,
    workspace: MadeWorkspace,
) -> None:
    if svc.db.dialect != "sqlite":
        pytest.skip("holds SQLite's write lock; the PostgreSQL outage is the test above")
    request = signed(workspace, "locked-out")
    answers: list[httpx2.Response] = []
    with writes_held(svc):
        # The writer waits the busy timeout (10 s) for the lock, then gives up.
        sender = threading.Thread(target=lambda: answers.append(post(live_server, request)))
        started = time.monotonic()
        sender.start()
        sender.join(timeout=60)
    assert answers, "no answer while the database was locked"
    assert_unavailable(answers[0])
    assert time.monotonic() - started >= 9  # it waited for the lock, not refused at once
    assert all_stored(svc) == []
    retry = post(live_server, request)
    assert retry.status_code == 202, retry.text
    assert [r.jira_event_id for r in all_stored(svc)] == ["locked-out"]


def test_a_burst_of_32_connections_opens_no_database_connection(
    live_server: str,  # noqa: F811
    svc: Services,
    workspace: MadeWorkspace,
) -> None:
    """The intake's pool is fixed and never pinged: under a burst the same PostgreSQL backends
    serve every batch; none is opened or closed (no churn)."""
    if svc.db.dialect != "postgresql":
        pytest.skip("reads pg_stat_activity")
    assert post(live_server, signed(workspace, "warm")).status_code == 202

    def backends() -> set[tuple[int, object]]:
        with svc.db.engine.connect() as conn:
            rows = conn.exec_driver_sql(
                "SELECT pid, backend_start FROM pg_stat_activity "
                "WHERE datname = current_database() AND application_name = 'ticketmate-intake'"
            ).all()
        return {(row[0], row[1]) for row in rows}

    before = backends()
    assert 1 <= len(before) <= svc.settings.database_pool_size
    seen: set[tuple[int, object]] = set()
    stop = threading.Event()

    def watch() -> None:
        while not stop.is_set():
            seen.update(backends())
            time.sleep(0.005)

    watcher = threading.Thread(target=watch)
    watcher.start()
    try:
        for round_ in range(4):
            requests = [signed(workspace, f"burst-{round_}-{n}") for n in range(32)]
            answers = fire_at_once(live_server, requests)
            assert [a.status_code for a in answers] == [202] * 32
    finally:
        stop.set()
        watcher.join()
    assert seen == before  # the very same backends, none new
    assert backends() == before
    assert len(all_stored(svc)) == 1 + 4 * 32
