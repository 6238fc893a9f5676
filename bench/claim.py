"""Claiming due deliveries beside a large finished log: with the partial index, and without.

    .venv/bin/python bench/claim.py                     # SQLite, 1,000,000 finished rows
    .venv/bin/python bench/claim.py --database postgresql://postgres@127.0.0.1:5432/postgres

Builds a fresh database, fills the log with finished deliveries plus 100 due ones spread over
10 channels, and times the worker's claim (lanes + one batch per lane), then times it again
with the due-row indexes dropped. Prints figures; never fails on a slow machine.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from datetime import timedelta
from pathlib import Path

from sqlalchemy import text

from ticketmate.config import load_settings
from ticketmate.db import Database
from ticketmate.delivery import queue
from ticketmate.migrate import upgrade
from ticketmate.security.crypto import Keyring
from ticketmate.timeutil import utcnow

KEY = "bench:QUJDREVGR0hJSktMTU5PUFFSU1RVVldYWVowMTIzNDU="


def fill(db: Database, finished: int) -> None:
    series = (
        "SELECT generate_series(1, :n) AS n"
        if db.dialect == "postgresql"
        else "WITH RECURSIVE s(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM s WHERE n < :n) "
        "SELECT n FROM s"
    )
    pad = "lpad(n::text, 20, '0')" if db.dialect == "postgresql" else "printf('%020d', n)"
    now = "now()" if db.dialect == "postgresql" else "datetime('now')"
    as_json = "::json" if db.dialect == "postgresql" else ""
    with db.engine.begin() as c:
        c.execute(
            text(
                "INSERT INTO workspaces (id, slug, name, jira_secret_ciphertext, "
                "jira_ingest_token_ciphertext, created_at, updated_at) "
                f"VALUES ('w', 'bench', 'B', :blob, :blob, {now}, {now})"
            ),
            {"blob": b"\x00"},
        )
        for lane in range(10):
            c.execute(
                text(
                    "INSERT INTO teams_webhooks (id, workspace_id, channel_name, url_ciphertext, "
                    "url_digest, url_masked, url_kind, enabled, consecutive_failures, "
                    "consecutive_removed, recent_sends, created_at, updated_at) VALUES "
                    f"(:id, 'w', :id, :blob, :id, 'm', 'workflows', true, 0, 0, '[]', {now}, {now})"
                ),
                {"id": f"h{lane}", "blob": b"\x00"},
            )
            c.execute(
                text(
                    "INSERT INTO teams_subscriptions (id, workspace_id, webhook_id, event_type, "
                    f"enabled, filters, created_at, updated_at) VALUES (:id, 'w', :hook, "
                    f"'issue_created', true, '{{}}', {now}, {now})"
                ),
                {"id": f"s{lane}", "hook": f"h{lane}"},
            )
        total = finished + 100
        c.execute(
            text(
                "INSERT INTO jira_events (id, workspace_id, received_at, status, event_types, "
                f"raw_body, headers, created_at, updated_at) SELECT {pad}, 'w', {now}, 'routed', "
                f"'[]', '{{}}', '{{}}', {now}, {now} FROM ({series}) AS s"
            ),
            {"n": total},
        )
        c.execute(
            text(
                "INSERT INTO integration_delivery_log (id, workspace_id, event_id, webhook_id, "
                "channel_name, subscription_ids, event_type, message, status, attempt_count, "
                "attempts_before_replay, next_attempt_at, created_at, updated_at) "
                f"SELECT {pad}, 'w', {pad}, 'h' || (n % 10), 'c', "
                f"('[\"s' || (n % 10) || '\"]'){as_json}, "
                f"'issue_created', '{{}}', "
                f"CASE WHEN n > :finished THEN 'pending' ELSE 'delivered' END, 1, 0, {now}, {now}, "
                f"{now} FROM ({series}) AS s"
            ),
            {"n": total, "finished": finished},
        )
        c.execute(text("ANALYZE"))


def time_claims(db: Database, rounds: int) -> tuple[list[float], int]:
    """Each round claims every due lane and takes a batch from each, in one transaction that
    is rolled back, so every round finds the same due rows and only the queries are timed."""
    timings = []
    taken = 0
    lease = timedelta(seconds=60)
    now = utcnow() + timedelta(hours=1)
    for r in range(rounds):
        session = db.session_factory()
        try:
            started = time.perf_counter()
            lanes = queue.claim_lanes(session, worker_id=f"b{r}", now=now, lease=lease, limit=16)
            taken = sum(
                len(
                    queue.take_batch(
                        session, lane=lane, worker_id=f"b{r}", now=now, lease=lease, limit=10
                    )
                )
                for lane in lanes
            )
            timings.append((time.perf_counter() - started) * 1000)
        finally:
            session.rollback()
            session.close()
    return timings, taken


def claim_median_ms(finished: int, rounds: int = 20) -> float:
    """For scaling: the median claim time on a fresh PostgreSQL database beside `finished`
    finished deliveries (0 for an empty log), with the service's indexes."""
    from bench import common

    with common.fresh_database("postgresql") as url:
        upgrade(url)
        settings = load_settings(_env_file=None, database_url=url, encryption_keys=KEY)
        db = Database(settings)
        fill(db, finished)
        timings, taken = time_claims(db, rounds)
        db.dispose()
    assert taken == 100, taken
    return round(statistics.median(timings), 2)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--database", help="a PostgreSQL server URL (default: SQLite)")
    parser.add_argument("--finished", type=int, default=1_000_000)
    parser.add_argument("--rounds", type=int, default=20)
    args = parser.parse_args()
    name = None
    if args.database:
        import secrets

        import sqlalchemy

        from ticketmate.db import normalise_database_url

        name = f"tm_bench_{secrets.token_hex(4)}"
        admin = sqlalchemy.create_engine(
            normalise_database_url(args.database), isolation_level="AUTOCOMMIT"
        )
        with admin.connect() as c:
            c.execute(text(f'CREATE DATABASE "{name}"'))
        url = args.database.rsplit("/", 1)[0] + "/" + name
    else:
        url = f"sqlite:///{Path(tempfile.mkdtemp(prefix='tm-bench-')) / 'claim.db'}"
    try:
        upgrade(url)
        settings = load_settings(_env_file=None, database_url=url, encryption_keys=KEY)
        db = Database(settings)
        Keyring(settings.configured_keys)
        started = time.perf_counter()
        fill(db, args.finished)
        print(
            f"{db.dialect}: filled {args.finished:,} finished + 100 due deliveries "
            f"in {time.perf_counter() - started:.1f}s"
        )
        with_index, taken = time_claims(db, args.rounds)
        with db.engine.begin() as c:
            c.execute(text("DROP INDEX ix_delivery_due_by_time"))
            c.execute(text("DROP INDEX ix_delivery_due_by_lane"))
        without, taken_without = time_claims(db, max(3, args.rounds // 4))
        assert taken == taken_without == 100, (taken, taken_without)
        for label, values in (("partial indexes", with_index), ("no due-row index", without)):
            print(
                f"  claim 10 lanes and take their 100 due rows, {label:16}: median "
                f"{statistics.median(values):.1f} ms, max {max(values):.1f} ms"
            )
        db.dispose()
    finally:
        if name:
            with admin.connect() as c:
                c.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
            admin.dispose()


if __name__ == "__main__":
    main()
