"""Group commit: many requests, one transaction, each answered only after its commit.

A real uvicorn server in a thread, real HTTP clients, a real database. To make a batch hold
several events without relying on timing, another connection holds the write lock (SQLite:
BEGIN IMMEDIATE; PostgreSQL: LOCK TABLE jira_events) while the requests pile up behind the
transaction that waits for it.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from typing import Any

import httpx2
import pytest
from sqlalchemy import create_engine, event, text

from tests.jira.support import INTAKE, all_stored, as_bytes, payload
from tests.jira.test_concurrency import live_server  # noqa: F401  (a fixture)
from tests.support.factories import MadeWorkspace
from ticketmate.db import normalise_database_url
from ticketmate.jira.intake_writer import IntakeWriter
from ticketmate.jira.signature import body_signature
from ticketmate.state import Services

MM = "mattermost_mattermost-plugin-jira__"
UPDATED = f"{MM}issue-updated-status-resolved.json"


def writer_of(svc: Services) -> IntakeWriter:
    assert svc.intake_writer is not None, "the app's lifespan starts the writer"
    return svc.intake_writer


def wait_until(condition: Callable[[], bool], what: str) -> None:
    # A generous bound only against a hang: nothing here depends on how fast it happens.
    deadline = time.monotonic() + 60
    while not condition():
        assert time.monotonic() < deadline, f"waited too long for {what}"
        time.sleep(0.01)


@contextmanager
def writes_held(svc: Services) -> Iterator[Any]:
    """Another connection holds the lock that the intake writer's INSERT (PostgreSQL) or
    BEGIN IMMEDIATE (SQLite) must wait for; released when the block ends."""
    engine = create_engine(normalise_database_url(svc.settings.database_url))
    connection = engine.connect()
    try:
        if svc.db.dialect == "postgresql":
            connection.exec_driver_sql("BEGIN")
            connection.exec_driver_sql("LOCK TABLE jira_events IN EXCLUSIVE MODE")
        else:
            connection.connection.driver_connection.isolation_level = None  # type: ignore[union-attr]
            connection.exec_driver_sql("BEGIN IMMEDIATE")
        yield connection
    finally:
        connection.exec_driver_sql("ROLLBACK")
        connection.close()
        engine.dispose()


def signed(
    workspace: MadeWorkspace, identifier: str, **changes: Any
) -> tuple[bytes, dict[str, str]]:
    body = payload(UPDATED)
    body["issue"]["fields"].update(changes)
    raw = as_bytes(body)
    return raw, {
        "Content-Type": "application/json",
        "X-Hub-Signature": body_signature(workspace.jira.secret, raw),
        "X-Atlassian-Webhook-Identifier": identifier,
    }


def send_all(
    url: str, requests: list[tuple[bytes, dict[str, str]]], threads: int = 16
) -> tuple[ThreadPoolExecutor, list[Future[httpx2.Response]]]:
    pool = ThreadPoolExecutor(max_workers=threads)

    def send(request: tuple[bytes, dict[str, str]]) -> httpx2.Response:
        body, headers = request
        with httpx2.Client(base_url=url, timeout=120) as client:
            return client.post(INTAKE, params={"workspace": "acme"}, content=body, headers=headers)

    return pool, [pool.submit(send, r) for r in requests]


def send_one_then_pile_up(
    svc: Services, url: str, requests: list[tuple[bytes, dict[str, str]]]
) -> list[Future[httpx2.Response]]:
    """The first request's transaction waits for the held lock; the rest queue behind it and
    form the next batch. Call inside writes_held()."""
    pool, first = send_all(url, requests[:1], threads=1)
    # The first is being written (taken off the queue) and the writer is blocked.
    wait_until(lambda: writer_of(svc).commits == 0 and _writing(svc), "the first write")
    rest_pool, rest = send_all(url, requests[1:])
    wait_until(lambda: writer_of(svc).queued == len(requests) - 1, "the requests to queue")
    pool.shutdown(wait=False)
    rest_pool.shutdown(wait=False)
    return first + rest


def _writing(svc: Services) -> bool:
    # Blocked on the lock: PostgreSQL shows a backend waiting on a Lock; on SQLite the writer
    # holds its one batch while nothing is queued.
    if svc.db.dialect == "postgresql":
        with svc.db.engine.connect() as connection:
            return bool(
                connection.scalar(
                    text(
                        "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
                        "AND datname = current_database()"
                    )
                )
            )
    time.sleep(0.2)  # SQLite gives no view of its waiters; the queue check below decides
    return True


def test_a_batch_is_one_commit_and_each_answer_follows_it(
    live_server: str,  # noqa: F811
    svc: Services,
    workspace: MadeWorkspace,
) -> None:
    commits: list[int] = []
    engine = writer_of(svc).db.engine.sync_engine
    event.listen(engine, "commit", lambda _conn: commits.append(1))
    requests = [signed(workspace, f"id-{n}") for n in range(12)]
    with writes_held(svc):
        futures = send_one_then_pile_up(svc, live_server, requests)
        # Nothing is answered while the transaction holding the events cannot commit.
        assert not any(f.done() for f in futures)
    responses = [f.result() for f in futures]
    assert [r.status_code for r in responses] == [202] * 12, [r.text for r in responses]
    stored = {r.jira_event_id: r.id for r in all_stored(svc)}
    assert {r.json()["event_id"] for r in responses} == set(stored.values())
    assert len(stored) == 12
    # The first alone, then the eleven that piled up behind it: two commits.
    assert len(commits) == 2


def test_many_concurrent_requests_share_commits(
    live_server: str,  # noqa: F811
    svc: Services,
    workspace: MadeWorkspace,
) -> None:
    writer = writer_of(svc)
    events = 200
    requests = [signed(workspace, f"many-{n}") for n in range(events)]
    with writes_held(svc):
        pool, futures = send_all(live_server, requests, threads=32)
        wait_until(lambda: writer.queued >= 2, "requests to pile up")
    responses = [f.result() for f in futures]
    pool.shutdown()
    assert {r.status_code for r in responses} == {202}
    assert len(all_stored(svc)) == events
    assert writer.commits < events


def test_repeated_identifiers_in_one_batch_and_across_batches_store_one_event(
    live_server: str,  # noqa: F811
    svc: Services,
    workspace: MadeWorkspace,
) -> None:
    requests = [signed(workspace, "first-batch")] + [signed(workspace, "same-id")] * 5
    with writes_held(svc):
        futures = send_one_then_pile_up(svc, live_server, requests)
    responses = [f.result() for f in futures]
    copies = responses[1:]
    assert sorted(r.status_code for r in copies) == [200] * 4 + [202]
    [accepted] = [r.json() for r in copies if r.status_code == 202]
    for response in copies:
        if response.status_code == 200:
            assert response.json() == {"duplicate": True, "event_id": accepted["event_id"]}
    # Across batches: the stored one answers.
    with httpx2.Client(base_url=live_server, timeout=60) as client:
        body, headers = signed(workspace, "same-id")
        again = client.post(INTAKE, params={"workspace": "acme"}, content=body, headers=headers)
    assert again.status_code == 200
    assert again.json() == {"duplicate": True, "event_id": accepted["event_id"]}
    assert sorted(r.jira_event_id or "" for r in all_stored(svc)) == ["first-batch", "same-id"]


@contextmanager
def refusing_summary(svc: Services, summary: str) -> Iterator[None]:
    """A trigger that refuses to store an event with this summary: a row that fails for a
    reason of its own, as a constraint would."""
    with svc.db.engine.begin() as connection:
        if svc.db.dialect == "postgresql":
            connection.exec_driver_sql(
                "CREATE FUNCTION refuse_bad_row() RETURNS trigger AS $$ BEGIN "
                f"IF NEW.summary = '{summary}' THEN RAISE EXCEPTION 'bad row'; END IF; "
                "RETURN NEW; END $$ LANGUAGE plpgsql"
            )
            connection.exec_driver_sql(
                "CREATE TRIGGER refuse_bad_row BEFORE INSERT ON jira_events "
                "FOR EACH ROW EXECUTE FUNCTION refuse_bad_row()"
            )
        else:
            connection.exec_driver_sql(
                "CREATE TRIGGER refuse_bad_row BEFORE INSERT ON jira_events "
                f"WHEN NEW.summary = '{summary}' BEGIN SELECT RAISE(ABORT, 'bad row'); END"
            )
    try:
        yield
    finally:
        with svc.db.engine.begin() as connection:
            connection.exec_driver_sql(
                "DROP TRIGGER refuse_bad_row"
                + (" ON jira_events" if svc.db.dialect == "postgresql" else "")
            )
            if svc.db.dialect == "postgresql":
                connection.exec_driver_sql("DROP FUNCTION refuse_bad_row()")


def test_one_bad_row_costs_only_itself(
    live_server: str,  # noqa: F811
    svc: Services,
    workspace: MadeWorkspace,
) -> None:
    requests = [signed(workspace, "lead")] + [
        signed(workspace, f"row-{n}", summary="bad one" if n == 3 else f"fine {n}")
        for n in range(8)
    ]
    with refusing_summary(svc, "bad one"):
        with writes_held(svc):
            futures = send_one_then_pile_up(svc, live_server, requests)
        responses = [f.result() for f in futures]
    statuses = [r.status_code for r in responses]
    assert statuses == [202] * 4 + [503] + [202] * 4, [r.text for r in responses]
    assert responses[4].json()["error"]["code"] == "unavailable"
    stored = sorted(r.jira_event_id or "" for r in all_stored(svc))
    assert stored == sorted(["lead"] + [f"row-{n}" for n in range(8) if n != 3])


def test_a_connection_killed_mid_batch_answers_no_202_for_what_is_not_stored(
    live_server: str,  # noqa: F811
    svc: Services,
    workspace: MadeWorkspace,
) -> None:
    if svc.db.dialect != "postgresql":
        pytest.skip("kills a PostgreSQL backend")
    identifiers = [f"kill-{n}" for n in range(6)]
    requests = [signed(workspace, i) for i in identifiers]

    killed: set[int] = set()

    def kill_the_waiting_writer(_holder: Any) -> int:
        """Terminate the backends waiting for the held lock (not those already killed).
        Read apart from the holder: pg_stat_activity is one snapshot per transaction."""
        with svc.db.engine.connect() as watcher:
            return _kill(watcher)

    def _kill(holder: Any) -> int:
        pids = holder.exec_driver_sql(
            "SELECT pid FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
            "AND datname = current_database() AND pid <> pg_backend_pid()"
        ).scalars()
        fresh = set(pids) - killed
        for pid in fresh:
            holder.exec_driver_sql(f"SELECT pg_terminate_backend({int(pid)})")
        killed.update(fresh)
        return len(fresh)

    with writes_held(svc) as holder:
        futures = send_one_then_pile_up(svc, live_server, requests)
        assert kill_the_waiting_writer(holder) == 1  # the first batch, alone
        # The five behind it now form one batch, which waits for the lock in turn: kill it.
        wait_until(lambda: writer_of(svc).queued == 0, "the second batch to start")
        wait_until(lambda: kill_the_waiting_writer(holder) == 1, "the second batch to wait")
    responses = [f.result() for f in futures]
    stored = {r.jira_event_id: r.id for r in all_stored(svc)}
    for identifier, response in zip(identifiers, responses, strict=True):
        if response.status_code == 202:
            assert stored[identifier] == response.json()["event_id"]
        else:
            assert response.status_code == 503, response.text
            assert identifier not in stored
    assert responses[0].status_code == 503  # its only transaction was killed
    # Jira sends every event again with the same identifier: exactly one of each is stored.
    _, again = send_all(live_server, requests)
    for first, retry in zip(responses, [f.result() for f in again], strict=True):
        if first.status_code == 202:
            assert retry.status_code == 200
            assert retry.json()["event_id"] == first.json()["event_id"]
        else:
            assert retry.status_code == 202
    rows = [r.jira_event_id for r in all_stored(svc)]
    assert sorted(rows) == sorted(identifiers)


def test_the_writer_answers_what_it_holds_before_the_app_stops(
    svc: Services, workspace: MadeWorkspace
) -> None:
    from fastapi.testclient import TestClient

    from ticketmate.app import create_app

    results: list[int] = []
    with TestClient(create_app(svc.settings, services=svc)) as client:
        body, headers = signed(workspace, "last")

        def send() -> None:
            results.append(
                client.post(
                    INTAKE, params={"workspace": "acme"}, content=body, headers=headers
                ).status_code
            )

        sender = threading.Thread(target=send)
        sender.start()
        sender.join()
    assert results == [202]
    assert svc.intake_writer is None
    assert [r.jira_event_id for r in all_stored(svc)] == ["last"]
